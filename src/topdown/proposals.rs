//! Where to look for people in a frame: the detector's boxes, and the people of the last frame
//! (the box of their joints), merged so that each person is looked at once.

use super::TopDownParams;
use crate::decode::movenet_single::joint_box;
use crate::detections::{BoxDetection, Person};
use crate::detections::box_iou as iou;

/// A box to crop around.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    pub bbox: [f32; 4],
    /// The detector's score, or the followed person's score: decides who keeps a person two
    /// crops share (`occlusion`).
    pub score: f32,
    /// From the last frame's joints rather than the detector.
    pub tracked: bool,
}

/// A followed person whose joint box overlaps a detector box by more than this is that box.
const SAME_PERSON_IOU: f32 = 0.3;

/// The detector's boxes (best first), then the last frame's people whom no box covers, best
/// first; at most `max` in all.
pub fn merge(detections: &[BoxDetection], last: &[Person], p: &TopDownParams, max: usize) -> Vec<Proposal> {
    let mut out: Vec<Proposal> = detections.iter().map(|d| Proposal { bbox: d.bbox, score: d.score, tracked: false }).collect();
    let mut followed: Vec<Proposal> = last
        .iter()
        .map(|person| Proposal { bbox: joint_box(&person.keypoints, p.joint_score), score: person.score, tracked: true })
        .filter(|f| f.bbox[2] > f.bbox[0] && f.bbox[3] > f.bbox[1])
        .filter(|f| detections.iter().all(|d| iou(&d.bbox, &f.bbox) <= SAME_PERSON_IOU))
        .collect();
    followed.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.extend(followed);
    out.truncate(max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detections::Keypoint;

    fn person(x: f32, score: f32) -> Person {
        let keypoints = (0..17).map(|j| Keypoint { x: x + (j % 3) as f32 * 10.0, y: 10.0 + j as f32 * 10.0, score: 0.8 }).collect();
        Person { keypoints, bbox: [0.0; 4], score, track_id: None }
    }

    #[test]
    fn followed_people_fill_in_what_the_detector_missed() {
        let p = TopDownParams::default();
        let det = [BoxDetection { bbox: [95.0, 0.0, 135.0, 180.0], score: 0.6 }];
        let last = [person(100.0, 0.5), person(300.0, 0.4), person(500.0, 0.7)];
        let props = merge(&det, &last, &p, 10);
        // The detector's box, then the two people it did not cover, best first.
        assert_eq!(props.len(), 3);
        assert!(!props[0].tracked && props[1].tracked && props[2].tracked);
        assert_eq!((props[1].bbox[0], props[2].bbox[0]), (500.0, 300.0));
        assert_eq!(merge(&det, &last, &p, 2).len(), 2);
        // Without detections (a frame in between), everyone followed.
        assert_eq!(merge(&[], &last, &p, 10).len(), 3);
    }
}
