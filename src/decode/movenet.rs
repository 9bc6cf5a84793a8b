//! MoveNet MultiPose output [1, N, 56]: per slot 17 x (y, x, score) normalised to the input
//! tensor, then the box (ymin, xmin, ymax, xmax) and the person score.

use super::PoseThresholds;
use crate::detections::{Keypoint, Person};
use crate::tensor::Tensor;
use crate::preprocess::Transform;
use anyhow::{bail, Result};

const JOINTS: usize = 17;
const SLOT: usize = JOINTS * 3 + 5;

pub fn check_shape(shape: &[usize]) -> Result<()> {
    if shape.len() != 3 || shape[0] != 1 || shape[2] != SLOT || shape[1] == 0 {
        bail!("pose output has shape {shape:?}, expected [1, N, {SLOT}] (MoveNet MultiPose)");
    }
    Ok(())
}

pub fn decode(out: &Tensor, t: &Transform, max_people: usize, th: PoseThresholds) -> Result<Vec<Person>> {
    check_shape(&out.shape)?;
    let Some(v) = out.as_f32() else { bail!("pose output is not float32") };
    let (iw, ih) = (t.input_w as f32, t.input_h as f32);
    let clamp_x = |x: f32| x.clamp(0.0, t.frame_w as f32);
    let clamp_y = |y: f32| y.clamp(0.0, t.frame_h as f32);
    let mut people = Vec::new();
    for slot in v.chunks_exact(SLOT).take(max_people) {
        let score = slot[SLOT - 1];
        if !(score >= th.person) {
            continue;
        }
        let keypoints = (0..JOINTS)
            .map(|j| {
                let (x, y) = t.to_source(slot[j * 3 + 1] * iw, slot[j * 3] * ih);
                Keypoint { x: clamp_x(x), y: clamp_y(y), score: slot[j * 3 + 2] }
            })
            .collect();
        let b = &slot[JOINTS * 3..JOINTS * 3 + 4];
        let (x0, y0) = t.to_source(b[1] * iw, b[0] * ih);
        let (x1, y1) = t.to_source(b[3] * iw, b[2] * ih);
        people.push(Person { keypoints, bbox: [clamp_x(x0), clamp_y(y0), clamp_x(x1), clamp_y(y1)], score, track_id: None });
    }
    people.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(people)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn maps_normalised_coordinates_to_source_pixels() {
        let spec = Catalog::builtin().get("movenet-multipose").unwrap().clone().with_side(256).unwrap();
        let t = Transform::new(&spec, 512, 200); // input 256 x 128 (content 100 rows of 128)
        let mut v = vec![0f32; 2 * SLOT];
        // Slot 0: nose at the centre of the picture, good score.
        v[0] = 50.0 / 128.0;
        v[1] = 0.5;
        v[2] = 0.9;
        v[SLOT - 1] = 0.8;
        // Slot 1: below threshold.
        v[2 * SLOT - 1] = 0.05;
        let out = Tensor::f32(vec![1, 2, SLOT], v);
        let people = decode(&out, &t, 6, PoseThresholds::default()).unwrap();
        assert_eq!(people.len(), 1);
        let nose = people[0].keypoints[0];
        assert!((nose.x - 256.0).abs() < 1e-3 && (nose.y - 100.0).abs() < 1e-3, "{nose:?}");
        assert!(check_shape(&[1, 6, 55]).is_err());
    }
}
