//! Runs the selected pose and segmentation models on a frame: the per-frame work every mode
//! (video, images, bench, live) shares.

use crate::catalog::{Catalog, DecoderSpec, ModelSpec, Task};
use crate::decode::PoseThresholds;
use crate::decode::Segmentation;
use crate::detections::{ClassMap, Mask, Person};
use crate::engine::EngineOptions;
use crate::frame::Frame;
use crate::session::{ModelSession, StageTimes};
use crate::skeleton::{self, Schema};
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
}

impl AnalysisTimes {
    pub fn total(&self) -> StageTimes {
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
    pub pose: Option<ModelSession>,
    pub seg: Option<ModelSession>,
    pub thresholds: PoseThresholds,
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
            };
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
            Some(n) => Some(open(&catalog, n, choice.pose_file.as_ref(), Task::Pose, choice.pose_size, &choice.engine)?),
            None => None,
        };
        if choice.flip_test {
            match pose.as_mut().map(|p| &mut p.spec) {
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
        Ok(Analyzer { pose, seg, thresholds })
    }

    /// Plans every model for this frame size, so a model that does not fit fails up front.
    pub fn prepare_for(&mut self, width: usize, height: usize) -> Result<()> {
        for s in self.pose.iter_mut().chain(self.seg.iter_mut()) {
            s.prepare_for(width, height)?;
        }
        Ok(())
    }

    pub fn schema(&self) -> Option<Schema> {
        self.pose.as_ref().and_then(|p| p.spec.keypoints.as_deref()).and_then(skeleton::by_name)
    }

    pub fn analyze(&mut self, frame: &Frame, times: &mut AnalysisTimes) -> Result<Analysis> {
        let people = match &mut self.pose {
            Some(p) => p.pose(frame, self.thresholds, &mut times.pose)?,
            None => Vec::new(),
        };
        let (mask, classes) = match &mut self.seg {
            Some(s) => match s.segment(frame, &mut times.seg)? {
                Segmentation::Person(m) => (Some(m), None),
                Segmentation::Classes(c) => (None, Some(c)),
            },
            None => (None, None),
        };
        Ok(Analysis { people, mask, classes })
    }

    /// Loaded models as reported, for frames of the given size.
    pub fn model_infos(&self, width: usize, height: usize) -> Vec<ModelInfo> {
        self.pose
            .iter()
            .chain(self.seg.iter())
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
