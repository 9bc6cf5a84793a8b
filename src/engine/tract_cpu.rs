//! CPU engine on tract: loads an ONNX file, checks its input against the model description,
//! plans it once for a concrete input shape and keeps one execution state for every frame.

use super::cpu_kernels::KernelChoice;
use super::memory::MemoryLimit;
use super::{Engine, Tensor, TensorData};
use crate::catalog::{DType, ModelSpec};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

type Plan = Arc<TypedRunnableModel>;

pub struct TractEngine {
    state: TypedSimpleState,
    input_shape: Vec<usize>,
    output_shapes: Vec<Vec<usize>>,
    output_names: Vec<String>,
    input_dtype: DType,
    /// For each model input (in the model's order), which of `run_inputs`' tensors it takes:
    /// 0 the picture, k + 1 the recurrent state k of the description.
    slots: Vec<usize>,
}

/// How CPU plans run: passed with the model choice, never read from the environment here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuOptions {
    /// Worker threads (1-256). The pool is one per process, so plans made with another count
    /// resize it for every plan.
    pub threads: usize,
    /// Overrides of the kernel chooser (comparisons); the default lets it choose.
    pub kernels: KernelChoice,
}

impl Default for CpuOptions {
    fn default() -> CpuOptions {
        CpuOptions { threads: 1, kernels: KernelChoice::default() }
    }
}

/// Makes the process's CPU workers `n` threads, unless they already are.
pub fn use_threads(n: usize) -> Result<()> {
    if THREADS.load(std::sync::atomic::Ordering::Relaxed) != n {
        set_threads(n)?;
    }
    Ok(())
}

/// Threads for every CPU plan in this process.
pub fn set_threads(n: usize) -> Result<()> {
    if n == 0 || n > 256 {
        bail!("--threads must be between 1 and 256, got {n}");
    }
    use tract_linalg::multithread::{set_default_executor, Executor};
    // tract's rayon pool for its own matrix products (all of them where edgesight's kernels
    // are off, e.g. arm64); edgesight's kernels split their tasks over their own spinning pool.
    if super::cpu_kernels::conv::Isa::fast().is_some() {
        super::cpu_kernels::pool::set_threads(n).context("cannot start the CPU worker threads")?;
        set_default_executor(Executor::SingleThread);
    } else {
        set_default_executor(if n == 1 { Executor::SingleThread } else { Executor::multithread(n) });
    }
    THREADS.store(n, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Keeps freed memory in the process instead of handing it back to the kernel.
///
/// Why: tract allocates every intermediate tensor per frame and frees it after its last use.
/// glibc returned the top of the heap to the kernel after such frees, so every frame faulted
/// the same pages in again, zero-filled: selfie took ~470 page faults per frame and 7.3 ms
/// instead of 4.3 ms (`perf stat -e page-faults`, bench --runs 10 against 110).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            extern "C" {
                fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
            }
            // glibc's malloc.h: M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3 (at most 32 MiB).
            // SAFETY: plain glibc calls that only change allocator parameters.
            unsafe {
                mallopt(-1, 1 << 30);
                mallopt(-3, 32 << 20);
            }
        });
    }
}

