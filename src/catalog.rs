//! Model descriptions as data: what a network expects as input and how its outputs are read.
//!
//! The built-in catalogue is `models/catalog.json`, compiled into the binary so that `edgesight`
//! knows its models wherever it runs; the model *files* are found at run time (see `models_dir`).
//! Adding a model is a catalogue entry plus, when its output format is new, a decoder.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const BUILTIN_CATALOG: &str = include_str!("../models/catalog.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Pose,
    Segmentation,
    /// Person boxes (the first stage of top-down pose).
    Detection,
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Task::Pose => "pose",
            Task::Segmentation => "segmentation",
            Task::Detection => "detection",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    Nhwc,
    Nchw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    F32,
    I32,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I32 => "int32",
        }
    }
}

/// How the network's input size is chosen for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SizeRule {
    /// A fixed input, whatever the frame.
    Fixed { height: usize, width: usize },
    /// The frame's longest side becomes `longest_side`; both sides are padded up to `multiple_of`.
    LongestSide { longest_side: usize, multiple_of: usize },
    /// HigherHRNet/LitePose `get_multi_scale_size`: the short side becomes `short_side` (rounded
    /// up to `multiple_of`), the long side keeps the aspect ratio, rounded up to `multiple_of`.
    ShortSide { short_side: usize, multiple_of: usize },
}

/// How the frame is fitted into the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Scale both axes independently to fill the input.
    Stretch,
    /// Keep the aspect ratio, place the image at the top-left, pad the rest with zeros.
    Letterbox,
    /// Keep the aspect ratio, centre the image and pad both sides (LitePose's warpAffine about the
    /// image centre, with OpenCV's corner-aligned bilinear sampling and black borders).
    CenterPad,
}

/// The order of the colour channels the network takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelOrder {
    #[default]
    Rgb,
    /// Blue first (networks trained on OpenCV's images, e.g. NanoDet).
    Bgr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    pub layout: Layout,
    pub dtype: DType,
    pub size: SizeRule,
    pub resize: ResizeMode,
    #[serde(default)]
    pub channels: ChannelOrder,
    /// value = (pixel * scale - mean[c]) / std[c], pixel in 0..=255, c in `channels` order.
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecoderSpec {
    /// [1, N, 56]: 17 x (y, x, score) normalised to the input, then (ymin, xmin, ymax, xmax, score).
    MovenetMultipose { max_people: usize },
    /// [1, H, W, C] probabilities; `channel` is the person probability.
    Probability { channel: usize },
    /// [1, H, W, C] logits; softmax over C, `channel` is the person probability.
    Softmax { channel: usize },
    /// [1, C, h, w] class logits (C = classes.len()); upsampled to the input, then argmax.
    Classes,
    /// MoveNet SinglePose [1, 1, 17, 3]: (y, x, score) per joint, normalised to the input.
    MovenetSinglepose,
    /// NanoDet (GFL head): per stride, class scores [1, N, C] (sigmoid applied) and box
    /// distributions [1, N, 4 x bins]; `class` is the person class.
    Nanodet {
        class: usize,
        strides: Vec<usize>,
        bins: usize,
    },
    /// LitePose / HigherHRNet: out0 [1, 2J, H/4, W/4] heatmaps + tags, out1 [1, J, H/2, W/2]
    /// heatmaps, grouped by associative embedding; optionally averaged with a flipped pass.
    AssociativeEmbedding {
        #[serde(default)]
        flip_test: bool,
    },
}

impl DecoderSpec {
    /// Whether the decoder wants a second, horizontally flipped inference pass.
    pub fn wants_flip(&self) -> bool {
        matches!(self, DecoderSpec::AssociativeEmbedding { flip_test: true })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub task: Task,
    pub file: String,
    pub title: String,
    pub licence: String,
    /// False for architectures shipped with placeholder weights: a run warns about it.
    pub trained: bool,
    pub input: InputSpec,
    pub decoder: DecoderSpec,
    /// Architecture of an official checkpoint (`edgesight convert --arch`): when set, `file` may
    /// be that checkpoint, converted in memory for each input size.
    #[serde(default)]
    pub arch: Option<String>,
    #[serde(default)]
    pub keypoints: Option<String>,
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub palette: Vec<[u8; 3]>,
    /// Not bundled (a licence that forbids it): the user passes the file.
    #[serde(default)]
    pub user_supplied: bool,
    /// The output the decoder reads, by name, when it is not the model's first.
    #[serde(default)]
    pub primary_output: Option<String>,
    /// Recurrent state: inputs fed with the previous frame's outputs (zeros at the start of a
    /// sequence).
    #[serde(default)]
    pub recurrent: Vec<RecurrentState>,
}

/// One recurrent state tensor: NHWC [1, ceil(H / stride), ceil(W / stride), channels] for an
/// input of H x W, read from `output` and fed back to `input` on the next frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecurrentState {
    pub input: String,
    pub output: String,
    pub stride: usize,
    pub channels: usize,
}

