//! GPU engine on wgpu compute shaders (Vulkan, Metal, DX12, GL). A model is planned once per
//! input shape (`graph`: constants folded, shapes baked into one pipeline per op), its buffers
//! are allocated once and reused by liveness, and each frame is one upload, one submission of
//! every dispatch, and one download. What the GPU cannot run stays on the CPU as an explicit
//! tail graph run by tract (`Tail`), e.g. MoveNet's TopK/GatherND decoder.

pub mod apis;
pub mod attrs;
pub mod binding;
pub mod epilogue;
pub mod graph;
pub mod host;
pub mod kernels;

pub use apis::GpuApis;
use super::{Engine, Tensor, TensorData};
use crate::catalog::{DType, ModelSpec};
use anyhow::{bail, Context, Result};
use graph::{Binding, OutputSource, Plan, PlanOptions};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tract_onnx::prelude::*;

/// The process-wide GPU device (one per process: pipelines and buffers of every model share it).
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// On GL, wgpu guards its one context with a lock that panics after a timeout when another
    /// thread holds it through a long submission (pose and segmentation workers at once), so
    /// engines take turns there. Vulkan, Metal and DX12 run them concurrently.
    serial: std::sync::Mutex<()>,
}

impl GpuContext {
    /// Held for a whole frame or plan on GL; a no-op elsewhere.
    fn turn(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        (self.adapter.backend == wgpu::Backend::Gl).then(|| self.serial.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

static CONTEXT: OnceLock<std::result::Result<Arc<GpuContext>, String>> = OnceLock::new();

/// The GPU device, created on first use with the default search (see `context_for`).
pub fn context() -> Result<Arc<GpuContext>> {
    context_for(GpuApis::default())
}

/// The GPU device, created on first use by searching `apis`. Fails with a clear message when
/// wgpu finds no adapter. One device serves the whole process, so the first call's `apis` hold.
pub fn context_for(apis: GpuApis) -> Result<Arc<GpuContext>> {
    CONTEXT.get_or_init(|| open_context(apis).map(Arc::new).map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow::anyhow!(e))
}

/// Whether an adapter is the CPU emulating a GPU (Mesa llvmpipe/lavapipe, SwiftShader): it
/// works, but runs these models many times slower than tract on the same CPU.
pub fn is_cpu_emulation(info: &wgpu::AdapterInfo) -> bool {
    let name = info.name.to_ascii_lowercase();
    info.device_type == wgpu::DeviceType::Cpu || ["llvmpipe", "lavapipe", "swiftshader"].iter().any(|n| name.contains(n))
}

fn open_context(apis: GpuApis) -> Result<GpuContext> {
    // Native APIs first (Vulkan, Metal, DX12), then GL/GLES (older phones), unless `apis` says.
    let tries = apis.tries();
    let mut errors = vec![];
    let mut found = None;
    for backends in tries {
        let instance = wgpu::Instance::new(&wgpu::InstanceDescriptor { backends, ..wgpu::InstanceDescriptor::from_env_or_default() });
        match pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance),
            force_fallback_adapter: false,
            compatible_surface: None,
        })) {
            Ok(a) => {
                found = Some(a);
                break;
            }
            Err(e) => errors.push(format!("{backends:?}: {e}")),
        }
    }
    let adapter = found.with_context(|| {
        format!(
            "no GPU adapter found ({}); install a Vulkan driver (e.g. Debian's mesa-vulkan-drivers) or use --backend cpu",
            errors.join("; ")
        )
    })?;
    let info = adapter.get_info();
    let limits = adapter.limits();
    // Timestamp queries where the adapter has them: per-kernel GPU time in one submission.
    let features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("edgesight inference"),
        required_features: features,
        // Large activations (BEVANet at 512x1024) need the adapter's full buffer limits.
        required_limits: limits.clone(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .with_context(|| format!("cannot open GPU device {} ({:?})", info.name, info.backend))?;
    Ok(GpuContext { device, queue, adapter: info, limits, serial: std::sync::Mutex::new(()) })
}

