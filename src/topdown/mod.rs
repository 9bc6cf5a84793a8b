//! Top-down pose: every person in the frame, with no cap on their number. A person detector
//! (NanoDet) gives boxes; a single-person model (MoveNet Thunder or Lightning) runs on each
//! person's square crop; the joints are mapped back to source pixels.
//!
//! Per frame:
//! 1. proposals (`proposals`): the detector's boxes on the first frame of a sequence, every
//!    `detect_every` frames and whenever a person was lost; in between, each person of the last
//!    frame gives the box of their joints (MediaPipe's region from landmarks), so the detector
//!    need not run on most frames of a video;
//! 2. a square crop per proposal (`crop`), its person from the single-person model;
//! 3. occlusion (`occlusion`): two crops that give the same person (one hidden behind the
//!    other) keep it for the better box, and the other crop is run again with that person
//!    blacked out, which finds the hidden one or drops a duplicate;
//! 4. people scoring below `min_score` are dropped, duplicates removed by pose similarity,
//!    the rest ranked by score and capped at `max_people`.
//!
//! The recipe's constants were chosen on tests/data (COCO, CrowdPose): docs/topdown.md.

pub mod crop;
pub mod occlusion;
pub mod proposals;

use crate::catalog::{Catalog, DecoderSpec, ModelSpec, PipelineSpec, Task};
use crate::decode::movenet_single;
use crate::decode::nanodet::{self, DetectParams};
use crate::detections::{BoxDetection, Person};
use crate::engine::EngineOptions;
use crate::frame::Frame;
use crate::preprocess;
use crate::session::{ModelSession, StageTimes};
use anyhow::{bail, Result};
use crop::Crop;
use proposals::Proposal;
use std::path::Path;
use std::time::Instant;

/// The recipe's settings (defaults: the measured recipe; `--detect-every`, `--max-people`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopDownParams {
    /// Run the detector on every this many frames of a video (1: every frame); always on the
    /// first frame of a sequence and after a person was lost.
    pub detect_every: u32,
    /// At most this many people per frame (the best scoring); also caps the crops run.
    pub max_people: usize,
    pub detect: DetectParams,
    /// A detector box's crop: a square of this times its longer side, centred on it.
    pub crop_scale: f32,
    /// The crop of a person followed from the last frame: this times the longer side of the box
    /// of their joints (joints span less than a detector's box: no head top, no feet).
    pub track_crop_scale: f32,
    /// Joints from this score count for boxes and pose similarity.
    pub joint_score: f32,
    /// Two crops whose people are more alike than this (OKS) hold one person.
    pub duplicate_oks: f32,
    /// The occluder blacked out when a crop is run again: limbs this thick (times the square
    /// root of the occluder's box area), and its torso.
    pub occluder_radius: f32,
    /// The crop of a second run: this times the box's longer side.
    pub rerun_crop_scale: f32,
    /// People scoring below this (the mean of their joint scores) are dropped.
    pub min_score: f32,
}

impl Default for TopDownParams {
    fn default() -> Self {
        TopDownParams {
            detect_every: 5,
            max_people: 100,
            detect: DetectParams { min_score: 0.2, nms_iou: 0.5 },
            crop_scale: 1.1,
            track_crop_scale: 1.25,
            joint_score: 0.2,
            duplicate_oks: 0.5,
            occluder_radius: 0.06,
            rerun_crop_scale: 1.0,
            min_score: 0.25,
        }
    }
}

/// Frames up to this aspect ratio (16:9 included) are detected whole; wider ones in
/// overlapping squares.
pub const MAX_DETECT_ASPECT: f32 = 1.8;

/// One person's result on the way through the frame's steps.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub proposal: Proposal,
    pub crop: Crop,
    pub person: Person,
    /// Held a person another crop keeps (`occlusion`).
    pub dropped: bool,
}

pub struct TopDown {
    pub name: String,
    pub detector: ModelSession,
    pub single: ModelSession,
    pub params: TopDownParams,
    /// The last frame's people (source pixels) and its index; empty at the start of a sequence.
    last: Vec<Person>,
    last_index: Option<u64>,
    frames_since_detect: u32,
    /// A person of the last frame was lost: detect on the next.
    lost: bool,
    /// Crops run on the last frame (for reports and benchmarks).
    pub crops_last_frame: usize,
    pub detected_last_frame: bool,
}

impl TopDown {
    /// The pipeline `spec`: its detector and single-person model from the catalogue; `pose_file`
    /// replaces the single-person model's file.
    pub fn open(catalog: &Catalog, spec: &PipelineSpec, pose_file: Option<&Path>, params: TopDownParams, engine: &EngineOptions) -> Result<TopDown> {
        if params.detect_every == 0 || params.max_people == 0 {
            bail!("--detect-every and --max-people must be at least 1");
        }
        let det_spec = catalog.get_for_task(&spec.detector, Task::Detection)?.clone();
        let pose_spec: ModelSpec = catalog.get_for_task(&spec.single_pose, Task::Pose)?.clone();
        if pose_spec.decoder != DecoderSpec::MovenetSinglepose {
            bail!("'{}' is not a single-person model", pose_spec.name);
        }
        let dir = crate::catalog::models_dir();
        let detector = ModelSession::open(det_spec.clone(), &dir.join(&det_spec.file), engine)?;
        let single_path = pose_file.map(Path::to_path_buf).unwrap_or_else(|| dir.join(&pose_spec.file));
        let single = ModelSession::open(pose_spec, &single_path, engine)?;
        Ok(TopDown {
            name: spec.name.clone(),
            detector,
            single,
            params,
            last: Vec::new(),
            last_index: None,
            frames_since_detect: 0,
            lost: false,
            crops_last_frame: 0,
            detected_last_frame: false,
        })
    }

