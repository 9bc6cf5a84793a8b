//! Runs the selected pose and segmentation models on a frame: the per-frame work every mode
//! (video, images, bench, live) shares.

use crate::catalog::{Catalog, DecoderSpec, Method, ModelSpec, Task};
use crate::decode::PoseThresholds;
use crate::decode::Segmentation;
use crate::detections::{ClassMap, Mask, Person};
use crate::engine::EngineOptions;
use crate::frame::Frame;
use crate::preprocess::{InputPlan, Prepared};
use crate::session::{ModelSession, StageTimes};
use crate::skeleton::{self, Schema};
use crate::topdown::{TopDown, TopDownParams};
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::PathBuf;

/// What the user chose: a catalogue name (or none) per task, optionally another file for it,
/// and how the models are planned.
#[derive(Debug, Clone, Default)]
pub struct ModelChoice {
    pub pose: Option<String>,
    pub pose_file: Option<PathBuf>,
    pub pose_size: Option<usize>,
    /// Average with a horizontally flipped pass (associative-embedding models).
    pub flip_test: bool,
    pub seg: Option<String>,
    pub seg_file: Option<PathBuf>,
    pub seg_size: Option<usize>,
    /// Backend, CPU threads and kernels for both models.
    pub engine: EngineOptions,
    /// Settings of a top-down pose pipeline (`--detect-every`, `--max-people`).
    pub topdown: TopDownParams,
}

/// How people are found: one model on the whole frame (bottom-up: MoveNet MultiPose, LitePose),
/// or a top-down pipeline (a detector, then a single-person model per crop).
pub enum PoseRunner {
    Model(ModelSession),
    TopDown(Box<TopDown>),
}

impl PoseRunner {
    /// The model whose keypoint schema the people follow.
    pub fn spec(&self) -> &ModelSpec {
        match self {
            PoseRunner::Model(s) => &s.spec,
            PoseRunner::TopDown(t) => &t.single.spec,
        }
    }

    /// The name chosen (`--pose`).
    pub fn name(&self) -> &str {
        match self {
            PoseRunner::Model(s) => &s.spec.name,
            PoseRunner::TopDown(t) => &t.name,
        }
    }

    /// Every model session it runs.
    pub fn sessions(&self) -> Vec<&ModelSession> {
        match self {
            PoseRunner::Model(s) => vec![s],
            PoseRunner::TopDown(t) => vec![&t.detector, &t.single],
        }
    }

    pub fn sessions_mut(&mut self) -> Vec<&mut ModelSession> {
        match self {
            PoseRunner::Model(s) => vec![s],
            PoseRunner::TopDown(t) => vec![&mut t.detector, &mut t.single],
        }
    }

    fn people(&mut self, frame: &Frame, th: PoseThresholds, times: &mut StageTimes) -> Result<Vec<Person>> {
        match self {
            PoseRunner::Model(s) => s.pose(frame, th, times),
            PoseRunner::TopDown(t) => t.people(frame, th.person, times),
        }
    }
}

pub struct Analysis {
    pub people: Vec<Person>,
    /// From person-mask models.
    pub mask: Option<Mask>,
    /// From semantic (class) segmentation models.
    pub classes: Option<ClassMap>,
}

/// Per-frame time of each model's stages.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnalysisTimes {
    pub pose: StageTimes,
    pub seg: StageTimes,
    /// Pose and segmentation ran at the same time.
    pub concurrent: bool,
}

impl AnalysisTimes {
    /// The frame's time in each stage: both models' summed, or, when they ran at the same
    /// time, the longer of the two (the one the frame waited for).
    pub fn total(&self) -> StageTimes {
        let sum = |t: &StageTimes| t.preprocess + t.inference + t.decode;
        if self.concurrent {
            return if sum(&self.pose) >= sum(&self.seg) { self.pose } else { self.seg };
        }
        let mut t = self.pose;
        t += self.seg;
        t
    }
}

/// A description of a loaded model for reports.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub task: String,
    pub file: String,
    pub trained: bool,
    pub input_shape: Vec<usize>,
    pub backend: String,
}

