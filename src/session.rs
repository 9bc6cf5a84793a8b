//! A model ready to run on frames: its description, its file, and an engine planned per input
//! size (video frames share one plan; images of other sizes get their own, cached).

use crate::catalog::{ModelSpec, Task};
use crate::convert;
use crate::decode::{self, PoseThresholds};
use crate::decode::Segmentation;
use crate::detections::Person;
use crate::engine::{self, Engine, EngineOptions, Tensor};
use crate::frame::Frame;
use crate::preprocess::Prepared;
use crate::preprocess;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Time spent in each stage of one model run.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub preprocess: Duration,
    pub inference: Duration,
    pub decode: Duration,
}

impl std::ops::AddAssign for StageTimes {
    fn add_assign(&mut self, o: StageTimes) {
        self.preprocess += o.preprocess;
        self.inference += o.inference;
        self.decode += o.decode;
    }
}

pub struct ModelSession {
    pub spec: ModelSpec,
    pub path: PathBuf,
    /// Set when `path` is an official checkpoint: its tensors, converted per input size.
    checkpoint: Option<(convert::Arch, convert::Entries)>,
    engines: HashMap<Vec<usize>, Box<dyn Engine>>,
    backend: String,
    /// How engines are planned (backend, CPU threads and kernels).
    options: EngineOptions,
    pose_decoder: decode::PoseDecoder,
    /// A recurrent model's state for the next frame (None: zeros), and the index of the frame
    /// it came from (a frame that does not come after it starts a new sequence).
    state: Option<(Vec<Tensor>, u64)>,
    /// The next frame's input, made ahead on another thread (`prepare_ahead`).
    ahead: Option<Prepared>,
}