impl RecurrentState {
    pub fn shape(&self, height: usize, width: usize) -> [usize; 4] {
        [1, height.div_ceil(self.stride), width.div_ceil(self.stride), self.channels]
    }
}

/// A pose method made of two catalogue models: a person detector, then a single-person pose
/// model on each person's crop (top-down).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineSpec {
    pub name: String,
    pub task: Task,
    pub title: String,
    pub detector: String,
    pub single_pose: String,
}

impl ModelSpec {
    /// Input tensor height and width for a frame of `frame_w` x `frame_h`.
    pub fn input_size(&self, frame_w: usize, frame_h: usize) -> (usize, usize) {
        match self.input.size {
            SizeRule::Fixed { height, width } => (height, width),
            SizeRule::LongestSide { longest_side, multiple_of } => {
                let m = multiple_of.max(1);
                let scale = longest_side as f64 / frame_w.max(frame_h).max(1) as f64;
                let round_up = |v: usize| v.div_ceil(m) * m;
                let h = round_up(((frame_h as f64 * scale).round() as usize).max(1));
                let w = round_up(((frame_w as f64 * scale).round() as usize).max(1));
                (h, w)
            }
            SizeRule::ShortSide { short_side, multiple_of } => {
                // get_multi_scale_size with scale 1: int arithmetic as in the official code.
                let m = multiple_of.max(1) as f64;
                let short = ((short_side as f64 + m - 1.0) / m).floor() * m;
                let (fw, fh) = (frame_w.max(1) as f64, frame_h.max(1) as f64);
                let long_of = |l: f64, s: f64| (((short / s * l + m - 1.0) / m).floor() * m) as usize;
                if frame_w < frame_h {
                    (long_of(fh, fw), short as usize)
                } else {
                    (short as usize, long_of(fw, fh))
                }
            }
        }
    }

    /// The input shape in the model's own layout (batch 1, 3 channels).
    pub fn input_shape(&self, height: usize, width: usize) -> [usize; 4] {
        match self.input.layout {
            Layout::Nhwc => [1, height, width, 3],
            Layout::Nchw => [1, 3, height, width],
        }
    }

    /// The family of official checkpoints this description is built from ("LitePose",
    /// "BEVANet"; another architecture by its name), for messages telling the user which file to pass; None for plain ONNX models.
    pub fn checkpoint_family(&self) -> Option<&str> {
        let arch = self.arch.as_deref()?;
        Some(if arch.starts_with("litepose") {
            "LitePose"
        } else if arch.starts_with("bevanet") {
            "BEVANet"
        } else {
            arch
        })
    }

    /// Fails when this model is built from an official checkpoint and its file `path` is absent:
    /// the message names the file and, through `remedy(family)`, what to pass instead.
    pub fn check_checkpoint_present(&self, path: &Path, remedy: impl FnOnce(&str) -> String) -> Result<()> {
        match self.checkpoint_family() {
            Some(family) if !path.is_file() => {
                bail!("'{}' has no model file here ({} does not exist): {}", self.name, path.display(), remedy(family))
            }
            _ => Ok(()),
        }
    }