/// The thread count last set (0: none yet), for reports.
static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl TractEngine {
    /// Loads `path` as the model `spec` describes, planned for `input_shape` (in the model's layout).
    pub fn load(path: &Path, spec: &ModelSpec, input_shape: &[usize], options: &CpuOptions) -> Result<TractEngine> {
        let bytes = super::read_model_file(path)?;
        Self::load_onnx(&bytes, &format!("model file {}", path.display()), spec, input_shape, options, MemoryLimit::default())
    }

    /// Loads ONNX bytes (e.g. a graph converted in memory); `label` names them in errors.
    pub fn load_onnx(bytes: &[u8], label: &str, spec: &ModelSpec, input_shape: &[usize], options: &CpuOptions, memory: MemoryLimit) -> Result<TractEngine> {
        keep_freed_memory();
        use_threads(options.threads)?;
        let shown = label;
        let (typed, slots) = typed_model(bytes, label, spec, input_shape, memory)?;
        let plan: Plan = optimize_typed(typed, &options.kernels)
            .and_then(|m| m.into_runnable())
            .map_err(|e| anyhow::anyhow!("{shown}: cannot plan it for input {input_shape:?}: {e:#}"))?;
        let mut output_shapes = Vec::new();
        for i in 0..plan.model().outputs.len() {
            let fact = plan.model().output_fact(i).map_err(|e| anyhow::anyhow!("{e}"))?;
            let shape = fact
                .shape
                .as_concrete()
                .with_context(|| format!("{shown}: output {i} has no static shape for input {input_shape:?}"))?;
            output_shapes.push(shape.to_vec());
        }
        let model = plan.model();
        let output_names = model
            .outputs
            .iter()
            .map(|o| model.outlet_label(*o).map(String::from).unwrap_or_else(|| model.node(o.node).name.clone()))
            .collect();
        let state = plan.spawn().map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        Ok(TractEngine { state, input_shape: input_shape.to_vec(), output_shapes, output_names, input_dtype: spec.input.dtype, slots })
    }
}

/// ONNX `bytes` parsed, checked against `spec`, typed for `input_shape` (shapes only, nothing
/// of that size allocated) and checked against the memory limit; with the slot of each model
/// input (see `TractEngine::slots`).
pub fn typed_model(bytes: &[u8], label: &str, spec: &ModelSpec, input_shape: &[usize], memory: MemoryLimit) -> Result<(TypedModel, Vec<usize>)> {
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(|e| anyhow::anyhow!("{label} is not a valid ONNX model: {e}"))?;
    let fits = || format!("{label} does not fit '{}'", spec.name);
    let slots = input_slots(&model, spec).with_context(fits)?;
    let main = slots.iter().position(|&s| s == 0).expect("input_slots always has the picture");
    check_input(&model, main, spec, input_shape).with_context(fits)?;
    let dt = match spec.input.dtype {
        DType::F32 => f32::datum_type(),
        DType::I32 => i32::datum_type(),
    };
    let (h, w) = match spec.input.layout {
        crate::catalog::Layout::Nhwc => (input_shape[1], input_shape[2]),
        crate::catalog::Layout::Nchw => (input_shape[2], input_shape[3]),
    };
    for (i, &slot) in slots.iter().enumerate() {
        let fact = match slot {
            0 => InferenceFact::dt_shape(dt, input_shape),
            k => InferenceFact::dt_shape(f32::datum_type(), spec.recurrent[k - 1].shape(h, w)),
        };
        model = model.with_input_fact(i, fact).map_err(|e| anyhow::anyhow!("{label}: {e:#}"))?;
    }
    let typed = model.into_typed().map_err(|e| anyhow::anyhow!("{label}: cannot plan it for input {input_shape:?}: {e:#}"))?;
    let needed = super::memory::estimate(&typed).map_err(|e| anyhow::anyhow!("{label}: {e:#}"))?;
    super::memory::check(needed, memory, &format!("'{}' at input {input_shape:?}", spec.name))?;
    Ok((typed, slots))
}

/// Which tensor each model input takes: a one-input model takes the picture; a recurrent model
/// (the description lists its states) is matched by input names.
fn input_slots(model: &InferenceModel, spec: &ModelSpec) -> Result<Vec<usize>> {
    let n = model.inputs.len();
    let expected = 1 + spec.recurrent.len();
    if n != expected {
        match spec.recurrent.len() {
            0 => bail!("it has {n} inputs, expected 1"),
            k => bail!("it has {n} inputs, expected {expected} (the picture '{}' and {k} recurrent states)", spec.input.name),
        }
    }
    if spec.recurrent.is_empty() {
        return Ok(vec![0]);
    }
    let mut slots = Vec::with_capacity(n);
    for o in &model.inputs {
        let name = &model.node(o.node).name;
        let slot = if *name == spec.input.name {
            0
        } else if let Some(k) = spec.recurrent.iter().position(|r| r.input == *name) {
            k + 1
        } else {
            bail!("its input '{name}' is neither the picture '{}' nor one of the states the description lists", spec.input.name);
        };
        if slots.contains(&slot) {
            bail!("its input '{name}' appears twice");
        }
        slots.push(slot);
    }
    Ok(slots)
}