impl ModelSession {
    /// Opens `path` as the model `spec` describes, to be planned as `options` say. Nothing is
    /// planned yet; `prepare_for` plans eagerly (so a wrong model fails before any frame is read).
    pub fn open(spec: ModelSpec, path: &Path, options: &EngineOptions) -> Result<ModelSession> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => anyhow::bail!("model file {} for '{}' is a folder, not a model file", path.display(), spec.name),
            Ok(m) if !m.is_file() => anyhow::bail!("model file {} for '{}' is not a regular file", path.display(), spec.name),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                anyhow::bail!("model file {} for '{}' does not exist", path.display(), spec.name)
            }
            Err(e) => anyhow::bail!("cannot read model file {} for '{}': {e}", path.display(), spec.name),
        }
        let checkpoint = if convert::is_zip(path) {
            // Only a zip laid out as torch.save writes it is called a checkpoint.
            if let Err(why) = crate::checkpoint::check_torch_zip(path) {
                anyhow::bail!(
                    "model file {} for '{}' is a zip archive but not a PyTorch checkpoint ({why:#}); give an ONNX file{}",
                    path.display(),
                    spec.name,
                    if spec.arch.is_some() { " or an official checkpoint" } else { "" }
                );
            }
            let Some(arch) = &spec.arch else {
                anyhow::bail!(
                    "{} is a PyTorch checkpoint, but '{}' is not built from one (architectures: {})",
                    path.display(),
                    spec.name,
                    convert::arch_names().join(", ")
                );
            };
            let arch = convert::arch(arch)?;
            Some((arch, convert::read_checkpoint(path)?))
        } else {
            None
        };
        Ok(ModelSession {
            spec,
            path: path.to_path_buf(),
            checkpoint,
            engines: HashMap::new(),
            backend: String::new(),
            options: options.clone(),
            pose_decoder: Default::default(),
            state: None,
            ahead: None,
        })
    }

    /// A session for an architecture with seeded random weights instead of a file: for speed
    /// measurements only (speed does not depend on weight values).
    pub fn with_random_weights(spec: ModelSpec, seed: u64, options: &EngineOptions) -> Result<ModelSession> {
        let Some(arch) = &spec.arch else {
            anyhow::bail!("'{}' is not built from a checkpoint; random weights need an architecture", spec.name)
        };
        let arch = convert::arch(arch)?;
        let entries = convert::random_entries(arch, seed);
        let path = PathBuf::from(format!("<random weights for {}>", spec.name));
        Ok(ModelSession {
            spec,
            path,
            checkpoint: Some((arch, entries)),
            engines: HashMap::new(),
            backend: String::new(),
            options: options.clone(),
            pose_decoder: Default::default(),
            state: None,
            ahead: None,
        })
    }

    /// The ONNX graph this session runs for frames of `frame_w` x `frame_h` (for export).
    pub fn onnx_bytes(&self, frame_w: usize, frame_h: usize) -> Result<Vec<u8>> {
        match &self.checkpoint {
            Some((arch, entries)) => {
                let (h, w) = self.spec.input_size(frame_w, frame_h);
                Ok(convert::build(*arch, entries, h, w)?.onnx)
            }
            None => std::fs::read(&self.path).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    /// Plans the engine for frames of `frame_w` x `frame_h` (a no-op when already planned).
    pub fn prepare_for(&mut self, frame_w: usize, frame_h: usize) -> Result<&mut Box<dyn Engine>> {
        let (h, w) = self.spec.input_size(frame_w, frame_h);
        let shape = self.spec.input_shape(h, w).to_vec();
        if !self.engines.contains_key(&shape) {
            let (bytes, label) = match &self.checkpoint {
                Some((arch, entries)) => {
                    let label = format!("checkpoint {}", self.path.display());
                    let built = convert::build(*arch, entries, h, w).with_context(|| label.clone())?;
                    (built.onnx, label)
                }
                None => (engine::read_model_file(&self.path)?, format!("model file {}", self.path.display())),
            };
            let engine = engine::load(&self.options, &bytes, &label, &self.spec, &shape)?;
            let fits = || format!("model file {} does not fit '{}'", self.path.display(), self.spec.name);
            let order = output_order(&self.spec, &engine.output_names(), engine.output_shapes().len()).with_context(fits)?;
            let shapes: Vec<Vec<usize>> = order.iter().map(|&i| engine.output_shapes()[i].clone()).collect();
            decode::check_output_shapes(&self.spec, &shapes).with_context(fits)?;
            self.backend = engine.backend_name();
            self.engines.insert(shape.clone(), engine);
        }
        Ok(self.engines.get_mut(&shape).expect("inserted above"))
    }

    /// How this session plans its engines.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    pub fn backend_name(&self) -> &str {
        &self.backend
    }

    /// The raw outputs for a whole frame (the decoder's output first) and the frame's transform.
    pub fn run_frame(&mut self, frame: &Frame, times: &mut StageTimes) -> Result<(Vec<Tensor>, preprocess::Transform)> {
        self.infer(frame, times)
    }

    /// Runs an input made elsewhere (a person's crop) on the engine planned for its shape.
    pub fn run_input(&mut self, input: &Tensor, times: &mut StageTimes) -> Result<Vec<Tensor>> {
        let name = &self.spec.name;
        let Some(engine) = self.engines.get_mut(&input.shape) else {
            anyhow::bail!("'{name}' is not planned for input {:?}", input.shape);
        };
        let t = Instant::now();
        let outputs = engine.run(input)?;
        times.inference += t.elapsed();
        Ok(outputs)
    }

    /// Takes `input` (made ahead for a frame) to use when that frame comes.
    pub fn give_ahead(&mut self, input: Prepared) {
        self.ahead = Some(input);
    }

    /// The input for `frame`: the one made ahead when it fits, else made now.
    fn input_for(&mut self, frame: &Frame) -> (Tensor, preprocess::Transform) {
        match self.ahead.take() {
            Some(p) if p.fits(&self.spec, frame) => (p.input, p.transform),
            _ => preprocess::prepare(&self.spec, frame),
        }
    }

    /// Forgets what a recurrent model carried over: the next frame starts a new sequence (a new
    /// video or source, a seek, an unrelated image).
    pub fn new_sequence(&mut self) {
        self.state = None;
    }

    /// Runs the model and returns its raw outputs with the transform, timing each stage. A
    /// recurrent model gets its state from the previous frame of the sequence (zeros first) and
    /// keeps the new one; the decoder's output comes first.
    fn infer(&mut self, frame: &Frame, times: &mut StageTimes) -> Result<(Vec<crate::engine::Tensor>, preprocess::Transform)> {
        // Planned (and its memory checked) before the input tensor of that size is made.
        self.prepare_for(frame.width, frame.height)?;
        let t0 = Instant::now();
        let (input, transform) = self.input_for(frame);
        let t1 = Instant::now();
        let recurrent = self.spec.recurrent.clone();
        let primary = self.spec.primary_output.clone();
        let state = match self.state.take() {
            Some((s, last)) if frame.index > last && s.first().is_some_and(|t| state_fits(&recurrent, &input, t, &self.spec)) => Some(s),
            _ => None,
        };
        let engine = self.prepare_for(frame.width, frame.height)?;
        let outputs = if recurrent.is_empty() {
            engine.run(&input)?
        } else {
            let (h, w) = (transform.input_h, transform.input_w);
            let states = state.unwrap_or_else(|| recurrent.iter().map(|r| Tensor::f32(r.shape(h, w).to_vec(), vec![0.0; r.shape(h, w).iter().product()])).collect());
            let mut inputs = vec![input];
            inputs.extend(states);
            engine.run_inputs(&inputs)?
        };
        let names = engine.output_names();
        let t2 = Instant::now();
        times.preprocess += t1 - t0;
        times.inference += t2 - t1;
        let mut outputs: Vec<Option<Tensor>> = outputs.into_iter().map(Some).collect();
        if !recurrent.is_empty() {
            let mut next = Vec::with_capacity(recurrent.len());
            for r in &recurrent {
                let i = names.iter().position(|n| *n == r.output).with_context(|| format!("the model has no output '{}'", r.output))?;
                next.push(outputs[i].take().with_context(|| format!("output '{}' read twice", r.output))?);
            }
            self.state = Some((next, frame.index));
        }
        let order = output_order_named(primary.as_deref(), &names, outputs.len())?;
        Ok((order.into_iter().filter_map(|i| outputs[i].take()).collect(), transform))
    }

    pub fn pose(&mut self, frame: &Frame, th: PoseThresholds, times: &mut StageTimes) -> Result<Vec<Person>> {
        debug_assert_eq!(self.spec.task, Task::Pose);
        let (outputs, transform, flipped) = self.infer_with_flip(frame, times)?;
        let t = Instant::now();
        let people = self.pose_decoder.decode(&self.spec, &outputs, flipped.as_deref(), &transform, th)?;
        times.decode += t.elapsed();
        Ok(people)
    }

    /// As `infer`, plus a pass on the horizontally flipped input when the decoder wants one.
    #[allow(clippy::type_complexity)]
    fn infer_with_flip(
        &mut self,
        frame: &Frame,
        times: &mut StageTimes,
    ) -> Result<(Vec<crate::engine::Tensor>, preprocess::Transform, Option<Vec<crate::engine::Tensor>>)> {
        if !self.spec.decoder.wants_flip() {
            let (o, t) = self.infer(frame, times)?;
            return Ok((o, t, None));
        }
        // Flip test (LitePose): never recurrent.
        self.prepare_for(frame.width, frame.height)?;
        let t0 = Instant::now();
        let (input, transform) = self.input_for(frame);
        let flipped_input = preprocess::flip_width(&input, self.spec.input.layout);
        let t1 = Instant::now();
        let engine = self.prepare_for(frame.width, frame.height)?;
        let t2 = Instant::now();
        let outputs = engine.run(&input)?;
        let flipped = engine.run(&flipped_input)?;
        times.preprocess += t1 - t0;
        times.inference += t2.elapsed();
        Ok((outputs, transform, Some(flipped)))
    }

    pub fn segment(&mut self, frame: &Frame, times: &mut StageTimes) -> Result<Segmentation> {
        debug_assert_eq!(self.spec.task, Task::Segmentation);
        let (outputs, transform) = self.infer(frame, times)?;
        let t = Instant::now();
        let seg = decode::decode_segmentation(&self.spec, &outputs, &transform)?;
        times.decode += t.elapsed();
        Ok(seg)
    }
}

/// Whether a carried state still fits this input (its size may have changed with the frame's).
fn state_fits(recurrent: &[crate::catalog::RecurrentState], input: &Tensor, first_state: &Tensor, spec: &ModelSpec) -> bool {
    let (h, w) = match spec.input.layout {
        crate::catalog::Layout::Nhwc => (input.shape[1], input.shape[2]),
        crate::catalog::Layout::Nchw => (input.shape[2], input.shape[3]),
    };
    recurrent.first().is_some_and(|r| first_state.shape == r.shape(h, w))
}

/// The order the decoder reads the outputs in: the description's primary output first (by
/// name), then the rest in the model's order.
fn output_order(spec: &ModelSpec, names: &[String], n: usize) -> Result<Vec<usize>> {
    output_order_named(spec.primary_output.as_deref(), names, n)
}

fn output_order_named(primary: Option<&str>, names: &[String], n: usize) -> Result<Vec<usize>> {
    let Some(p) = primary else { return Ok((0..n).collect()) };
    let first = names.iter().position(|x| x == p).with_context(|| format!("the model has no output '{p}' (outputs: {})", names.join(", ")))?;
    Ok(std::iter::once(first).chain((0..n).filter(|&i| i != first)).collect())
}
