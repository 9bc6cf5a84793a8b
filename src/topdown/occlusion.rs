//! People hidden behind others. A crop centred on a half-hidden person often gives the pose of
//! the person in front (the model follows the most visible body). When two crops give the same
//! person, it stays with the better box (the higher detector score), and the other crop is run
//! again with that person blacked out (limbs drawn thick, the torso filled), which leaves the
//! model the hidden one; a crop that still gives the same person is dropped. Then the final
//! list: a minimum score, duplicates removed by pose similarity, best first, capped.

use super::crop::Crop;
use super::{Candidate, TopDownParams};
use crate::catalog::{DType, Layout, ModelSpec};
use crate::decode::movenet_single::joint_box;
use crate::detections::Person;
use crate::preprocess::Transform;
use crate::skeleton::COCO17_SIGMAS;
use crate::tensor::{Tensor, TensorData};
use anyhow::Result;

/// The segments blacked out: COCO's body limbs and the face to the shoulders.
const LIMBS: [(usize, usize); 18] = [
    (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
    (0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (0, 6),
];
/// Shoulders and hips, in order around the torso.
const TORSO: [usize; 4] = [5, 6, 12, 11];

/// OKS between two predicted people (COCO sigmas) over the joints confident in both, with the
/// larger of their joint-box areas as the scale; 0 when they share no confident joint.
pub fn pose_oks(a: &Person, b: &Person, joint_score: f32) -> f32 {
    let area = |p: &Person| {
        let b = joint_box(&p.keypoints, joint_score);
        (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
    };
    let scale = area(a).max(area(b));
    let (mut sum, mut n) = (0.0f32, 0);
    for (j, (p, q)) in a.keypoints.iter().zip(&b.keypoints).enumerate().take(COCO17_SIGMAS.len()) {
        if p.score < joint_score || q.score < joint_score {
            continue;
        }
        let var = (2.0 * COCO17_SIGMAS[j]).powi(2);
        let d2 = (p.x - q.x).powi(2) + (p.y - q.y).powi(2);
        let e = (-d2 / (2.0 * var * (scale + 1e-9))).exp();
        sum += if e.is_finite() { e } else { 0.0 };
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f32
    }
}

/// A person to black out of a crop: thick segments and a filled torso, in source pixels.
#[derive(Debug, Clone)]
pub struct Occluder {
    segments: Vec<([f32; 2], [f32; 2])>,
    radius: f32,
    torso: Option<[[f32; 2]; 4]>,
}

impl Occluder {
    pub fn of(person: &Person, p: &TopDownParams) -> Occluder {
        let k = &person.keypoints;
        let ok = |j: usize| k.get(j).is_some_and(|q| q.score >= p.joint_score && q.x.is_finite() && q.y.is_finite());
        let at = |j: usize| [k[j].x, k[j].y];
        let b = joint_box(k, p.joint_score);
        let radius = p.occluder_radius * ((b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)).max(1.0).sqrt();
        let mut segments: Vec<([f32; 2], [f32; 2])> = LIMBS.iter().filter(|&&(a, b)| ok(a) && ok(b)).map(|&(a, b)| (at(a), at(b))).collect();
        segments.extend((0..k.len()).filter(|&j| ok(j)).map(|j| (at(j), at(j))));
        let torso = TORSO.iter().all(|&j| ok(j)).then(|| TORSO.map(at));
        Occluder { segments, radius, torso }
    }

    /// Whether the source point (x, y) is covered.
    pub fn covers(&self, x: f32, y: f32) -> bool {
        let r2 = self.radius * self.radius;
        let near = self.segments.iter().any(|(a, b)| {
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            let l2 = dx * dx + dy * dy;
            let t = if l2 == 0.0 { 0.0 } else { (((x - a[0]) * dx + (y - a[1]) * dy) / l2).clamp(0.0, 1.0) };
            let (ex, ey) = (x - (a[0] + t * dx), y - (a[1] + t * dy));
            ex * ex + ey * ey <= r2
        });
        near || self.torso.as_ref().is_some_and(|q| in_polygon(q, x, y))
    }

    /// Paints the covered pixels of a crop's input black (as the model's padding is).
    pub fn black_out(&self, input: &mut Tensor, t: &Transform, spec: &ModelSpec) {
        let (w, h) = (t.input_w, t.input_h);
        let black: [f32; 3] = std::array::from_fn(|c| -spec.input.mean[c] / spec.input.std[c]);
        for y in 0..h {
            let sy = t.offset_y + (y as f32 + 0.5) * t.scale_y;
            for x in 0..w {
                let sx = t.offset_x + (x as f32 + 0.5) * t.scale_x;
                if !self.covers(sx, sy) {
                    continue;
                }
                for (c, &v) in black.iter().enumerate() {
                    let i = match spec.input.layout {
                        Layout::Nhwc => (y * w + x) * 3 + c,
                        Layout::Nchw => c * w * h + y * w + x,
                    };
                    match (&mut input.data, spec.input.dtype) {
                        (TensorData::I32(d), DType::I32) => d[i] = v.round() as i32,
                        (TensorData::F32(d), _) => d[i] = v,
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Even-odd point in polygon.
fn in_polygon(poly: &[[f32; 2]], x: f32, y: f32) -> bool {
    let mut inside = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let ([xi, yi], [xj, yj]) = (poly[i], poly[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Resolves crops that hold one person, in proposal order (detector score first); each crop is
/// run again at most once, through `rerun` (the candidate, the person to black out). Returns
/// how many crops were run again; dropped candidates are marked.
pub fn resolve(
    candidates: &mut [Candidate],
    p: &TopDownParams,
    mut rerun: impl FnMut(&Candidate, &Occluder) -> Result<(Crop, Person)>,
) -> Result<usize> {
    let n = candidates.len();
    let mut done = vec![false; n];
    let mut runs = 0;
    for i in 0..n {
        for j in i + 1..n {
            if (done[i] && done[j]) || candidates[i].dropped || candidates[j].dropped {
                continue;
            }
            if pose_oks(&candidates[i].person, &candidates[j].person, p.joint_score) <= p.duplicate_oks {
                continue;
            }
            // The person stays with the better box (ties: the earlier one).
            let (winner, loser) = if candidates[i].proposal.score >= candidates[j].proposal.score { (i, j) } else { (j, i) };
            if done[loser] {
                continue;
            }
            let occluder = Occluder::of(&candidates[winner].person, p);
            let (crop, person) = rerun(&candidates[loser], &occluder)?;
            runs += 1;
            if pose_oks(&person, &candidates[winner].person, p.joint_score) > p.duplicate_oks {
                candidates[loser].dropped = true;
            } else {
                candidates[loser].crop = crop;
                candidates[loser].person = person;
            }
            done[loser] = true;
        }
    }
    Ok(runs)
}

/// The frame's people: those scoring at least `min_score`, best first, without duplicates
/// (a person more alike than `duplicate_oks` to a better one is the same), at most `max_people`.
pub fn final_people(candidates: Vec<Candidate>, min_score: f32, p: &TopDownParams) -> Vec<Person> {
    let mut people: Vec<Person> = candidates.into_iter().filter(|c| !c.dropped && c.person.score >= min_score).map(|c| c.person).collect();
    people.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Person> = Vec::new();
    for person in people {
        if kept.len() >= p.max_people {
            break;
        }
        if kept.iter().all(|k| pose_oks(&person, k, p.joint_score) <= p.duplicate_oks) {
            kept.push(person);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detections::Keypoint;
    use crate::topdown::proposals::Proposal;

    fn person(dx: f32, score: f32) -> Person {
        let keypoints = (0..17).map(|j| Keypoint { x: 100.0 + dx + (j % 2) as f32 * 30.0, y: 20.0 + j as f32 * 12.0, score }).collect();
        Person { keypoints, bbox: [0.0; 4], score, track_id: None }
    }

    fn candidate(dx: f32, det_score: f32) -> Candidate {
        Candidate {
            proposal: Proposal { bbox: [90.0 + dx, 10.0, 140.0 + dx, 220.0], score: det_score, tracked: false },
            crop: Crop::around(&[90.0 + dx, 10.0, 140.0 + dx, 220.0], 1.1),
            person: person(dx, 0.6),
            dropped: false,
        }
    }

    #[test]
    fn alike_people_score_high_and_others_low() {
        let p = TopDownParams::default();
        assert!((pose_oks(&person(0.0, 0.9), &person(0.0, 0.9), p.joint_score) - 1.0).abs() < 1e-6);
        assert!(pose_oks(&person(0.0, 0.9), &person(150.0, 0.9), p.joint_score) < 0.01);
        assert_eq!(pose_oks(&person(0.0, 0.1), &person(0.0, 0.9), p.joint_score), 0.0);
    }

    #[test]
    fn the_occluder_covers_its_limbs_and_torso_only() {
        let p = TopDownParams::default();
        let o = Occluder::of(&person(0.0, 0.9), &p);
        // On a joint, inside the torso (between shoulders 5, 6 and hips 11, 12), far away.
        assert!(o.covers(100.0, 20.0));
        assert!(o.covers(115.0, 100.0));
        assert!(!o.covers(400.0, 100.0));
        // Painting: the covered pixels of the crop turn black, the rest stay.
        let spec = crate::catalog::Catalog::builtin().get("movenet-thunder").unwrap().clone();
        let t = Transform { input_w: 4, input_h: 4, frame_w: 640, frame_h: 480, scale_x: 30.0, scale_y: 30.0, offset_x: 0.0, offset_y: 0.0 };
        let mut input = Tensor { shape: vec![1, 4, 4, 3], data: TensorData::I32(vec![200; 48]) };
        o.black_out(&mut input, &t, &spec);
        let TensorData::I32(v) = &input.data else { unreachable!() };
        // Pixel (3, 3) is source (105, 105), inside the torso; pixel (0, 0) is (15, 15).
        assert_eq!(&v[45..48], &[0, 0, 0]);
        assert_eq!(&v[..3], &[200, 200, 200]);
    }

    /// Two crops with one person: the weaker box is run again; the hidden person it then gives
    /// replaces the duplicate, and a second duplicate is dropped.
    #[test]
    fn duplicates_are_rerun_then_replaced_or_dropped() {
        let p = TopDownParams::default();
        let mut cands = vec![candidate(0.0, 0.8), candidate(2.0, 0.4), candidate(200.0, 0.5)];
        let mut calls = Vec::new();
        let runs = resolve(&mut cands, &p, |c, _| {
            calls.push(c.proposal.score);
            Ok((c.crop, person(60.0, 0.5)))
        })
        .unwrap();
        assert_eq!((runs, calls), (1, vec![0.4]));
        assert!(!cands[1].dropped && cands[1].person.keypoints[0].x == 160.0);
        let mut cands = vec![candidate(0.0, 0.8), candidate(2.0, 0.4)];
        resolve(&mut cands, &p, |c, _| Ok((c.crop, person(1.0, 0.6)))).unwrap();
        assert!(cands[1].dropped);
        let people = final_people(cands, 0.25, &p);
        assert_eq!(people.len(), 1);
    }

    #[test]
    fn the_final_list_is_ranked_deduplicated_and_capped() {
        let mut p = TopDownParams::default();
        let mut cands = vec![candidate(0.0, 0.5), candidate(1.0, 0.5), candidate(300.0, 0.5), candidate(600.0, 0.5)];
        cands[0].person.score = 0.4;
        cands[1].person.score = 0.9; // the same person, better: kept instead
        cands[3].person.score = 0.1; // below the minimum
        let people = final_people(cands.clone(), 0.25, &p);
        assert_eq!(people.iter().map(|q| q.score).collect::<Vec<_>>(), vec![0.9, 0.6]);
        p.max_people = 1;
        assert_eq!(final_people(cands, 0.25, &p).len(), 1);
    }
}
