//! People over time: each frame's people are matched to tracks (identities) online, and the
//! matched joints and boxes are smoothed per track.
//!
//! Matching follows ByteTrack's two stages. People scoring at least the person threshold are
//! matched first, to every live track (seen last frame or lost for less than the lost-track
//! time), by the combined OKS + IoU similarity against each track's motion prediction, solved
//! optimally (`assignment::min_cost_assignment`). People below it (down to the low threshold) are
//! then matched by box overlap to the tracks seen last frame that are still unmatched: a person
//! whose score dips for a frame keeps its track, while low-score people never start one. Time
//! comes from frame timestamps, so skipped frames and variable frame rates only lengthen a step.

use super::motion::{self, BoxMotion};
use super::one_euro::{OneEuro, OneEuroParams};
use super::similarity;
use crate::assignment::min_cost_assignment;
use crate::detections::{Keypoint, Person};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq)]
pub struct TrackerParams {
    /// A track unseen this long (seconds) is ended; until then it can be matched again.
    pub lost_time_s: f64,
    /// People between this and the person threshold only continue tracks (second stage).
    pub low_score: f32,
    /// Least combined similarity for a first-stage match.
    pub min_similarity: f32,
    /// Least box overlap for a second-stage match.
    pub min_low_iou: f32,
    /// Joints below this score take no part in matching and do not move the smoothing filters.
    pub joint_threshold: f32,
    /// One-Euro filter per joint coordinate (and box corner); `None`: raw positions.
    pub smoothing: Option<OneEuroParams>,
}

impl Default for TrackerParams {
    fn default() -> Self {
        TrackerParams {
            lost_time_s: 1.0,
            low_score: 0.1,
            min_similarity: 0.2,
            min_low_iou: 0.4,
            joint_threshold: 0.3,
            smoothing: Some(OneEuroParams::default()),
        }
    }
}

struct Track {
    id: u64,
    motion: BoxMotion,
    /// The last matched pose (raw), for matching.
    keypoints: Vec<Keypoint>,
    last_seen: f64,
    /// Matched in the previous update.
    active: bool,
    frames: u64,
    joints: Vec<[OneEuro; 2]>,
    corners: [OneEuro; 4],
}

/// Run totals for report.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrackSummary {
    /// Tracks started (ids handed out).
    pub count: u64,
    /// Frames per track in which it was matched.
    pub mean_length_frames: f64,
    pub max_length_frames: u64,
    /// Frames in which at least one track came back after being lost.
    pub frames_with_reacquired_tracks: u64,
}

pub struct Tracker {
    params: TrackerParams,
    /// Person threshold: the first stage, and new tracks.
    high_score: f32,
    sigmas: Option<&'static [f32]>,
    tracks: Vec<Track>,
    next_id: u64,
    created: u64,
    ended_lengths: (u64, u64, u64),
    reacquired_frames: u64,
}

/// Cost of pairs below the gate: large, so the solver takes them only when it must (and then
/// they are dropped).
const GATED: f64 = 1e6;

impl Tracker {
    /// `high_score`: the person threshold; `sigmas`: the schema's OKS sigmas when known.
    pub fn new(params: TrackerParams, high_score: f32, sigmas: Option<&'static [f32]>) -> Tracker {
        Tracker { params, high_score, sigmas, tracks: Vec::new(), next_id: 1, created: 0, ended_lengths: (0, 0, 0), reacquired_frames: 0 }
    }

    /// The score the decoder should keep people down to (the second stage's threshold).
    pub fn decode_threshold(params: &TrackerParams, person_threshold: f32) -> f32 {
        params.low_score.min(person_threshold)
    }

    /// The id the next new track gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Starts handing out ids at `next` (a tracker that replaces another within one run, so no id
    /// is given twice).
    pub fn continue_ids_from(&mut self, next: u64) {
        self.next_id = self.next_id.max(next);
    }

    /// Live tracks (including lost ones not yet ended).
    pub fn live_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Assigns `track_id`s to `people` seen at time `t` (seconds), smooths the matched ones and
    /// returns those to report: every person at or above the person threshold, and lower ones that
    /// continue a track, in their given order.
    pub fn update(&mut self, people: Vec<Person>, t: f64) -> Vec<Person> {
        let lost = self.params.lost_time_s;
        let (ended, kept): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks).into_iter().partition(|tr| t - tr.last_seen > lost);
        for tr in ended {
            self.end(tr);
        }
        self.tracks = kept;

