//! How alike a track's predicted person and a detection are: object keypoint similarity (OKS,
//! COCO's definition, on joints confident in both) and box overlap (IoU), combined.

use crate::detections::Keypoint;

/// Per-joint OKS falloff when the schema has no published sigmas.
const DEFAULT_SIGMA: f32 = 0.07;
/// OKS needs this many joints confident in both to say anything.
const MIN_COMMON_JOINTS: usize = 3;

pub use crate::detections::box_iou as iou;

/// OKS between two poses of one schema, with `area` (pixels^2) as the person's scale; `None`
/// when fewer than three joints are confident in both.
pub fn oks(a: &[Keypoint], b: &[Keypoint], area: f32, sigmas: Option<&[f32]>, threshold: f32) -> Option<f32> {
    let (mut sum, mut n) = (0.0, 0);
    for (j, (p, q)) in a.iter().zip(b).enumerate() {
        if p.score < threshold || q.score < threshold {
            continue;
        }
        let sigma = sigmas.and_then(|s| s.get(j)).copied().unwrap_or(DEFAULT_SIGMA);
        let var = (2.0 * sigma).powi(2);
        let d2 = (p.x - q.x).powi(2) + (p.y - q.y).powi(2);
        let e = (-d2 / (2.0 * var * area.max(1.0))).exp();
        if e.is_finite() {
            sum += e;
            n += 1;
        }
    }
    (n >= MIN_COMMON_JOINTS).then(|| sum / n as f32)
}

/// The association score in [0, 1]: the mean of OKS and IoU, or IoU alone when OKS has too few
/// joints (boxes still tell people apart when the joints do not).
pub fn combined(oks: Option<f32>, iou: f32) -> f32 {
    match oks {
        Some(k) => 0.5 * (k + iou),
        None => iou,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pose(dx: f32, score: f32) -> Vec<Keypoint> {
        (0..17).map(|j| Keypoint { x: 10.0 + dx + j as f32 * 3.0, y: 20.0 + j as f32 * 5.0, score }).collect()
    }

    #[test]
    fn identical_people_score_one_and_far_ones_zero() {
        let b = [0.0, 0.0, 50.0, 100.0];
        assert!((iou(&b, &b) - 1.0).abs() < 1e-6);
        assert_eq!(iou(&b, &[60.0, 0.0, 100.0, 100.0]), 0.0);
        assert!((iou(&b, &[25.0, 0.0, 75.0, 100.0]) - 1.0 / 3.0).abs() < 1e-6);
        let k = oks(&pose(0.0, 0.9), &pose(0.0, 0.9), 5000.0, None, 0.3).unwrap();
        assert!((k - 1.0).abs() < 1e-6);
        let far = oks(&pose(0.0, 0.9), &pose(200.0, 0.9), 5000.0, None, 0.3).unwrap();
        assert!(far < 1e-3);
        // Nearer is more similar.
        let near = oks(&pose(0.0, 0.9), &pose(5.0, 0.9), 5000.0, None, 0.3).unwrap();
        assert!(near > far && near < 1.0);
    }

    #[test]
    fn unconfident_joints_do_not_count() {
        assert_eq!(oks(&pose(0.0, 0.9), &pose(0.0, 0.1), 5000.0, None, 0.3), None);
        assert_eq!(combined(None, 0.4), 0.4);
        assert_eq!(combined(Some(0.8), 0.4), 0.6000000238418579_f64 as f32);
        // Degenerate boxes: no overlap, no NaN.
        assert_eq!(iou(&[0.0; 4], &[0.0; 4]), 0.0);
        assert_eq!(iou(&[f32::NAN, 0.0, 1.0, 1.0], &[0.0, 0.0, 1.0, 1.0]), 0.0);
    }
}