    /// Plans both models (their inputs are fixed, whatever the frame).
    pub fn prepare_for(&mut self, width: usize, height: usize) -> Result<()> {
        self.detector.prepare_for(width, height)?;
        self.single.prepare_for(width, height)?;
        Ok(())
    }

    /// Forgets the people followed so far: the next frame is detected afresh.
    pub fn new_sequence(&mut self) {
        self.last.clear();
        self.last_index = None;
        self.frames_since_detect = 0;
        self.lost = false;
    }

    /// The people of `frame`, best first; `min_person` is the caller's person threshold (the
    /// higher of it and the recipe's `min_score` applies).
    pub fn people(&mut self, frame: &Frame, min_person: f32, times: &mut StageTimes) -> Result<Vec<Person>> {
        // A frame that does not follow the last one starts a new sequence.
        if self.last_index.is_some_and(|l| frame.index <= l) {
            self.new_sequence();
        }
        self.prepare_for(frame.width, frame.height)?;
        let p = self.params;
        let detect = self.last_index.is_none() || self.last.is_empty() || self.lost || self.frames_since_detect + 1 >= p.detect_every;
        let detections = if detect { self.detect(frame, times)? } else { Vec::new() };
        let proposals = proposals::merge(&detections, &self.last, &p, p.max_people);
        self.detected_last_frame = detect;
        self.frames_since_detect = if detect { 0 } else { self.frames_since_detect + 1 };

        let mut candidates = Vec::with_capacity(proposals.len());
        for prop in proposals {
            let scale = if prop.tracked { p.track_crop_scale } else { p.crop_scale };
            let crop = Crop::around(&prop.bbox, scale);
            let person = self.run_crop(frame, &crop, None, times)?;
            candidates.push(Candidate { proposal: prop, crop, person, dropped: false });
        }
        let mut runs = candidates.len();
        runs += occlusion::resolve(&mut candidates, &p, |c, occluder| {
            let crop = Crop::around(&c.proposal.bbox, p.rerun_crop_scale);
            self.run_crop(frame, &crop, Some(occluder), times).map(|person| (crop, person))
        })?;
        self.crops_last_frame = runs;

        let t = Instant::now();
        let min_score = p.min_score.max(min_person);
        // Someone followed from the last frame is gone (their crop holds nobody, and no other
        // crop has them): look for people afresh on the next frame.
        self.lost = candidates.iter().any(|c| c.proposal.tracked && !c.dropped && c.person.score < min_score);
        let people = occlusion::final_people(candidates, min_score, &p);
        self.last = people.clone();
        self.last_index = Some(frame.index);
        times.decode += t.elapsed();
        Ok(people)
    }

    /// The detector's person boxes. Its square input would squash a wide (or tall) frame and the
    /// people in it, so a frame more than `MAX_DETECT_ASPECT` times wider than high is covered by
    /// overlapping squares instead, each detected on its own, the boxes merged by NMS.
    fn detect(&mut self, frame: &Frame, times: &mut StageTimes) -> Result<Vec<BoxDetection>> {
        let DecoderSpec::Nanodet { class, strides, bins } = self.detector.spec.decoder.clone() else {
            bail!("'{}' is not a NanoDet detector", self.detector.spec.name);
        };
        let (long, short) = (frame.width.max(frame.height) as f32, frame.width.min(frame.height) as f32);
        if long <= MAX_DETECT_ASPECT * short {
            let (outputs, transform) = self.detector.run_frame(frame, times)?;
            let t = Instant::now();
            let found = nanodet::decode(&outputs, &transform, class, &strides, bins, self.params.detect)?;
            times.decode += t.elapsed();
            return Ok(found);
        }
        let tiles = (long / short).ceil() as usize;
        let step = (long - short) / (tiles - 1) as f32;
        let mut found = Vec::new();
        for i in 0..tiles {
            let along = i as f32 * step;
            let (x0, y0) = if frame.width >= frame.height { (along, 0.0) } else { (0.0, along) };
            let t0 = Instant::now();
            let (input, transform) = preprocess::prepare_crop(&self.detector.spec, frame, x0, y0, short);
            times.preprocess += t0.elapsed();
            let outputs = self.detector.run_input(&input, times)?;
            let t = Instant::now();
            found.extend(nanodet::decode(&outputs, &transform, class, &strides, bins, self.params.detect)?);
            times.decode += t.elapsed();
        }
        Ok(nanodet::nms(found, self.params.detect.nms_iou))
    }

    /// The single-person model on one crop, optionally with an occluder blacked out.
    fn run_crop(&mut self, frame: &Frame, crop: &Crop, occluder: Option<&occlusion::Occluder>, times: &mut StageTimes) -> Result<Person> {
        let t0 = Instant::now();
        let (mut input, transform) = preprocess::prepare_crop(&self.single.spec, frame, crop.x0, crop.y0, crop.side);
        if let Some(o) = occluder {
            o.black_out(&mut input, &transform, &self.single.spec);
        }
        times.preprocess += t0.elapsed();
        let outputs = self.single.run_input(&input, times)?;
        let t = Instant::now();
        let person = movenet_single::decode(&outputs[0], &transform, self.params.joint_score)?;
        times.decode += t.elapsed();
        Ok(person)
    }
}