/// "NVIDIA H100 (Vulkan)" and the like, for reports.
pub fn adapter_name() -> Result<String> {
    let c = context()?;
    Ok(format!("{} ({:?}, {:?})", c.adapter.name, c.adapter.backend, c.adapter.device_type))
}

/// Longest wait for one submission (a frame, or one kernel when profiling).
const WAIT_LIMIT: Duration = Duration::from_secs(600);

struct Download {
    value: usize,
    offset: u64,
    len: usize,
}

/// Tract plan of the CPU tail, fed with downloaded GPU values.
struct TailRunner {
    state: TypedSimpleState,
    inputs: Vec<(String, usize)>,
}

pub struct GpuEngine {
    ctx: Arc<GpuContext>,
    plan: Plan,
    buffers: Vec<wgpu::Buffer>,
    /// Physical buffer of each storage.
    storage_buffer: Vec<usize>,
    pipelines: Vec<wgpu::ComputePipeline>,
    /// Pipeline of each kernel (kernels with identical source share one).
    kernel_pipeline: Vec<usize>,
    bind_groups: Vec<wgpu::BindGroup>,
    /// Index in `buffers` of the mapped-for-reading staging buffer all downloads share.
    staging: usize,
    /// Index in `buffers` of the first parameter buffer (parameters follow in plan order).
    param_base: usize,
    downloads: Vec<Download>,
    tail: Option<TailRunner>,
    input_shape: Vec<usize>,
    output_shapes: Vec<Vec<usize>>,
    input_dtype: DType,
    pub plan_time: Duration,
    bytes_allocated: u64,
    /// Time of the last frame's GPU part (upload, kernels, download) and of its CPU tail.
    pub last_split: (Duration, Duration),
}

/// How per-kernel GPU times were taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileMethod {
    Timestamps,
    EachAlone,
}

impl ProfileMethod {
    pub fn describe(self) -> &'static str {
        match self {
            ProfileMethod::Timestamps => "GPU timestamps around each kernel, one submission",
            ProfileMethod::EachAlone => "each kernel submitted alone (no timestamp queries on this adapter: mostly launch overhead)",
        }
    }
}

/// Per-kernel GPU time from a profiled run: from timestamp queries written around each kernel
/// within one submission where the adapter offers them (`ProfileMethod::Timestamps`), else from
/// each kernel submitted and waited for alone (mostly launch overhead; the sum exceeds a run).
#[derive(Debug, Clone)]
pub struct KernelTime {
    pub label: String,
    pub shader: &'static str,
    pub seconds: f64,
    pub macs: u64,
    pub bytes: u64,
}

impl GpuEngine {
    /// Plans ONNX bytes for `input_shape`; `label` names the model in errors.
    pub fn load_onnx(bytes: &[u8], label: &str, spec: &ModelSpec, input_shape: &[usize], options: &super::EngineOptions) -> Result<GpuEngine> {
        let opts = PlanOptions {
            skip_rules: options.gpu_skip_rules.clone(),
            tail_kernels: options.cpu.kernels.clone(),
            conv_shader: options.gpu_conv_shader,
            ..PlanOptions::default()
        };
        Self::load_with(bytes, label, spec.input.dtype, input_shape, &opts)
    }