    /// Replace the size target (longest or shortest side, for `--pose-size` / `--seg-size`);
    /// fixed-size models refuse.
    pub fn with_side(mut self, side: usize) -> Result<Self> {
        match &mut self.input.size {
            SizeRule::LongestSide { longest_side: target, multiple_of }
            | SizeRule::ShortSide { short_side: target, multiple_of } => {
                if side == 0 || side % *multiple_of != 0 || side > 8192 {
                    bail!("input size {side} for {} must be a positive multiple of {multiple_of} (at most 8192)", self.name);
                }
                *target = side;
                Ok(self)
            }
            SizeRule::Fixed { height, width } => {
                bail!("{} has a fixed input size ({height}x{width}); it cannot be changed", self.name)
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Catalog {
    pub models: Vec<ModelSpec>,
    #[serde(default)]
    pub pipelines: Vec<PipelineSpec>,
}

/// What a `--pose` / `--seg` name stands for.
pub enum Method<'a> {
    Model(&'a ModelSpec),
    Pipeline(&'a PipelineSpec),
}

impl Catalog {
    pub fn builtin() -> Catalog {
        // The built-in catalogue is part of the source tree; tests check that it parses.
        serde_json::from_str(BUILTIN_CATALOG).expect("models/catalog.json is valid")
    }

    pub fn get(&self, name: &str) -> Result<&ModelSpec> {
        self.models.iter().find(|m| m.name == name).with_context(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> String {
        let known: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).chain(self.pipelines.iter().map(|p| p.name.as_str())).collect();
        format!("unknown model '{name}' (known models: {})", known.join(", "))
    }

    /// A model by name that must be of the given task.
    pub fn get_for_task(&self, name: &str, task: Task) -> Result<&ModelSpec> {
        match self.method_for_task(name, task)? {
            Method::Model(m) => Ok(m),
            Method::Pipeline(p) => bail!("'{}' is a pipeline of two models, not one model", p.name),
        }
    }

    /// A model or a pipeline by name that must serve the given task.
    pub fn method_for_task(&self, name: &str, task: Task) -> Result<Method<'_>> {
        if let Some(p) = self.pipelines.iter().find(|p| p.name == name) {
            if p.task != task {
                bail!("'{name}' is a {} pipeline, not a {task} model", p.task);
            }
            return Ok(Method::Pipeline(p));
        }
        let spec = self.models.iter().find(|m| m.name == name).with_context(|| self.unknown(name))?;
        if spec.task != task {
            bail!("model '{name}' is a {} model, not a {task} model", spec.task);
        }
        Ok(Method::Model(spec))
    }

    pub fn default_for(task: Task) -> &'static str {
        match task {
            Task::Pose => "movenet-multipose",
            Task::Segmentation => "selfie",
            Task::Detection => "nanodet",
        }
    }
}

/// Where model files live: `$EDGESIGHT_MODELS` (the command line sets it to the folder
/// `data_dirs` found; the Android app to its unpacked assets), else `./models` when it holds the
/// catalogue, else the `models/` folder of the source tree (library users and tests).
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EDGESIGHT_MODELS") {
        return PathBuf::from(dir);
    }
    let local = Path::new("models");
    if local.join("catalog.json").is_file() {
        return local.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses_and_defaults_exist() {
        let c = Catalog::builtin();
        assert_eq!(c.get_for_task("movenet-multipose", Task::Pose).unwrap().input.dtype, DType::I32);
        assert!(c.get_for_task("selfie", Task::Pose).is_err());
        assert!(c.get("nope").unwrap_err().to_string().contains("known models"));
        for task in [Task::Pose, Task::Segmentation, Task::Detection] {
            c.get_for_task(Catalog::default_for(task), task).unwrap();
        }
        // Pipelines name models of the right tasks.
        for p in &c.pipelines {
            assert!(matches!(c.method_for_task(&p.name, Task::Pose), Ok(Method::Pipeline(_))));
            c.get_for_task(&p.detector, Task::Detection).unwrap();
            assert!(matches!(c.get_for_task(&p.single_pose, Task::Pose).unwrap().decoder, DecoderSpec::MovenetSinglepose));
        }
        assert!(c.get_for_task("topdown-thunder", Task::Pose).is_err());
        assert!(c.method_for_task("topdown-thunder", Task::Segmentation).is_err());
        // A recurrent model's states round up.
        let rvm = c.get("rvm").unwrap();
        assert!(rvm.user_supplied);
        assert_eq!(rvm.recurrent[0].shape(288, 511), [1, 144, 256, 16]);
    }

    #[test]
    fn longest_side_rounds_up_to_multiple() {
        let c = Catalog::builtin();
        let m = c.get("movenet-multipose").unwrap().clone().with_side(384).unwrap();
        assert_eq!(m.input_size(768, 576), (288, 384));
        assert_eq!(m.input_size(640, 425), (256, 384)); // 255 -> 256
        assert_eq!(m.input_size(500, 333), (256, 384));
        assert!(m.clone().with_side(100).is_err());
        let s = c.get("selfie").unwrap();
        assert_eq!(s.input_size(768, 576), (256, 256));
    }

    #[test]
    fn checkpoint_families_name_the_official_models() {
        let c = Catalog::builtin();
        assert_eq!(c.get("bevanet-s").unwrap().checkpoint_family(), Some("BEVANet"));
        assert_eq!(c.get("litepose-xs").unwrap().checkpoint_family(), Some("LitePose"));
        assert_eq!(c.get("selfie").unwrap().checkpoint_family(), None);
    }
}