/// tract's optimisation with edgesight's own kernels swapped in (see engine::cpu_kernels): before
/// decluttering, which would turn 1x1 convolutions into matrix products, and once more after it
/// for what decluttering folded (deconvolution kernels, clamps). The model's input facts must
/// be set.
pub fn optimize(model: InferenceModel, kernels: &KernelChoice) -> TractResult<TypedModel> {
    optimize_typed(model.into_typed()?, kernels)
}

/// `optimize` of a model already typed.
pub fn optimize_typed(mut m: TypedModel, kernels: &KernelChoice) -> TractResult<TypedModel> {
    super::cpu_kernels::patch_model(&mut m, kernels)?;
    let mut m = m.into_decluttered()?;
    super::cpu_kernels::patch_model(&mut m, kernels)?;
    super::cpu_kernels::patch_elementwise(&mut m, kernels)?;
    m.into_optimized()
}

/// Checks that ONNX `bytes` parse, declare the input `spec` describes, and fit in `memory`
/// at `input_shape`, without planning.
pub fn check_onnx(bytes: &[u8], label: &str, spec: &ModelSpec, input_shape: &[usize], memory: MemoryLimit) -> Result<()> {
    typed_model(bytes, label, spec, input_shape, memory).map(|_| ())
}

/// Rejects a model whose declared input does not match the description: one input, the rank,
/// the dtype and every dimension the file fixes must agree.
fn check_input(model: &InferenceModel, index: usize, spec: &ModelSpec, input_shape: &[usize]) -> Result<()> {
    let fact = model.input_fact(index).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(dt) = fact.datum_type.concretize() {
        let expected = match spec.input.dtype {
            DType::F32 => f32::datum_type(),
            DType::I32 => i32::datum_type(),
        };
        if dt != expected {
            bail!("its input is {}, expected {}", dtype_name(dt), spec.input.dtype.name());
        }
    }
    if let Some(rank) = fact.shape.rank().concretize() {
        if rank as usize != input_shape.len() {
            bail!("its input has rank {rank}, expected {} ({:?} layout)", input_shape.len(), spec.input.layout);
        }
        let declared: Vec<Option<i64>> =
            fact.shape.dims().map(|d| d.concretize().and_then(|d| d.to_i64().ok())).collect();
        for (axis, (d, want)) in declared.iter().zip(input_shape).enumerate() {
            if let Some(d) = d {
                if *d != *want as i64 {
                    let shown: Vec<String> =
                        declared.iter().map(|d| d.map_or("?".to_string(), |v| v.to_string())).collect();
                    bail!(
                        "its input shape is [{}], which does not accept {input_shape:?} (axis {axis})",
                        shown.join(", ")
                    );
                }
            }
        }
    }
    Ok(())
}

