//! The GPU planner: reads an ONNX graph, folds its constants on the host, infers every shape
//! for one input shape, and lowers the compute to a list of kernels (one WGSL pipeline each,
//! shapes baked in). Nodes the GPU cannot run (integer and control-like ops such as TopK or
//! GatherND in MoveNet's decoder) and everything downstream of them form an explicit CPU tail,
//! a smaller ONNX graph that tract runs on the downloaded boundary tensors.

pub mod fuse;
mod lower;
mod tail;

use super::attrs::{attr, attr_t};
use super::host::{self, HostTensor};
use super::kernels::Kernel;
use anyhow::{bail, Context, Result};
use std::collections::{HashMap, HashSet};
use tract_onnx::pb;

pub use super::kernels::Binding;

/// Largest tensor the GPU backend plans (shaders index with u32; 4 GiB of float32).
const MAX_ELEMENTS: usize = 1 << 30;

/// How convolutions are lowered (the naive one is the reference in tests and benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvImpl {
    #[default]
    Fast,
    Naive,
}

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub conv: ConvImpl,
    /// Workgroup memory the depthwise tiles may use (WebGPU's guaranteed minimum by default).
    pub workgroup_bytes: usize,
    /// The shader for every dense (not depthwise) convolution it can run, instead of the
    /// planner's default (`kernels::conv_shaders`: the tiled pointwise product, vec4 where the
    /// plane allows, or the implicit matrix product; `conv_dense` where neither fits): for
    /// tests and device checks of each variant. One of `ConvDense`, `Conv1x1Gemm`,
    /// `Conv1x1Vec4`, `ConvIgemm`.
    pub conv_shader: Option<super::kernels::Shader>,
    /// Fusion rules left out (`graph::fuse::RULES` names; "all" for none at all): for
    /// measuring each rule's effect on a GPU, never needed otherwise.
    pub skip_rules: Vec<String>,
    /// Kernel choice of the CPU tail's plan (the CPU engine's options).
    pub tail_kernels: crate::engine::cpu_kernels::KernelChoice,
    /// Time each convolution's shader against its alternatives (`kernels::variants`: the naive
    /// shader for a depthwise one, since the tiled one lost to it on an H100 for most 7x7
    /// layers; `conv_dense` and the other tiled forms for a dense one) when the engine is
    /// built, and keep the fastest. None: on real GPUs with timestamp queries, not on CPU
    /// emulations (there the planner's default stays).
    pub time_variants: Option<bool>,
}

/// A tensor living in a GPU buffer: `storage` is shared by views (Reshape and friends).
#[derive(Debug, Clone)]
pub struct GpuValue {
    pub shape: Vec<usize>,
    pub storage: usize,
}

/// Where each graph output comes from.
#[derive(Debug, Clone)]
pub enum OutputSource {
    Gpu(usize),
    Const(HostTensor),
    /// Output `i` of the CPU tail.
    Tail(usize),
}

/// The part of the graph left to the CPU: an ONNX model whose inputs are GPU values.
#[derive(Debug, Clone)]
pub struct Tail {
    pub onnx: Vec<u8>,
    /// (input name, GPU value) in the tail's input order.
    pub inputs: Vec<(String, usize)>,
    pub ops: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub values: Vec<GpuValue>,
    /// Element count of each storage.
    pub storages: Vec<usize>,
    pub params: Vec<Vec<f32>>,
    pub kernels: Vec<Kernel>,
    pub input: usize,
    pub outputs: Vec<OutputSource>,
    pub output_shapes: Vec<Vec<usize>>,
    pub tail: Option<Tail>,
    /// Storages that must survive the whole pass (input, downloads).
    pub pinned: HashSet<usize>,
    /// How often each fusion rule applied (`fuse`).
    pub fusions: Vec<(&'static str, usize)>,
}

enum Val {
    Const(HostTensor),
    Gpu(usize),
    /// Produced by the CPU tail.
    Cpu,
}


struct Planner<'a> {
    opts: &'a PlanOptions,
    vals: HashMap<String, Val>,
    values: Vec<GpuValue>,
    storages: Vec<usize>,
    params: Vec<Vec<f32>>,
    kernels: Vec<Kernel>,
    /// How many consumers (kernels, views, downloads) each GPU value has.
    uses: Vec<usize>,
    tail_nodes: Vec<pb::NodeProto>,
    tail_ops: Vec<String>,
    opset: i64,
}