pub struct Analyzer {
    pub pose: Option<PoseRunner>,
    pub seg: Option<ModelSession>,
    pub thresholds: PoseThresholds,
    /// Run pose and segmentation on two threads at once (each on its own core when the machine
    /// has two); off, one after the other.
    pub concurrent: bool,
}

fn open(catalog: &Catalog, name: &str, file: Option<&PathBuf>, task: Task, size: Option<usize>, engine: &EngineOptions) -> Result<ModelSession> {
    let mut spec: ModelSpec = catalog.get_for_task(name, task)?.clone();
    if let Some(side) = size {
        spec = spec.with_side(side)?;
    }
    let path = match file {
        Some(f) => f.clone(),
        None => {
            let bundled = crate::catalog::models_dir().join(&spec.file);
            // A model built from an official checkpoint may come without one: say what to pass.
            let flag = match task {
                Task::Pose => "--pose-model",
                Task::Segmentation => "--seg-model",
                Task::Detection => "--detector-model",
            };
            // A model whose licence keeps it out of the bundle: the user brings the file.
            if spec.user_supplied && !bundled.is_file() {
                bail!("'{}' is not bundled (its licence, {}, keeps it out of edgesight): pass {flag} FILE with {}", spec.name, spec.licence, spec.file);
            }
            spec.check_checkpoint_present(&bundled, |family| {
                format!("pass {flag} FILE with an official {family} checkpoint (or an ONNX file made from one by `edgesight convert`)")
            })?;
            // The bundled file is what the catalogue describes; a user's own file carries its own weights.
            if !spec.trained {
                eprintln!("warning: model '{}' carries untrained weights; its output is not meaningful", spec.name);
            }
            bundled
        }
    };
    ModelSession::open(spec, &path, engine)
}

impl Analyzer {
    pub fn new(choice: &ModelChoice, thresholds: PoseThresholds) -> Result<Analyzer> {
        let catalog = Catalog::builtin();
        if choice.pose.is_none() && choice.seg.is_none() {
            bail!("both pose and segmentation are off (--pose none --seg none): nothing to do");
        }
        if choice.pose.is_none() && choice.pose_file.is_some() {
            bail!("--pose-model was given but pose is off (--pose none)");
        }
        if choice.seg.is_none() && choice.seg_file.is_some() {
            bail!("--seg-model was given but segmentation is off (--seg none)");
        }
        let mut pose = match &choice.pose {
            Some(n) => Some(match catalog.method_for_task(n, Task::Pose)? {
                Method::Model(_) => PoseRunner::Model(open(&catalog, n, choice.pose_file.as_ref(), Task::Pose, choice.pose_size, &choice.engine)?),
                Method::Pipeline(p) => {
                    if choice.pose_size.is_some() {
                        bail!("--pose-size does not apply to '{n}': its models have fixed input sizes");
                    }
                    PoseRunner::TopDown(Box::new(TopDown::open(&catalog, p, choice.pose_file.as_deref(), choice.topdown, &choice.engine)?))
                }
            }),
            None => None,
        };
        if choice.flip_test {
            let spec = match pose.as_mut() {
                Some(PoseRunner::Model(s)) => Some(&mut s.spec),
                Some(PoseRunner::TopDown(t)) => bail!("--flip-test applies to LitePose models, not '{}'", t.name),
                None => None,
            };
            match spec {
                Some(spec) if matches!(spec.decoder, DecoderSpec::AssociativeEmbedding { .. }) => {
                    spec.decoder = DecoderSpec::AssociativeEmbedding { flip_test: true };
                }
                Some(spec) => bail!("--flip-test applies to LitePose models, not '{}'", spec.name),
                None => bail!("--flip-test was given but pose is off"),
            }
        }
        let seg = match &choice.seg {
            Some(n) => Some(open(&catalog, n, choice.seg_file.as_ref(), Task::Segmentation, choice.seg_size, &choice.engine)?),
            None => None,
        };
        Ok(Analyzer { pose, seg, thresholds, concurrent: false })
    }

    /// Every model session, pose first.
    pub fn sessions(&self) -> Vec<&ModelSession> {
        let mut all = self.pose.as_ref().map(|p| p.sessions()).unwrap_or_default();
        all.extend(self.seg.iter());
        all
    }

