//! Inference engines behind one trait, so decoders and pipelines never see a backend's types.
//! `tract_cpu` is the CPU engine (tract); `gpu` runs the same ONNX graphs on wgpu compute shaders.
//! `load` picks one by the `EngineOptions` it is given (`Backend`: cpu, gpu, or auto, the GPU
//! when an adapter exists; the CPU options: threads, kernel choice). Nothing here is read from
//! process-wide settings: the options travel with the model choice and the session.

pub mod cpu_kernels;
pub mod gpu;
pub mod memory;
pub mod tract_cpu;

use crate::catalog::ModelSpec;
use anyhow::{bail, Result};
use std::path::Path;

pub use crate::tensor::{Tensor, TensorData};

/// Runs one model on one input. Implementations are built for a fixed input shape.
pub trait Engine: Send {
    /// Runs the model; outputs are float32 in the model's output order.
    fn run(&mut self, input: &Tensor) -> Result<Vec<Tensor>>;
    /// Runs a model with more inputs than the picture: `inputs[0]` is the picture, then the
    /// recurrent states in the order the description lists them.
    fn run_inputs(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        match inputs {
            [one] => self.run(one),
            _ => bail!("this engine runs one-input models; {} inputs were given", inputs.len()),
        }
    }
    /// The outputs' names in output order (empty when the engine does not know them).
    fn output_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// The input shape this engine was planned for.
    fn input_shape(&self) -> &[usize];
    /// The output shapes, known after planning.
    fn output_shapes(&self) -> &[Vec<usize>];
    /// A short name for reports, e.g. "cpu (tract 0.23.9)".
    fn backend_name(&self) -> String;
}

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// tract on the CPU.
    #[default]
    Cpu,
    /// wgpu compute shaders (Vulkan, Metal, DX12, GL); fails when no GPU adapter exists.
    Gpu,
    /// The GPU when an adapter exists and the model plans on it, else the CPU (and says so).
    Auto,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
            Backend::Auto => "auto",
        }
    }
}

/// How models are planned: where inference runs, and how CPU plans run. Passed with the model
/// choice (`analyzer::ModelChoice`, `session::ModelSession::open`), never read from globals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineOptions {
    pub backend: Backend,
    /// Threads and kernel choice of CPU plans (also of the `auto` fallback).
    pub cpu: tract_cpu::CpuOptions,
    /// The graphics APIs searched for a GPU adapter (`WGPU_BACKEND`, read by the entry point).
    pub gpu: gpu::GpuApis,
    /// How much memory one plan may take (`--max-memory`; default: what is available).
    pub max_memory: memory::MemoryLimit,
    /// GPU planner fusion rules left out (`EDGESIGHT_GPU_SKIP_RULES`, a developer switch for
    /// measuring each rule on a GPU; read by the entry point).
    pub gpu_skip_rules: Vec<String>,
    /// The GPU shader for every dense convolution it can run (`EDGESIGHT_GPU_CONV`, a developer
    /// switch for comparing the variants on a GPU; read by the entry point). None: the
    /// planner's default, and on real GPUs the fastest variant by timing.
    pub gpu_conv_shader: Option<gpu::kernels::Shader>,
}

/// Largest model file read (an edge model is a few MB; this guards against reading a disk image).
const MAX_MODEL_BYTES: u64 = 1 << 30;

/// Reads a model file with a size check, naming it in every error.
pub fn read_model_file(path: &Path) -> Result<Vec<u8>> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("model file {shown}: {e}"))?;
    if !meta.is_file() {
        bail!("model file {shown} is not a regular file");
    }
    if meta.len() > MAX_MODEL_BYTES {
        bail!("model file {shown} is {} bytes, larger than the {MAX_MODEL_BYTES}-byte limit", meta.len());
    }
    std::fs::read(path).map_err(|e| anyhow::anyhow!("model file {shown}: {e}"))
}

/// Plans ONNX `bytes` (described by `spec`) for `input_shape` as `options` say.
pub fn load(options: &EngineOptions, bytes: &[u8], label: &str, spec: &ModelSpec, input_shape: &[usize]) -> Result<Box<dyn Engine>> {
    let (backend, cpu) = (options.backend, &options.cpu);
    if backend != Backend::Cpu && !spec.recurrent.is_empty() {
        // The GPU planner takes one input; a recurrent model's state is carried on the CPU.
        warn_once(&format!("note: '{}' carries a recurrent state and runs on the CPU (the GPU backend takes one-input models)", spec.name));
        return Ok(Box::new(tract_cpu::TractEngine::load_onnx(bytes, label, spec, input_shape, cpu, options.max_memory)?));
    }
    if backend == Backend::Cpu {
        return Ok(Box::new(tract_cpu::TractEngine::load_onnx(bytes, label, spec, input_shape, cpu, options.max_memory)?));
    }
    // The CPU loader's checks first, so a wrong file gives the same message on every backend.
    tract_cpu::check_onnx(bytes, label, spec, input_shape, options.max_memory)?;
    // A GPU plan's CPU part runs on tract's executor, which the thread count sets.
    tract_cpu::use_threads(cpu.threads)?;
    // A CPU-emulated adapter (llvmpipe, lavapipe) is ~20x slower than tract: never `auto`'s pick.
    if let Ok(ctx) = gpu::context_for(options.gpu) {
        if gpu::is_cpu_emulation(&ctx.adapter) {
            let name = &ctx.adapter.name;
            if backend == Backend::Auto {
                warn_once(&format!("--backend auto: GPU adapter {name} is a CPU emulation; using the CPU"));
                return Ok(Box::new(tract_cpu::TractEngine::load_onnx(bytes, label, spec, input_shape, cpu, options.max_memory)?));
            }
            warn_once(&format!("warning: GPU adapter {name} is a CPU emulation; expect it to be much slower than --backend cpu"));
        }
    }
    match gpu::GpuEngine::load_onnx(bytes, label, spec, input_shape, options) {
        Ok(g) => Ok(Box::new(g)),
        Err(e) if backend == Backend::Auto => {
            warn_once(&format!("--backend auto: {e:#}; running on the CPU"));
            Ok(Box::new(tract_cpu::TractEngine::load_onnx(bytes, label, spec, input_shape, cpu, options.max_memory)?))
        }
        Err(e) => Err(e),
    }
}

/// Prints a fallback notice once per distinct message (not once per planned input size).
fn warn_once(msg: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if !seen.iter().any(|m| m == msg) {
        eprintln!("edgesight: {msg}");
        seen.push(msg.to_string());
    }
}