/// Plans `model` for the input shape `input_shape` (the one graph input).
pub fn plan(model: &pb::ModelProto, input_shape: &[usize], opts: &PlanOptions) -> Result<Plan> {
    let graph = model.graph.as_ref().context("the model has no graph")?;
    let opset = model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(13, |o| o.version);
    let mut p = Planner {
        opts,
        vals: HashMap::new(),
        values: vec![],
        storages: vec![],
        params: vec![],
        kernels: vec![],
        uses: vec![],
        tail_nodes: vec![],
        tail_ops: vec![],
        opset,
    };
    let initializer_names: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    for t in &graph.initializer {
        p.vals.insert(t.name.clone(), Val::Const(HostTensor::from_proto(t)?));
    }
    let real_inputs: Vec<&pb::ValueInfoProto> =
        graph.input.iter().filter(|i| !initializer_names.contains(i.name.as_str())).collect();
    if real_inputs.len() != 1 {
        bail!("the GPU backend runs models with one input, this one has {}", real_inputs.len());
    }
    let input = p.new_value(input_shape.to_vec());
    p.vals.insert(real_inputs[0].name.clone(), Val::Gpu(input));
    p.uses[input] += 1;

    for node in &graph.node {
        p.node(node).with_context(|| format!("node '{}' ({})", node.name, node.op_type))?;
    }

    // Graph outputs and the tail's boundary.
    let mut outputs = vec![];
    let mut output_shapes = vec![];
    let mut pinned: HashSet<usize> = HashSet::new();
    pinned.insert(p.values[input].storage);
    let mut tail_outputs = vec![];
    for o in &graph.output {
        match p.vals.get(&o.name) {
            Some(Val::Gpu(v)) => {
                p.uses[*v] += 1;
                pinned.insert(p.values[*v].storage);
                output_shapes.push(p.values[*v].shape.clone());
                outputs.push(OutputSource::Gpu(*v));
            }
            Some(Val::Const(t)) => {
                output_shapes.push(t.shape.clone());
                outputs.push(OutputSource::Const(t.clone()));
            }
            Some(Val::Cpu) => {
                outputs.push(OutputSource::Tail(tail_outputs.len()));
                output_shapes.push(vec![]);
                tail_outputs.push(o.clone());
            }
            None => bail!("graph output '{}' is produced by no node", o.name),
        }
    }
    let tail = if p.tail_nodes.is_empty() {
        None
    } else {
        Some(p.build_tail(model, tail_outputs, &mut pinned)?)
    };
    let fusions = p.fuse(&pinned);
    for v in &p.values {
        let n = v.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n.is_none_or(|n| n > MAX_ELEMENTS) {
            bail!("a tensor of shape {:?} is too large for the GPU backend", v.shape);
        }
    }
    Ok(Plan {
        values: p.values,
        storages: p.storages,
        params: p.params,
        kernels: p.kernels,
        input,
        outputs,
        output_shapes,
        tail,
        pinned,
        fusions,
    })
}