    pub fn sessions_mut(&mut self) -> Vec<&mut ModelSession> {
        let mut all = self.pose.as_mut().map(|p| p.sessions_mut()).unwrap_or_default();
        all.extend(self.seg.iter_mut());
        all
    }

    /// Plans every model for this frame size, so a model that does not fit fails up front.
    pub fn prepare_for(&mut self, width: usize, height: usize) -> Result<()> {
        for s in self.sessions_mut() {
            s.prepare_for(width, height)?;
        }
        Ok(())
    }

    /// The next frame starts a new sequence (a new video or source, a seek, or an image): what
    /// is carried from frame to frame (a recurrent model's state, top-down's followed people)
    /// is forgotten.
    pub fn new_sequence(&mut self) {
        for s in self.sessions_mut() {
            s.new_sequence();
        }
        if let Some(PoseRunner::TopDown(t)) = &mut self.pose {
            t.new_sequence();
        }
    }

    pub fn schema(&self) -> Option<Schema> {
        self.pose.as_ref().and_then(|p| p.spec().keypoints.as_deref()).and_then(skeleton::by_name)
    }

    /// The models that take the whole frame, whose inputs a stage ahead can make (top-down's
    /// crops depend on the people found, so they are made here).
    pub fn input_plan(&self) -> InputPlan {
        let mut specs: Vec<ModelSpec> = Vec::new();
        if let Some(PoseRunner::Model(s)) = &self.pose {
            specs.push(s.spec.clone());
        }
        specs.extend(self.seg.iter().map(|s| s.spec.clone()));
        InputPlan::new(specs)
    }

    /// As `analyze`, with inputs made ahead for this frame (`input_plan`).
    pub fn analyze_prepared(&mut self, frame: &Frame, inputs: Vec<Prepared>, times: &mut AnalysisTimes) -> Result<Analysis> {
        for input in inputs {
            let session = self.sessions_mut().into_iter().find(|s| s.spec.name == input.model);
            if let Some(s) = session {
                s.give_ahead(input);
            }
        }
        self.analyze(frame, times)
    }

    pub fn analyze(&mut self, frame: &Frame, times: &mut AnalysisTimes) -> Result<Analysis> {
        let thresholds = self.thresholds;
        let (people, seg) = match (&mut self.pose, &mut self.seg) {
            (Some(p), Some(s)) if self.concurrent => {
                times.concurrent = true;
                let (pose_times, seg_times) = (&mut times.pose, &mut times.seg);
                std::thread::scope(|scope| {
                    let seg = scope.spawn(move || s.segment(frame, seg_times));
                    let people = p.people(frame, thresholds, pose_times);
                    let seg = seg.join().unwrap_or_else(|_| Err(anyhow::anyhow!("segmentation failed (its thread panicked)")));
                    (people, Some(seg))
                })
            }
            (pose, seg) => {
                let people = match pose {
                    Some(p) => p.people(frame, thresholds, &mut times.pose),
                    None => Ok(Vec::new()),
                };
                let people = people?;
                (Ok(people), seg.as_mut().map(|s| s.segment(frame, &mut times.seg)))
            }
        };
        let people = people?;
        let (mask, classes) = match seg.transpose()? {
            Some(Segmentation::Person(m)) => (Some(m), None),
            Some(Segmentation::Classes(c)) => (None, Some(c)),
            None => (None, None),
        };
        Ok(Analysis { people, mask, classes })
    }

    /// Loaded models as reported, for frames of the given size.
    pub fn model_infos(&self, width: usize, height: usize) -> Vec<ModelInfo> {
        self.sessions()
            .into_iter()
            .map(|s| {
                let (h, w) = s.spec.input_size(width, height);
                ModelInfo {
                    name: s.spec.name.clone(),
                    task: s.spec.task.to_string(),
                    file: s.path.display().to_string(),
                    trained: s.spec.trained,
                    input_shape: s.spec.input_shape(h, w).to_vec(),
                    backend: s.backend_name().to_string(),
                }
            })
            .collect()
    }
}