        let predicted: Vec<([f32; 4], Vec<Keypoint>)> = self.tracks.iter().map(|tr| predict(tr, t)).collect();
        let (high, low): (Vec<usize>, Vec<usize>) = (0..people.len()).partition(|&i| people[i].score >= self.high_score);
        let mut track_of: Vec<Option<usize>> = vec![None; people.len()];
        let mut taken = vec![false; self.tracks.len()];

        // Stage 1: confident people against every live track.
        let all: Vec<usize> = (0..self.tracks.len()).collect();
        let th = self.params.joint_threshold;
        let sim1 = |d: &Person, k: usize| {
            let (b, kp) = &predicted[k];
            let area = (b[2] - b[0]) * (b[3] - b[1]);
            similarity::combined(similarity::oks(kp, &d.keypoints, area, self.sigmas, th), similarity::iou(b, &d.bbox))
        };
        self.stage(&people, &high, &all, sim1, self.params.min_similarity, &mut track_of, &mut taken);

        // Stage 2: the rest, by box overlap, against tracks seen last frame.
        let recent: Vec<usize> = (0..self.tracks.len()).filter(|&k| !taken[k] && self.tracks[k].active).collect();
        let sim2 = |d: &Person, k: usize| similarity::iou(&predicted[k].0, &d.bbox);
        self.stage(&people, &low, &recent, sim2, self.params.min_low_iou, &mut track_of, &mut taken);

        let mut reacquired = false;
        let mut out = Vec::with_capacity(people.len());
        for (i, mut p) in people.into_iter().enumerate() {
            let k = match track_of[i] {
                Some(k) => k,
                None if p.score >= self.high_score => {
                    self.tracks.push(new_track(self.next_id, &p, t));
                    self.next_id += 1;
                    self.created += 1;
                    taken.push(true);
                    self.tracks.len() - 1
                }
                None => continue,
            };
            let tr = &mut self.tracks[k];
            if !tr.active && tr.frames > 0 {
                // Back after a gap: the filters start afresh.
                reacquired = true;
                tr.joints.iter_mut().flatten().for_each(OneEuro::reset);
                tr.corners.iter_mut().for_each(OneEuro::reset);
            }
            tr.motion.observe(&p.bbox, t);
            tr.keypoints.clone_from(&p.keypoints);
            tr.last_seen = t;
            tr.frames += 1;
            if let Some(sp) = &self.params.smoothing {
                smooth(tr, &mut p, t, th, sp);
            }
            p.track_id = Some(tr.id);
            out.push(p);
        }
        for (tr, &matched) in self.tracks.iter_mut().zip(&taken) {
            tr.active = matched;
        }
        if reacquired {
            self.reacquired_frames += 1;
        }
        out
    }

    /// One matching stage: `dets` x `candidates` by `sim`, pairs below `gate` refused.
    #[allow(clippy::too_many_arguments)]
    fn stage(
        &self,
        people: &[Person],
        dets: &[usize],
        candidates: &[usize],
        sim: impl Fn(&Person, usize) -> f32,
        gate: f32,
        track_of: &mut [Option<usize>],
        taken: &mut [bool],
    ) {
        if dets.is_empty() || candidates.is_empty() {
            return;
        }
        let sims: Vec<f32> = dets.iter().flat_map(|&d| candidates.iter().map(move |&k| (d, k))).map(|(d, k)| sim(&people[d], k)).collect();
        let cost: Vec<f64> = sims.iter().map(|&s| if s >= gate { 1.0 - s as f64 } else { GATED }).collect();
        for (r, c) in min_cost_assignment(&cost, dets.len(), candidates.len()).into_iter().enumerate() {
            if let Some(c) = c.filter(|&c| sims[r * candidates.len() + c] >= gate) {
                track_of[dets[r]] = Some(candidates[c]);
                taken[candidates[c]] = true;
            }
        }
    }

    fn end(&mut self, tr: Track) {
        let (n, sum, max) = &mut self.ended_lengths;
        *n += 1;
        *sum += tr.frames;
        *max = (*max).max(tr.frames);
    }

    /// Totals so far, counting live tracks as they stand.
    pub fn summary(&self) -> TrackSummary {
        let (mut n, mut sum, mut max) = self.ended_lengths;
        for tr in &self.tracks {
            n += 1;
            sum += tr.frames;
            max = max.max(tr.frames);
        }
        TrackSummary {
            count: self.created,
            mean_length_frames: if n > 0 { sum as f64 / n as f64 } else { 0.0 },
            max_length_frames: max,
            frames_with_reacquired_tracks: self.reacquired_frames,
        }
    }
}