impl Planner<'_> {
    fn new_value(&mut self, shape: Vec<usize>) -> usize {
        // Oversized shapes are refused at the end of planning (see MAX_ELEMENTS).
        let len = shape.iter().fold(1usize, |a, &d| a.saturating_mul(d));
        self.storages.push(len);
        self.values.push(GpuValue { shape, storage: self.storages.len() - 1 });
        self.uses.push(0);
        self.values.len() - 1
    }

    fn view(&mut self, of: usize, shape: Vec<usize>) -> usize {
        let storage = self.values[of].storage;
        self.uses[of] += 1;
        self.values.push(GpuValue { shape, storage });
        self.uses.push(0);
        self.values.len() - 1
    }

    fn param(&mut self, data: Vec<f32>) -> Binding {
        self.params.push(if data.is_empty() { vec![0.0] } else { data });
        Binding::Param(self.params.len() - 1)
    }

    fn shape(&self, v: usize) -> &[usize] {
        &self.values[v].shape
    }

    fn push(&mut self, mut k: Kernel) {
        for b in k.all_bindings().iter().skip(1) {
            if let Binding::Value(v) = b {
                self.uses[*v] += 1;
            }
        }
        k.label = format!("{} #{}", k.label, self.kernels.len());
        self.kernels.push(k);
    }

    fn set(&mut self, name: &str, v: Val) {
        if !name.is_empty() {
            self.vals.insert(name.to_string(), v);
        }
    }

    /// A GPU operand: a GPU value, or a constant uploaded once as a parameter buffer.
    fn operand(&mut self, name: &str) -> Result<(Binding, Vec<usize>)> {
        match self.vals.get(name) {
            Some(Val::Gpu(v)) => Ok((Binding::Value(*v), self.values[*v].shape.clone())),
            Some(Val::Const(t)) => {
                let (d, s) = (t.as_f32(), t.shape.clone());
                Ok((self.param(d), s))
            }
            _ => bail!("input '{name}' is not available on the GPU"),
        }
    }

    fn node(&mut self, node: &pb::NodeProto) -> Result<()> {
        let op = node.op_type.as_str();
        if op == "Constant" {
            let t = if let Some(t) = attr_t(node, "value") {
                HostTensor::from_proto(t)?
            } else if let Some(f) = attr(node, "value_float") {
                HostTensor::f32(vec![], vec![f.f])
            } else if let Some(a) = attr(node, "value_floats") {
                HostTensor::f32(vec![a.floats.len()], a.floats.clone())
            } else if let Some(a) = attr(node, "value_int") {
                HostTensor::i64(vec![], vec![a.i])
            } else if let Some(a) = attr(node, "value_ints") {
                HostTensor::i64(vec![a.ints.len()], a.ints.clone())
            } else {
                bail!("unsupported Constant attribute");
            };
            self.set(node.output.first().context("Constant without output")?, Val::Const(t));
            return Ok(());
        }
        let inputs: Vec<Option<&Val>> =
            node.input.iter().map(|n| if n.is_empty() { None } else { self.vals.get(n) }).collect();
        for (i, n) in node.input.iter().enumerate() {
            if !n.is_empty() && inputs[i].is_none() {
                bail!("input '{n}' is not produced before it is used (graph not topologically sorted?)");
            }
        }
        let any_cpu = inputs.iter().any(|v| matches!(v, Some(Val::Cpu)));
        let all_const = inputs.iter().all(|v| matches!(v, None | Some(Val::Const(_))));
        if !any_cpu && domain_is_onnx(node) {
            if all_const && !node.input.is_empty() {
                let consts: Vec<Option<&HostTensor>> =
                    inputs.iter().map(|v| if let Some(Val::Const(t)) = v { Some(t) } else { None }).collect();
                if let Some(outs) = host::eval(op, node, &consts)? {
                    for (name, t) in node.output.iter().zip(outs) {
                        self.set(name, Val::Const(t));
                    }
                    return Ok(());
                }
            } else if self.lower(node)? {
                return Ok(());
            }
        }
        // The CPU tail takes it, and everything that depends on it.
        self.tail_nodes.push(node.clone());
        self.tail_ops.push(op.to_string());
        for o in &node.output {
            self.set(o, Val::Cpu);
        }
        Ok(())
    }

    fn const_input(&self, node: &pb::NodeProto, i: usize) -> Option<HostTensor> {
        let name = node.input.get(i)?;
        match self.vals.get(name) {
            Some(Val::Const(t)) => Some(t.clone()),
            _ => None,
        }
    }

    fn gpu_input(&self, node: &pb::NodeProto, i: usize) -> Option<usize> {
        match self.vals.get(node.input.get(i)?) {
            Some(Val::Gpu(v)) => Some(*v),
            _ => None,
        }
    }
}

fn domain_is_onnx(node: &pb::NodeProto) -> bool {
    node.domain.is_empty() || node.domain == "ai.onnx"
}

#[cfg(test)]
mod tests {
    //! The planner reads untrusted files: mutated models must give an error or a plan, never a
    //! panic (no GPU needed: planning is host-only).
    use super::*;
    use crate::rng::SplitMix64;