    pub fn load_with(bytes: &[u8], label: &str, dtype: DType, input_shape: &[usize], opts: &PlanOptions) -> Result<GpuEngine> {
        let t0 = Instant::now();
        let model: tract_onnx::pb::ModelProto =
            prost::Message::decode(bytes).map_err(|e| anyhow::anyhow!("{label} is not a valid ONNX model: {e}"))?;
        let ctx = context()?;
        let mut opts = opts.clone();
        if opts.workgroup_bytes == 0 {
            opts.workgroup_bytes = ctx.limits.max_compute_workgroup_storage_size as usize;
        }
        let plan = graph::plan(&model, input_shape, &opts).with_context(|| format!("{label}: cannot plan it for the GPU"))?;
        let tail = match &plan.tail {
            None => None,
            Some(t) => {
                let mut m = tract_onnx::onnx()
                    .model_for_read(&mut &t.onnx[..])
                    .map_err(|e| anyhow::anyhow!("{label}: the CPU part ({}) does not load: {e:#}", t.ops.join(", ")))?;
                for (i, (_, v)) in t.inputs.iter().enumerate() {
                    m = m.with_input_fact(i, InferenceFact::dt_shape(f32::datum_type(), &plan.values[*v].shape))?;
                }
                // Planned as the CPU engine plans its models: edgesight's kernels swapped in,
                // on the worker threads `--threads` set.
                let runnable = crate::engine::tract_cpu::optimize(m, &opts.tail_kernels)
                    .and_then(|m| m.into_runnable())
                    .map_err(|e| anyhow::anyhow!("{label}: cannot plan the CPU part: {e:#}"))?;
                Some(TailRunner { state: runnable.spawn()?, inputs: t.inputs.clone() })
            }
        };
        let emulated = is_cpu_emulation(&ctx.adapter);
        let mut engine = Self::build(ctx, plan, tail, dtype, input_shape)?;
        // By default only where the times mean something: GPU timestamps on a real GPU.
        if opts.time_variants.unwrap_or(!emulated && engine.has_timestamps()) {
            // A forced convolution shader stays (only depthwise ones are timed then).
            engine.choose_variants(opts.conv_shader.is_none())?;
        }
        engine.plan_time = t0.elapsed();
        Ok(engine)
    }

