//! MoveNet SinglePose output [1, 1, 17, 3]: (y, x, score) per joint, normalised to the input
//! (a person's crop in top-down pose), mapped to source pixels through the crop's transform.

use crate::detections::{Keypoint, Person};
use crate::preprocess::Transform;
use crate::tensor::Tensor;
use anyhow::{bail, Result};

const JOINTS: usize = 17;

/// Joints from this score span a person's box (the drawing threshold's default).
pub const BOX_JOINT_SCORE: f32 = 0.3;

pub fn check_shape(shape: &[usize]) -> Result<()> {
    if shape != [1, 1, JOINTS, 3] {
        bail!("pose output has shape {shape:?}, expected [1, 1, {JOINTS}, 3] (MoveNet SinglePose)");
    }
    Ok(())
}

/// The person in the crop: joints in source pixels, clamped to the frame (as MultiPose's are; a
/// crop may reach beyond the frame), score = the mean joint score, box = the joints scoring at
/// least `box_joint_score` (all joints when fewer than two do).
pub fn decode(out: &Tensor, t: &Transform, box_joint_score: f32) -> Result<Person> {
    check_shape(&out.shape)?;
    let Some(v) = out.as_f32() else { bail!("pose output is not float32") };
    let (iw, ih) = (t.input_w as f32, t.input_h as f32);
    let keypoints: Vec<Keypoint> = v
        .chunks_exact(3)
        .map(|k| {
            let (x, y) = t.to_source(k[1] * iw, k[0] * ih);
            let (x, y) = (x.clamp(0.0, t.frame_w as f32), y.clamp(0.0, t.frame_h as f32));
            let score = if k[2].is_finite() { k[2].clamp(0.0, 1.0) } else { 0.0 };
            Keypoint { x, y, score }
        })
        .collect();
    let score = keypoints.iter().map(|k| k.score).sum::<f32>() / JOINTS as f32;
    Ok(Person { bbox: joint_box(&keypoints, box_joint_score), keypoints, score, track_id: None })
}

/// The box spanning the joints that score at least `min_score` (all finite joints when fewer
/// than two do).
pub fn joint_box(keypoints: &[Keypoint], min_score: f32) -> [f32; 4] {
    let span = |pick: &dyn Fn(&Keypoint) -> bool| {
        let mut b = [f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY];
        let mut n = 0;
        for k in keypoints.iter().filter(|k| pick(k) && k.x.is_finite() && k.y.is_finite()) {
            b = [b[0].min(k.x), b[1].min(k.y), b[2].max(k.x), b[3].max(k.y)];
            n += 1;
        }
        (n >= 2).then_some(b)
    };
    span(&|k| k.score >= min_score).or_else(|| span(&|_| true)).unwrap_or([0.0; 4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joints_map_through_the_crop() {
        // A 256 input showing a 512-pixel square crop whose corner is at (100, -50).
        let t = Transform { input_w: 256, input_h: 256, frame_w: 640, frame_h: 480, scale_x: 2.0, scale_y: 2.0, offset_x: 100.0, offset_y: -50.0 };
        let mut v = vec![0f32; 17 * 3];
        for j in 0..17 {
            v[j * 3] = 0.5; // y
            v[j * 3 + 1] = 0.25 + j as f32 * 0.01; // x
            v[j * 3 + 2] = if j < 3 { 0.9 } else { 0.1 };
        }
        v[5] = f32::NAN;
        let p = decode(&Tensor::f32(vec![1, 1, 17, 3], v), &t, 0.3).unwrap();
        assert!((p.keypoints[0].x - (100.0 + 0.25 * 512.0)).abs() < 1e-3);
        assert!((p.keypoints[0].y - (-50.0 + 256.0)).abs() < 1e-3);
        // Joint 1's NaN score counts as 0; the box spans the two confident joints (0 and 2).
        assert_eq!((p.keypoints[1].score, p.keypoints[2].score), (0.0, 0.9));
        assert!((p.score - (0.9 * 2.0 + 0.1 * 14.0) / 17.0).abs() < 1e-6, "{}", p.score);
        assert!((p.bbox[0] - p.keypoints[0].x).abs() < 1e-3 && (p.bbox[2] - p.keypoints[2].x).abs() < 1e-3);
        assert!(check_shape(&[1, 6, 56]).is_err());
    }
}