    fn models() -> Vec<(Vec<u8>, Vec<usize>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let arch = crate::convert::arch("litepose-xs").unwrap();
        let lp = crate::convert::build(arch, &crate::convert::random_entries(arch, 1), 64, 64).unwrap().onnx;
        vec![
            (std::fs::read(dir.join("selfie.onnx")).unwrap(), vec![1, 256, 256, 3]),
            (std::fs::read(dir.join("movenet-multipose.onnx")).unwrap(), vec![1, 128, 128, 3]),
            (lp, vec![1, 3, 64, 64]),
        ]
    }

    fn plan_no_panic(bytes: &[u8], shape: &[usize], what: &str) {
        let Ok(model) = <pb::ModelProto as prost::Message>::decode(bytes) else { return };
        let r = std::panic::catch_unwind(|| plan(&model, shape, &PlanOptions::default()).map(|_| ()));
        assert!(r.is_ok(), "planner panicked on {what}");
    }

    #[test]
    fn shipped_models_plan_with_their_splits() {
        for (bytes, shape) in models() {
            let model = <pb::ModelProto as prost::Message>::decode(&bytes[..]).unwrap();
            let p = plan(&model, &shape, &PlanOptions::default()).unwrap();
            assert!(!p.kernels.is_empty());
            // Only MoveNet has a CPU tail, and it starts at the decoder.
            if shape[1] == 128 {
                let t = p.tail.as_ref().expect("MoveNet's decoder runs on the CPU");
                assert!(t.ops.iter().any(|o| o == "TopK") && !t.ops.iter().any(|o| o == "Conv"));
            } else {
                assert!(p.tail.is_none());
            }
        }
    }

    /// Dispatches per model (the GPU backend's cost on real GPUs is per dispatch as much as per
    /// operation) and what the fusion rules made of them, without a GPU: the goals of the fused
    /// planner, on the bench's input sizes, with the default convolution shaders and with
    /// `conv_dense` for all.
    #[test]
    fn shipped_models_plan_to_few_fused_dispatches() {
        use crate::engine::gpu::kernels::Shader;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let built = |name: &str, h: usize, w: usize| {
            let arch = crate::convert::arch(name).unwrap();
            (crate::convert::build(arch, &crate::convert::random_entries(arch, 1), h, w).unwrap().onnx, vec![1, 3, h, w])
        };
        let cases: Vec<(&str, (Vec<u8>, Vec<usize>), usize)> = vec![
            ("selfie", (std::fs::read(dir.join("selfie.onnx")).unwrap(), vec![1, 256, 256, 3]), 70),
            ("movenet-multipose", (std::fs::read(dir.join("movenet-multipose.onnx")).unwrap(), vec![1, 288, 384, 3]), 70),
            ("litepose-xs", built("litepose-xs", 256, 256), 90),
            ("litepose-s", built("litepose-s", 448, 448), 90),
            ("bevanet-s", built("bevanet-s", 512, 1024), 220),
        ];
        for forced in [None, Some(Shader::ConvDense)] {
            for (name, (bytes, shape), goal) in &cases {
                let model = <pb::ModelProto as prost::Message>::decode(&bytes[..]).unwrap();
                let opts = PlanOptions { conv_shader: forced, workgroup_bytes: 16384, ..Default::default() };
                let p = plan(&model, shape, &opts).unwrap();
                let count = |s: Shader| p.kernels.iter().filter(|k| k.shader == s).count();
                assert!(p.kernels.len() <= *goal, "{name}: {} dispatches, goal {goal}; fusions {:?}", p.kernels.len(), p.fusions);
                // No batch norm or other constant affine term runs on its own: no element-wise
                // kernel is one operation of a tensor and a parameter.
                for k in p.kernels.iter().filter(|k| k.shader == Shader::Ewise) {
                    let params = k.epilogue.inputs.iter().filter(|e| matches!(e.binding, Binding::Param(_))).count();
                    assert!(!(k.epilogue.ops.len() == 3 && params == 1 && k.epilogue.inputs.len() == 2), "{name}: a lone affine kernel {}", k.describe());
                }
                match *name {
                    // Every depthwise convolution runs with its pointwise one; residuals and
                    // activations in epilogues: nothing element-wise is left.
                    "litepose-xs" | "litepose-s" => {
                        assert_eq!((count(Shader::DepthwiseTiled), count(Shader::Ewise)), (0, 0), "{name}");
                        assert_eq!(count(Shader::DwPw), 39, "{name}");
                    }
                    "movenet-multipose" => assert_eq!(count(Shader::DwPw), 26, "{name}"),
                    "selfie" => assert_eq!(count(Shader::Squeeze), 9, "{name}: squeeze-and-excitation blocks"),
                    _ => {
                        let fused = |rule: &str| p.fusions.iter().find(|f| f.0 == rule).map_or(0, |f| f.1);
                        assert!(fused("concat") > 0 && fused("view") > 0 && fused("reduce_prologue") > 0, "{name}: {:?}", p.fusions);
                    }
                }
                if forced.is_none() {
                    // The tiled shaders take every dense convolution of these models.
                    assert_eq!(count(Shader::ConvDense), 0, "{name}");
                }
                eprintln!("{name} (shader {forced:?}): {} dispatches", p.kernels.len());
            }
        }
    }