    fn build(ctx: Arc<GpuContext>, plan: Plan, mut tail: Option<TailRunner>, dtype: DType, input_shape: &[usize]) -> Result<GpuEngine> {
        let turn = ctx.turn();
        let device = &ctx.device;
        let max_binding = ctx.limits.max_storage_buffer_binding_size as u64;
        // Liveness: the last kernel reading each storage; buffers return to a pool after it.
        let mut last_use: Vec<Option<usize>> = vec![None; plan.storages.len()];
        for (i, k) in plan.kernels.iter().enumerate() {
            for b in k.all_bindings() {
                if let Binding::Value(v) = b {
                    last_use[plan.values[v].storage] = Some(i);
                }
            }
        }
        let mut buffers: Vec<wgpu::Buffer> = vec![];
        let mut sizes: Vec<u64> = vec![];
        let mut free: Vec<usize> = vec![];
        let mut storage_buffer: Vec<usize> = vec![usize::MAX; plan.storages.len()];
        let mut bytes_allocated = 0u64;
        let mut alloc = |len: usize, buffers: &mut Vec<wgpu::Buffer>, sizes: &mut Vec<u64>, free: &mut Vec<usize>| -> Result<usize> {
            let need = ((len.max(1) * 4) as u64).next_multiple_of(16);
            if need > max_binding {
                bail!("a tensor of {need} bytes exceeds this GPU's {max_binding}-byte storage binding limit");
            }
            // Best fit among free buffers, else a new one.
            if let Some((pos, _)) = free.iter().enumerate().filter(|(_, &b)| sizes[b] >= need).min_by_key(|(_, &b)| sizes[b]) {
                return Ok(free.swap_remove(pos));
            }
            buffers.push(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("activation"),
                size: need,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }));
            sizes.push(need);
            bytes_allocated += need;
            Ok(buffers.len() - 1)
        };
        let input_storage = plan.values[plan.input].storage;
        storage_buffer[input_storage] = alloc(plan.storages[input_storage], &mut buffers, &mut sizes, &mut free)?;
        for (i, k) in plan.kernels.iter().enumerate() {
            if let Binding::Value(out) = k.bindings[0] {
                let s = plan.values[out].storage;
                if storage_buffer[s] == usize::MAX {
                    storage_buffer[s] = alloc(plan.storages[s], &mut buffers, &mut sizes, &mut free)?;
                }
            }
            // Storages read for the last time here go back to the pool (after the output was
            // taken, so no kernel writes a buffer it reads).
            let mut released = vec![];
            for b in k.all_bindings() {
                if let Binding::Value(v) = b {
                    let s = plan.values[v].storage;
                    if last_use[s] == Some(i) && !plan.pinned.contains(&s) && !released.contains(&s) {
                        released.push(s);
                    }
                }
            }
            for s in released {
                if storage_buffer[s] != usize::MAX {
                    free.push(storage_buffer[s]);
                }
            }
        }
        // Parameters (weights, constant operands), uploaded once.
        let params: Vec<wgpu::Buffer> = plan
            .params
            .iter()
            .map(|p| {
                use wgpu::util::DeviceExt;
                bytes_allocated += (p.len() * 4) as u64;
                device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("parameter"),
                    contents: bytemuck::cast_slice(p),
                    usage: wgpu::BufferUsages::STORAGE,
                })
            })
            .collect();
        // Pipelines, shared between kernels with identical source.
        let mut cache: HashMap<String, usize> = HashMap::new();
        let mut pipelines: Vec<wgpu::ComputePipeline> = vec![];
        let mut kernel_pipeline = vec![];
        device.push_error_scope(wgpu::ErrorFilter::Validation);
        for k in &plan.kernels {
            let src = k.source();
            let idx = match cache.get(&src) {
                Some(&i) => i,
                None => {
                    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(k.shader.name()),
                        source: wgpu::ShaderSource::Wgsl(src.clone().into()),
                    });
                    let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(k.shader.name()),
                        layout: None,
                        module: &module,
                        entry_point: Some("main"),
                        compilation_options: Default::default(),
                        cache: None,
                    });
                    pipelines.push(p);
                    cache.insert(src, pipelines.len() - 1);
                    pipelines.len() - 1
                }
            };
            kernel_pipeline.push(idx);
        }
        if let Some(err) = pollster::block_on(device.pop_error_scope()) {
            bail!("a GPU shader failed to compile: {err}");
        }
        let mut bind_groups = vec![];
        for (k, &p) in plan.kernels.iter().zip(&kernel_pipeline) {
            let layout = pipelines[p].get_bind_group_layout(0);
            let all = k.all_bindings();
            let entries: Vec<wgpu::BindGroupEntry> = all
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: match b {
                        Binding::Value(v) => buffers[storage_buffer[plan.values[*v].storage]].as_entire_binding(),
                        Binding::Param(pi) => params[*pi].as_entire_binding(),
                    },
                })
                .collect();
            bind_groups.push(device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(&k.label), layout: &layout, entries: &entries }));
        }
        // Downloads: GPU outputs and the tail's inputs, packed into one staging buffer.
        let mut downloads = vec![];
        let mut offset = 0u64;
        let mut wanted: Vec<usize> = plan.outputs.iter().filter_map(|o| if let OutputSource::Gpu(v) = o { Some(*v) } else { None }).collect();
        if let Some(t) = &tail {
            wanted.extend(t.inputs.iter().map(|(_, v)| *v));
        }
        for v in wanted {
            if downloads.iter().any(|d: &Download| d.value == v) {
                continue;
            }
            let len = plan.values[v].shape.iter().product::<usize>();
            downloads.push(Download { value: v, offset, len });
            offset += (len * 4) as u64;
        }
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("download"),
            size: offset.max(16).next_multiple_of(16),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut output_shapes = plan.output_shapes.clone();
        if let Some(t) = &mut tail {
            for (i, o) in plan.outputs.iter().enumerate() {
                if let OutputSource::Tail(j) = o {
                    let fact = t.state.model().output_fact(*j).map_err(|e| anyhow::anyhow!("{e}"))?;
                    output_shapes[i] = fact.shape.as_concrete().context("the CPU part has a dynamic output shape")?.to_vec();
                }
            }
        }
        let mut all_buffers = buffers;
        let param_base = all_buffers.len();
        all_buffers.extend(params);
        all_buffers.push(staging);
        let staging = all_buffers.len() - 1;
        drop(turn);
        Ok(GpuEngine {
            ctx,
            plan,
            buffers: all_buffers,
            storage_buffer,
            pipelines,
            kernel_pipeline,
            bind_groups,
            staging,
            param_base,
            downloads,
            tail,
            input_shape: input_shape.to_vec(),
            output_shapes,
            input_dtype: dtype,
            plan_time: Duration::ZERO,
            bytes_allocated,
            last_split: (Duration::ZERO, Duration::ZERO),
        })
    }

    fn buffer_of(&self, value: usize) -> &wgpu::Buffer {
        &self.buffers[self.storage_buffer[self.plan.values[value].storage]]
    }

    fn upload(&self, input: &Tensor) -> Result<()> {
        if input.shape != self.input_shape {
            bail!("input shape {:?} differs from the planned {:?}", input.shape, self.input_shape);
        }
        let buffer = self.buffer_of(self.plan.input);
        match (&input.data, self.input_dtype) {
            (TensorData::F32(v), DType::F32) => self.ctx.queue.write_buffer(buffer, 0, bytemuck::cast_slice(v)),
            // Integer pixels are exact in float32; the graph's Cast to float is a no-op on the GPU.
            // Converted straight into wgpu's upload staging memory (no intermediate copy).
            (TensorData::I32(v), DType::I32) => {
                let size = wgpu::BufferSize::new((v.len() * 4) as u64).context("empty input")?;
                let mut view = self.ctx.queue.write_buffer_with(buffer, 0, size).context("cannot stage the input upload")?;
                for (dst, &x) in view.chunks_exact_mut(4).zip(v) {
                    dst.copy_from_slice(&(x as f32).to_ne_bytes());
                }
            }
            _ => bail!("input dtype does not match the model's {}", self.input_dtype.name()),
        }
        Ok(())
    }

    fn record(&self, encoder: &mut wgpu::CommandEncoder, range: std::ops::Range<usize>) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("inference"), timestamp_writes: None });
        for i in range {
            let k = &self.plan.kernels[i];
            pass.set_pipeline(&self.pipelines[self.pipeline_of(i)]);
            pass.set_bind_group(0, &self.bind_groups[i], &[]);
            pass.dispatch_workgroups(k.dispatch[0], k.dispatch[1], k.dispatch[2]);
        }
    }

    fn pipeline_of(&self, kernel: usize) -> usize {
        self.kernel_pipeline[kernel]
    }

    fn wait(&self) -> Result<()> {
        // wgpu gives up waiting after a fixed time; a big model on a CPU driver (lavapipe) under
        // load can take longer, so keep waiting up to WAIT_LIMIT before calling it a failure.
        let start = Instant::now();
        loop {
            match self.ctx.device.poll(wgpu::PollType::Wait) {
                Ok(_) => return Ok(()),
                Err(wgpu::PollError::Timeout) if start.elapsed() < WAIT_LIMIT => continue,
                Err(e) => bail!("GPU wait failed after {:.0} s: {e}", start.elapsed().as_secs_f64()),
            }
        }
    }

    fn download(&self) -> Result<HashMap<usize, Vec<f32>>> {
        let staging = &self.buffers[self.staging];
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv().context("GPU download was cancelled")?.map_err(|e| anyhow::anyhow!("GPU download failed: {e}"))?;
        let mut out = HashMap::new();
        {
            let view = slice.get_mapped_range();
            for d in &self.downloads {
                let bytes = &view[d.offset as usize..d.offset as usize + d.len * 4];
                out.insert(d.value, bytemuck::pod_collect_to_vec::<u8, f32>(bytes));
            }
        }
        staging.unmap();
        Ok(out)
    }

    /// For each convolution: its shader against the alternatives (`kernels::variants`: the
    /// naive shader for a depthwise one; `conv_dense` and the other tiled forms for a dense
    /// one), all run on this engine's buffers; the fastest stays. The choice is kept per
    /// adapter and kernel for the process, so a model planned again (another size, another
    /// session) is not timed again.
    fn choose_variants(&mut self, dense: bool) -> Result<()> {
        // (adapter, kernel source) -> the chosen alternative's index + 1 (0: the planned one).
        static CHOSEN: std::sync::Mutex<Option<HashMap<(String, String), usize>>> = std::sync::Mutex::new(None);
        for i in 0..self.plan.kernels.len() {
            let mut variants = kernels::variants(&self.plan.kernels[i]);
            if variants.is_empty() || !dense && self.plan.kernels[i].shader != kernels::Shader::DepthwiseTiled {
                continue;
            }
            let key = (self.ctx.adapter.name.clone(), self.plan.kernels[i].source());
            let known = CHOSEN.lock().ok().and_then(|m| m.as_ref().and_then(|m| m.get(&key).copied()));
            let mut compiled = vec![];
            let choice = match known {
                Some(c) => c,
                None => {
                    let mut best = (0, self.time_kernel(&self.pipelines[self.pipeline_of(i)], &self.bind_groups[i], self.plan.kernels[i].dispatch)?);
                    for (j, v) in variants.iter().enumerate() {
                        // A variant this driver does not compile is left out, not an error.
                        let Ok((pipeline, bind_group)) = self.compile(v) else {
                            compiled.push(None);
                            continue;
                        };
                        let t = self.time_kernel(&pipeline, &bind_group, v.dispatch)?;
                        compiled.push(Some((pipeline, bind_group)));
                        if t < best.1 {
                            best = (j + 1, t);
                        }
                    }
                    if let Ok(mut m) = CHOSEN.lock() {
                        m.get_or_insert_with(HashMap::new).insert(key, best.0);
                    }
                    best.0
                }
            };
            if choice == 0 || choice > variants.len() {
                continue;
            }
            let v = variants.swap_remove(choice - 1);
            let (pipeline, bind_group) = match compiled.into_iter().nth(choice - 1).flatten() {
                Some(c) => c,
                None => self.compile(&v)?,
            };
            self.pipelines.push(pipeline);
            self.kernel_pipeline[i] = self.pipelines.len() - 1;
            self.bind_groups[i] = bind_group;
            self.plan.kernels[i] = v;
        }
        Ok(())
    }

    /// A kernel's pipeline and bind group on this engine's buffers.
    fn compile(&self, k: &kernels::Kernel) -> Result<(wgpu::ComputePipeline, wgpu::BindGroup)> {
        let device = &self.ctx.device;
        device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(k.shader.name()), source: wgpu::ShaderSource::Wgsl(k.source().into()) });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(k.shader.name()),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(err) = pollster::block_on(device.pop_error_scope()) {
            bail!("a GPU shader failed to compile: {err}");
        }
        let layout = pipeline.get_bind_group_layout(0);
        let all = k.all_bindings();
        let entries: Vec<wgpu::BindGroupEntry> = all
            .iter()
            .enumerate()
            .map(|(j, b)| wgpu::BindGroupEntry {
                binding: j as u32,
                resource: match b {
                    Binding::Value(v) => self.buffer_of(*v).as_entire_binding(),
                    Binding::Param(p) => self.buffers[self.param_base + *p].as_entire_binding(),
                },
            })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(&k.label), layout: &layout, entries: &entries });
        Ok((pipeline, bind_group))
    }

    /// Seconds of one run of a kernel: the fastest of a few, by timestamps where the device has
    /// them, else by the wall clock around each submission.
    fn time_kernel(&self, pipeline: &wgpu::ComputePipeline, bind_group: &wgpu::BindGroup, dispatch: [u32; 3]) -> Result<f64> {
        const RUNS: u32 = 5;
        let ctx = self.ctx.clone();
        let _turn = ctx.turn();
        let device = &self.ctx.device;
        let record = |enc: &mut wgpu::CommandEncoder, writes: Option<wgpu::ComputePassTimestampWrites>| {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("variant"), timestamp_writes: writes });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(dispatch[0], dispatch[1], dispatch[2]);
        };
        if !self.has_timestamps() {
            let mut best = f64::INFINITY;
            for _ in 0..RUNS {
                let mut enc = device.create_command_encoder(&Default::default());
                record(&mut enc, None);
                let t = Instant::now();
                self.ctx.queue.submit([enc.finish()]);
                self.wait()?;
                best = best.min(t.elapsed().as_secs_f64());
            }
            return Ok(best);
        }
        let set = device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("variant"), ty: wgpu::QueryType::Timestamp, count: 2 * RUNS });
        let mut enc = device.create_command_encoder(&Default::default());
        for r in 0..RUNS {
            let writes = wgpu::ComputePassTimestampWrites { query_set: &set, beginning_of_pass_write_index: Some(2 * r), end_of_pass_write_index: Some(2 * r + 1) };
            record(&mut enc, Some(writes));
        }
        Ok(self.pass_durations(enc, &set, RUNS)?.into_iter().fold(f64::INFINITY, f64::min))
    }

    /// Submits `enc`, whose passes wrote `pairs` begin/end timestamp pairs into `set`, and returns
    /// each pair's duration in seconds.
    fn pass_durations(&self, mut enc: wgpu::CommandEncoder, set: &wgpu::QuerySet, pairs: u32) -> Result<Vec<f64>> {
        let device = &self.ctx.device;
        let bytes = 16 * pairs as u64;
        let resolve = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps read"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        enc.resolve_query_set(set, 0..2 * pairs, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, bytes);
        self.ctx.queue.submit([enc.finish()]);
        let slice = read.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv().context("timestamp read-back was cancelled")?.map_err(|e| anyhow::anyhow!("timestamp read-back failed: {e}"))?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&slice.get_mapped_range());
        read.unmap();
        let period = self.ctx.queue.get_timestamp_period() as f64 * 1e-9;
        Ok((0..pairs as usize).map(|r| ticks[2 * r + 1].saturating_sub(ticks[2 * r]) as f64 * period).collect())
    }

    /// Whether `profile` can use timestamp queries on this device.
    pub fn has_timestamps(&self) -> bool {
        self.ctx.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Per-kernel timings (see `KernelTime`), and how they were taken.
    pub fn profile(&mut self, input: &Tensor) -> Result<(Vec<KernelTime>, ProfileMethod)> {
        // A full run first: drivers may compile pipelines lazily on their first dispatch.
        self.run(input)?;
        if self.has_timestamps() {
            return Ok((self.profile_timestamps()?, ProfileMethod::Timestamps));
        }
        let mut times = vec![];
        let ctx = self.ctx.clone();
        let _turn = ctx.turn();
        for i in 0..self.plan.kernels.len() {
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            self.record(&mut enc, i..i + 1);
            let t = Instant::now();
            self.ctx.queue.submit([enc.finish()]);
            self.wait()?;
            times.push(self.kernel_time(i, t.elapsed().as_secs_f64()));
        }
        Ok((times, ProfileMethod::EachAlone))
    }

    fn kernel_time(&self, i: usize, seconds: f64) -> KernelTime {
        let k = &self.plan.kernels[i];
        KernelTime { label: k.describe(), shader: k.shader.name(), seconds, macs: k.macs, bytes: k.bytes }
    }

    /// One submission of every kernel, each in a compute pass of its own with timestamps
    /// written at its start and end.
    fn profile_timestamps(&mut self) -> Result<Vec<KernelTime>> {
        let ctx = self.ctx.clone();
        let _turn = ctx.turn();
        let device = &self.ctx.device;
        let n = self.plan.kernels.len();
        let queries = (2 * n).min(4096) as u32;
        let set = device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("kernel times"), ty: wgpu::QueryType::Timestamp, count: queries });
        let timed = (queries / 2) as usize;
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profile") });
        for i in 0..timed {
            let k = &self.plan.kernels[i];
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&k.label),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &set,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            pass.set_pipeline(&self.pipelines[self.pipeline_of(i)]);
            pass.set_bind_group(0, &self.bind_groups[i], &[]);
            pass.dispatch_workgroups(k.dispatch[0], k.dispatch[1], k.dispatch[2]);
        }
        let durations = self.pass_durations(enc, &set, timed as u32)?;
        Ok(durations.into_iter().enumerate().map(|(i, d)| self.kernel_time(i, d)).collect())
    }

    /// Kernels, CPU-tail ops and memory, for `edgesight bench --backend gpu`.
    pub fn summary(&self) -> String {
        let mut by_shader: HashMap<&str, usize> = HashMap::new();
        for k in &self.plan.kernels {
            *by_shader.entry(k.shader.name()).or_default() += 1;
        }
        let mut parts: Vec<String> = by_shader.iter().map(|(s, n)| format!("{s} x{n}")).collect();
        parts.sort();
        let tail = match &self.plan.tail {
            Some(t) => format!("; on the CPU: {} ops ({})", t.ops.len(), dedup(&t.ops).join(", ")),
            None => String::new(),
        };
        let fused: Vec<String> = self.plan.fusions.iter().filter(|f| f.1 > 0).map(|(n, c)| format!("{n} {c}")).collect();
        format!(
            "{} kernels, {} pipelines, {:.1} MB of buffers, planned in {:.2} s ({}; fused: {}){tail}",
            self.plan.kernels.len(),
            self.pipelines.len(),
            self.bytes_allocated as f64 / 1e6,
            self.plan_time.as_secs_f64(),
            parts.join(", "),
            if fused.is_empty() { "nothing".to_string() } else { fused.join(", ") }
        )
    }

    pub fn kernel_count(&self) -> usize {
        self.plan.kernels.len()
    }

    pub fn tail_ops(&self) -> Vec<String> {
        self.plan.tail.as_ref().map(|t| t.ops.clone()).unwrap_or_default()
    }
}