fn new_track(id: u64, p: &Person, t: f64) -> Track {
    Track {
        id,
        motion: BoxMotion::new(&p.bbox, t),
        keypoints: p.keypoints.clone(),
        last_seen: t,
        active: false,
        frames: 0,
        joints: vec![Default::default(); p.keypoints.len()],
        corners: Default::default(),
    }
}

/// The track's box and pose moved to time `t` by its motion (the pose shifted and scaled with
/// the box).
fn predict(tr: &Track, t: f64) -> ([f32; 4], Vec<Keypoint>) {
    let now = tr.motion.state;
    let next = tr.motion.predict(t);
    let (sx, sy) = (next[2] / now[2].max(1.0), next[3] / now[3].max(1.0));
    let kp = tr
        .keypoints
        .iter()
        .map(|k| Keypoint { x: next[0] + (k.x - now[0]) * sx, y: next[1] + (k.y - now[1]) * sy, score: k.score })
        .collect();
    (motion::corners(&next), kp)
}

/// Smooths the matched person's joints and box corners, each filter drifting with the track's
/// box (a point at relative position r across the box moves at the centre's velocity plus r times
/// the size's), so walking and camera motion cause no lag.
fn smooth(tr: &mut Track, p: &mut Person, t: f64, threshold: f32, sp: &OneEuroParams) {
    let [cx, cy, w, h] = tr.motion.state;
    let [vx, vy, vw, vh] = tr.motion.velocity;
    let drift_x = |x: f32| vx + (x - cx) / w.max(1.0) * vw;
    let drift_y = |y: f32| vy + (y - cy) / h.max(1.0) * vh;
    let scale = h.max(1.0);
    if tr.joints.len() != p.keypoints.len() {
        tr.joints = vec![Default::default(); p.keypoints.len()];
    }
    for (k, f) in p.keypoints.iter_mut().zip(tr.joints.iter_mut()) {
        // An unconfident joint is not drawn; it must not drag the filter either.
        if k.score >= threshold {
            k.x = f[0].filter(k.x, t, scale, drift_x(k.x), sp);
            k.y = f[1].filter(k.y, t, scale, drift_y(k.y), sp);
        }
    }
    let drifts = [drift_x(p.bbox[0]), drift_y(p.bbox[1]), drift_x(p.bbox[2]), drift_y(p.bbox[3])];
    for ((v, f), d) in p.bbox.iter_mut().zip(tr.corners.iter_mut()).zip(drifts) {
        *v = f.filter(*v, t, scale, d, sp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(cx: f32, cy: f32, score: f32) -> Person {
        let keypoints = (0..17)
            .map(|j| Keypoint { x: cx - 20.0 + (j % 5) as f32 * 10.0, y: cy - 80.0 + j as f32 * 10.0, score: 0.9 })
            .collect();
        Person { keypoints, bbox: [cx - 25.0, cy - 90.0, cx + 25.0, cy + 90.0], score, track_id: None }
    }

    fn ids(people: &[Person]) -> Vec<u64> {
        people.iter().map(|p| p.track_id.unwrap()).collect()
    }

    fn raw() -> TrackerParams {
        TrackerParams { smoothing: None, ..TrackerParams::default() }
    }

    #[test]
    fn crossing_people_keep_their_ids() {
        let mut tr = Tracker::new(raw(), 0.2, None);
        let mut first = None;
        for i in 0..40 {
            let t = i as f64 / 25.0;
            // Two people walking towards each other and past; the detector lists them by score,
            // which swaps halfway.
            let a = person(100.0 + 8.0 * i as f32, 200.0, if i < 20 { 0.9 } else { 0.5 });
            let b = person(420.0 - 8.0 * i as f32, 210.0, if i < 20 { 0.5 } else { 0.9 });
            let (a_first, people) = if i < 20 { (true, vec![a, b]) } else { (false, vec![b, a]) };
            let out = tr.update(people, t);
            let mut got = ids(&out);
            if !a_first {
                got.reverse();
            }
            match first {
                None => first = Some(got),
                Some(ref f) => assert_eq!(&got, f, "frame {i}"),
            }
        }
        assert_eq!(tr.summary().count, 2);
        assert_eq!(tr.summary().max_length_frames, 40);
    }

    #[test]
    fn a_person_hidden_briefly_gets_the_id_back_and_a_long_absence_does_not() {
        let mut tr = Tracker::new(raw(), 0.2, None);
        let mut t = 0.0;
        let mut step = |tr: &mut Tracker, present: bool, x: f32| {
            t += 0.04;
            tr.update(if present { vec![person(x, 200.0, 0.8)] } else { vec![] }, t)
        };
        let id = ids(&step(&mut tr, true, 100.0))[0];
        for i in 1..10 {
            step(&mut tr, true, 100.0 + 4.0 * i as f32);
        }
        for _ in 0..10 {
            step(&mut tr, false, 0.0); // 0.4 s behind a cover, still walking
        }
        let back = step(&mut tr, true, 100.0 + 4.0 * 20.0);
        assert_eq!(ids(&back), vec![id], "re-acquired after 0.4 s");
        assert_eq!(tr.summary().frames_with_reacquired_tracks, 1);
        for _ in 0..30 {
            step(&mut tr, false, 0.0); // 1.2 s: ended
        }
        assert_eq!(tr.live_tracks(), 0);
        let new = step(&mut tr, true, 180.0);
        assert!(ids(&new)[0] > id, "ids are never reused");
    }

    #[test]
    fn a_replacing_tracker_continues_the_ids() {
        let mut a = Tracker::new(raw(), 0.2, None);
        a.update(vec![person(100.0, 200.0, 0.9), person(300.0, 200.0, 0.9)], 0.0);
        let mut b = Tracker::new(raw(), 0.2, None);
        b.continue_ids_from(a.next_id());
        assert_eq!(ids(&b.update(vec![person(100.0, 200.0, 0.9)], 0.04)), vec![3]);
        assert_eq!(b.summary().count, 1);
    }

    #[test]
    fn low_scores_continue_tracks_but_never_start_one() {
        let mut tr = Tracker::new(raw(), 0.3, None);
        assert!(tr.update(vec![person(100.0, 200.0, 0.15)], 0.0).is_empty());
        let id = ids(&tr.update(vec![person(100.0, 200.0, 0.8)], 0.04))[0];
        let dip = tr.update(vec![person(102.0, 200.0, 0.15), person(400.0, 200.0, 0.15)], 0.08);
        assert_eq!(ids(&dip), vec![id], "the dip continues the track; the stray low score is dropped");
        assert_eq!(tr.summary().count, 1);
    }

    #[test]
    fn smoothing_damps_a_still_persons_jitter_and_skips_unconfident_joints() {
        let mut tr = Tracker::new(TrackerParams::default(), 0.2, None);
        let mut rng = crate::rng::SplitMix64(3);
        let (mut raw_steps, mut out_steps) = (0.0f32, 0.0f32);
        let (mut prev_raw, mut prev_out): (Option<Person>, Option<Person>) = (None, None);
        for i in 0..50 {
            let mut p = person(200.0, 200.0, 0.9);
            for k in &mut p.keypoints {
                k.x += (rng.unit_f32() - 0.5) * 6.0;
                k.y += (rng.unit_f32() - 0.5) * 6.0;
            }
            // Joint 0 is unconfident and far off every other frame.
            if i % 2 == 1 {
                p.keypoints[0] = Keypoint { x: 0.0, y: 0.0, score: 0.05 };
            }
            let out = tr.update(vec![p.clone()], i as f64 / 25.0).remove(0);
            let step = |a: &Person, b: &Person| (1..17).map(|j| (a.keypoints[j].x - b.keypoints[j].x).abs()).sum::<f32>();
            if let (Some(r), Some(o)) = (&prev_raw, &prev_out) {
                raw_steps += step(&p, r);
                out_steps += step(&out, o);
            }
            if i % 2 == 0 && i > 0 {
                // The confident joint 0 has not been dragged towards (0, 0).
                assert!(out.keypoints[0].x > 150.0, "frame {i}: {:?}", out.keypoints[0]);
            } else if i % 2 == 1 {
                assert_eq!(out.keypoints[0].x, 0.0, "an unconfident joint is passed through");
            }
            prev_raw = Some(p);
            prev_out = Some(out);
        }
        assert!(out_steps < 0.5 * raw_steps, "smoothed {out_steps} raw {raw_steps}");
    }

    #[test]
    fn many_frames_do_not_accumulate_tracks() {
        let mut tr = Tracker::new(TrackerParams::default(), 0.2, None);
        for i in 0..5000 {
            // A new person every 10 frames, each seen only briefly.
            let x = ((i / 10) % 7) as f32 * 90.0 + 50.0;
            tr.update(vec![person(x, 200.0, 0.8)], i as f64 / 25.0);
            assert!(tr.live_tracks() <= 4, "frame {i}: {} tracks", tr.live_tracks());
        }
    }
}