/// ONNX-style names for the element types a user is likely to meet.
fn dtype_name(dt: DatumType) -> String {
    match dt {
        DatumType::F32 => "float32".into(),
        DatumType::F16 => "float16".into(),
        DatumType::F64 => "float64".into(),
        DatumType::I32 => "int32".into(),
        DatumType::I64 => "int64".into(),
        DatumType::U8 => "uint8".into(),
        DatumType::I8 => "int8".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Time spent in one node of the optimised plan, summed over profiled runs.
#[derive(Debug, Clone)]
pub struct NodeTime {
    pub node: String,
    pub op: String,
    pub info: String,
    pub output_shape: Vec<usize>,
    pub seconds: f64,
}

impl TractEngine {
    /// Runs the plan `runs` times timing every node in CPU time of the calling thread (for
    /// `examples/profile_ops.rs`; meaningful with 1 thread).
    pub fn profile(&mut self, input: &Tensor, runs: usize) -> Result<Vec<NodeTime>> {
        let t = to_tract(input, self.input_dtype)?;
        let plan = self.state.plan().clone();
        let model = plan.model();
        let mut times: Vec<NodeTime> = model
            .nodes
            .iter()
            .map(|n| NodeTime {
                node: n.name.clone(),
                op: n.op().name().to_string(),
                info: format!(
                    "inputs {:?} {}",
                    n.inputs.iter().map(|i| model.outlet_fact(*i).map(|f| format!("{:?}", f.shape)).unwrap_or_default()).collect::<Vec<_>>(),
                    n.op().info().map(|v| v.join("; ")).unwrap_or_default()
                ),
                output_shape: n.outputs.first().and_then(|o| o.fact.shape.as_concrete().map(|s| s.to_vec())).unwrap_or_default(),
                seconds: 0.0,
            })
            .collect();
        for _ in 0..runs {
            self.state
                .run_plan_with_eval(tvec!(t.clone().into()), |ctx, state, node, inputs| {
                    let start = crate::stats::thread_cpu_seconds();
                    let r = tract_onnx::tract_core::plan::eval(ctx, state, node, inputs);
                    times[node.id].seconds += crate::stats::thread_cpu_seconds() - start;
                    r
                })
                .map_err(|e| anyhow::anyhow!("inference failed: {e:#}"))?;
        }
        Ok(times)
    }
}

fn to_tract(input: &Tensor, dtype: DType) -> Result<tract_onnx::prelude::Tensor> {
    Ok(match (&input.data, dtype) {
        (TensorData::F32(v), DType::F32) => tract_onnx::prelude::Tensor::from_shape(&input.shape, v)?,
        (TensorData::I32(v), DType::I32) => tract_onnx::prelude::Tensor::from_shape(&input.shape, v)?,
        _ => bail!("input dtype does not match the model's {}", dtype.name()),
    })
}

impl Engine for TractEngine {
    fn run(&mut self, input: &Tensor) -> Result<Vec<Tensor>> {
        self.run_inputs(std::slice::from_ref(input))
    }

    fn run_inputs(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if inputs.len() != self.slots.len() {
            bail!("the model takes {} inputs, {} were given", self.slots.len(), inputs.len());
        }
        if inputs[0].shape != self.input_shape {
            bail!("input shape {:?} differs from the planned {:?}", inputs[0].shape, self.input_shape);
        }
        let mut feed = TVec::new();
        for &slot in &self.slots {
            let t = match slot {
                0 => to_tract(&inputs[0], self.input_dtype)?,
                k => to_tract(&inputs[k], DType::F32)?,
            };
            feed.push(t.into());
        }
        let outputs = self.state.run(feed).map_err(|e| anyhow::anyhow!("inference failed: {e:#}"))?;
        outputs
            .into_iter()
            .map(|o| {
                let o = o.cast_to::<f32>().map_err(|e| anyhow::anyhow!("{e}"))?;
                let view = o.to_plain_array_view::<f32>().map_err(|e| anyhow::anyhow!("{e}"))?;
                // One copy of contiguous outputs: the element iterator took 1-2 ms for
                // LitePose's 0.6 M output values.
                let data: Vec<f32> = match view.as_slice() {
                    Some(s) => s.to_vec(),
                    None => view.iter().copied().collect(),
                };
                Ok(super::Tensor::f32(o.shape().to_vec(), data))
            })
            .collect()
    }

    fn output_names(&self) -> Vec<String> {
        self.output_names.clone()
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn output_shapes(&self) -> &[Vec<usize>] {
        &self.output_shapes
    }

    fn backend_name(&self) -> String {
        match THREADS.load(std::sync::atomic::Ordering::Relaxed) {
            1 => "cpu (tract 0.23.9, 1 thread)".to_string(),
            n => format!("cpu (tract 0.23.9, {n} threads)"),
        }
    }
}