impl Drop for GpuEngine {
    fn drop(&mut self) {
        // Releasing GPU objects locks wgpu's GL context too: take the same turn (see GpuContext).
        let ctx = self.ctx.clone();
        let _turn = ctx.turn();
        self.bind_groups.clear();
        self.pipelines.clear();
        self.buffers.clear();
    }
}

fn dedup(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for s in v {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

impl Engine for GpuEngine {
    fn run(&mut self, input: &Tensor) -> Result<Vec<Tensor>> {
        let ctx = self.ctx.clone();
        let turn = ctx.turn();
        let t0 = Instant::now();
        self.upload(input)?;
        let mut enc = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("frame") });
        self.record(&mut enc, 0..self.plan.kernels.len());
        for d in &self.downloads {
            enc.copy_buffer_to_buffer(self.buffer_of(d.value), 0, &self.buffers[self.staging], d.offset, (d.len * 4) as u64);
        }
        self.ctx.queue.submit([enc.finish()]);
        let mut values = self.download()?;
        drop(turn);
        let t1 = Instant::now();
        let tail_out = match &mut self.tail {
            None => vec![],
            Some(t) => {
                let mut inputs = TVec::new();
                for (_, v) in &t.inputs {
                    let shape = &self.plan.values[*v].shape;
                    let data = values.get(v).context("tail input was not downloaded")?;
                    inputs.push(tract_onnx::prelude::Tensor::from_shape(shape, data)?.into());
                }
                t.state.run(inputs).map_err(|e| anyhow::anyhow!("inference failed in the CPU part: {e:#}"))?.into_iter().collect()
            }
        };
        self.last_split = (t1 - t0, t1.elapsed());
        let mut outputs = vec![];
        for (i, o) in self.plan.outputs.iter().enumerate() {
            outputs.push(match o {
                // Moved out of the download, not copied again (an output read twice is cloned).
                OutputSource::Gpu(v) => {
                    let data = match self.plan.outputs[i + 1..].iter().any(|o| matches!(o, OutputSource::Gpu(w) if w == v)) {
                        true => values.get(v).context("output was not downloaded")?.clone(),
                        false => values.remove(v).context("output was not downloaded")?,
                    };
                    Tensor::f32(self.output_shapes[i].clone(), data)
                }
                OutputSource::Const(t) => Tensor::f32(t.shape.clone(), t.as_f32()),
                OutputSource::Tail(j) => {
                    let t: &TValue = tail_out.get(*j).context("missing CPU output")?;
                    let t = t.cast_to::<f32>().map_err(|e| anyhow::anyhow!("{e}"))?;
                    let data: Vec<f32> = t.to_plain_array_view::<f32>().map_err(|e| anyhow::anyhow!("{e}"))?.iter().copied().collect();
                    Tensor::f32(t.shape().to_vec(), data)
                }
            });
        }
        Ok(outputs)
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn output_shapes(&self) -> &[Vec<usize>] {
        &self.output_shapes
    }

    fn backend_name(&self) -> String {
        format!("gpu (wgpu: {} via {:?})", self.ctx.adapter.name, self.ctx.adapter.backend)
    }
}