    #[test]
    fn mutated_models_never_panic() {
        let mut r = SplitMix64(99);
        for (bytes, shape) in models() {
            let model = <pb::ModelProto as prost::Message>::decode(&bytes[..]).unwrap();
            // Structural mutations: attributes, initializer shapes, inputs, node order.
            for i in 0..150 {
                let mut m = model.clone();
                let g = m.graph.as_mut().unwrap();
                for _ in 0..1 + r.below(3) {
                    match r.below(6) {
                        0 if !g.node.is_empty() => {
                            let n = r.below(g.node.len());
                            if let Some(a) = g.node[n].attribute.first_mut() {
                                a.i = [0, -1, 1 << 40, 3][r.below(4)];
                                if !a.ints.is_empty() {
                                    let k = r.below(a.ints.len());
                                    a.ints[k] = [0, -5, 1 << 35, 2][r.below(4)];
                                }
                                if r.below(3) == 0 {
                                    a.ints.pop();
                                }
                            }
                        }
                        1 if !g.initializer.is_empty() => {
                            let n = r.below(g.initializer.len());
                            let t = &mut g.initializer[n];
                            if !t.dims.is_empty() {
                                let k = r.below(t.dims.len());
                                t.dims[k] = [0, -1, 1 << 31, t.dims[k] + 1][r.below(4)];
                            } else {
                                t.raw_data.truncate(r.below(4));
                            }
                        }
                        2 if !g.node.is_empty() => {
                            let n = r.below(g.node.len());
                            if !g.node[n].input.is_empty() {
                                let k = r.below(g.node[n].input.len());
                                if r.below(2) == 0 {
                                    g.node[n].input.remove(k);
                                } else {
                                    g.node[n].input[k] = String::new();
                                }
                            }
                        }
                        3 if g.node.len() > 1 => {
                            let (a, b) = (r.below(g.node.len()), r.below(g.node.len()));
                            g.node.swap(a, b);
                        }
                        4 if !g.node.is_empty() => {
                            let n = r.below(g.node.len());
                            g.node[n].op_type = ["Conv", "Resize", "Slice", "Concat", "Transpose", "Split", "MatMul", "Gather"][r.below(8)].into();
                        }
                        _ => {
                            let n = r.below(g.node.len().max(1));
                            if let Some(node) = g.node.get_mut(n) {
                                node.output.clear();
                            }
                        }
                    }
                }
                plan_no_panic(&prost::Message::encode_to_vec(&m), &shape, &format!("structural mutation {i}"));
            }
            // Byte-level mutations and truncations of the file itself.
            for i in 0..60 {
                let mut b = bytes.clone();
                for _ in 0..1 + r.below(8) {
                    let k = r.below(b.len());
                    b[k] = r.next_u64() as u8;
                }
                if r.below(4) == 0 {
                    b.truncate(r.below(b.len()));
                }
                plan_no_panic(&b, &shape, &format!("byte mutation {i}"));
            }
        }
    }
}
