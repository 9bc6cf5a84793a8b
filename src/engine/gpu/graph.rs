//! The GPU planner: reads an ONNX graph, folds its constants on the host, infers every shape
//! for one input shape, and lowers the compute to a list of kernels (one WGSL pipeline each,
//! shapes baked in). Nodes the GPU cannot run (integer and control-like ops such as TopK or
//! GatherND in MoveNet's decoder) and everything downstream of them form an explicit CPU tail,
//! a smaller ONNX graph that tract runs on the downloaded boundary tensors.

use super::host::{self, HostTensor};
use super::kernels::{self, Act, Kernel, Shader};
use anyhow::{bail, Context, Result};
use std::collections::{HashMap, HashSet};
use tract_onnx::pb;

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
    /// Pointwise convolutions as a tiled matrix product (`conv1x1_gemm`) rather than
    /// `conv_dense`. None: by adapter (the tiled product relies on fast workgroup memory and
    /// barriers, which CPU drivers such as lavapipe emulate slowly: there `conv_dense` was 2x
    /// faster on LitePose-XS).
    pub pointwise_gemm: Option<bool>,
}

/// A tensor living in a GPU buffer: `storage` is shared by views (Reshape and friends).
#[derive(Debug, Clone)]
pub struct GpuValue {
    pub shape: Vec<usize>,
    pub storage: usize,
}

/// Where a kernel binding reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Value(usize),
    Param(usize),
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
}

enum Val {
    Const(HostTensor),
    Gpu(usize),
    /// Produced by the CPU tail.
    Cpu,
}

pub fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub fn attr_i(node: &pb::NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

pub fn attr_f(node: &pb::NodeProto, name: &str) -> Option<f32> {
    attr(node, name).map(|a| a.f)
}

pub fn attr_is(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// A list attribute of exactly `n` values, each at least `min` (strides, dilations, pads...).
fn attr_list(node: &pb::NodeProto, name: &str, default: &[i64], n: usize, min: i64) -> Result<Vec<usize>> {
    let v = attr_is(node, name).unwrap_or_else(|| default.to_vec());
    if v.len() != n || v.iter().any(|&x| x < min || x > 1 << 20) {
        bail!("attribute {name} = {v:?}: expected {n} values of at least {min}");
    }
    Ok(v.iter().map(|&x| x as usize).collect())
}

pub fn attr_s(node: &pb::NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

pub fn attr_t<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::TensorProto> {
    attr(node, name).and_then(|a| a.t.as_ref())
}

/// Output shape of the view ops (Reshape, Flatten, Squeeze, Unsqueeze); `extra` is their
/// second input where the opset moved an attribute to an input.
pub fn reshaped(op: &str, node: &pb::NodeProto, shape: &[usize], extra: Option<&HostTensor>) -> Result<Vec<usize>> {
    let rank = shape.len();
    Ok(match op {
        "Reshape" => {
            let target = extra.context("Reshape needs a constant shape")?.as_i64();
            let allow_zero = attr_i(node, "allowzero").unwrap_or(0) != 0;
            let total: usize = shape.iter().product();
            let mut out = Vec::with_capacity(target.len());
            let mut infer = None;
            for (i, &d) in target.iter().enumerate() {
                match d {
                    0 if !allow_zero => out.push(*shape.get(i).context("Reshape copies a missing axis")?),
                    -1 => {
                        if infer.is_some() {
                            bail!("Reshape with two -1");
                        }
                        infer = Some(i);
                        out.push(1);
                    }
                    d if d < 0 => bail!("Reshape to a negative extent {d}"),
                    d => out.push(d as usize),
                }
            }
            let known: usize = out.iter().product();
            if let Some(i) = infer {
                if known == 0 || total % known != 0 {
                    bail!("cannot reshape {shape:?} to {target:?}");
                }
                out[i] = total / known;
            }
            if out.iter().product::<usize>() != total {
                bail!("cannot reshape {shape:?} to {target:?}");
            }
            out
        }
        "Flatten" => {
            let axis = host::norm_axis(attr_i(node, "axis").unwrap_or(1), rank + 1)?;
            vec![shape[..axis].iter().product(), shape[axis..].iter().product()]
        }
        "Squeeze" => {
            let axes = match extra {
                Some(a) => Some(a.as_i64()),
                None => attr_is(node, "axes"),
            };
            match axes {
                None => shape.iter().copied().filter(|&d| d != 1).collect(),
                Some(axes) => {
                    let axes: HashSet<usize> = axes.iter().map(|&a| host::norm_axis(a, rank)).collect::<Result<_>>()?;
                    for &a in &axes {
                        if shape[a] != 1 {
                            bail!("Squeeze of axis {a} with extent {}", shape[a]);
                        }
                    }
                    shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
                }
            }
        }
        "Unsqueeze" => {
            let axes = match extra {
                Some(a) => a.as_i64(),
                None => attr_is(node, "axes").context("Unsqueeze needs axes")?,
            };
            let out_rank = rank + axes.len();
            let axes: HashSet<usize> = axes.iter().map(|&a| host::norm_axis(a, out_rank)).collect::<Result<_>>()?;
            let mut it = shape.iter();
            (0..out_rank).map(|i| if axes.contains(&i) { 1 } else { *it.next().unwrap_or(&1) }).collect()
        }
        _ => bail!("{op} is not a view op"),
    })
}

pub fn pad_to_6(v: &[usize], fill: usize) -> Result<[usize; 6]> {
    if v.len() > 6 {
        bail!("tensors of rank {} (more than 6) are not supported on the GPU", v.len());
    }
    let mut out = [fill; 6];
    out[6 - v.len()..].copy_from_slice(v);
    Ok(out)
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
    p.fuse_activations(&pinned);
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
        for b in k.bindings.iter().skip(1) {
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

    /// Lowers one node with at least one GPU input; false when the GPU cannot run it.
    fn lower(&mut self, node: &pb::NodeProto) -> Result<bool> {
        let op = node.op_type.as_str();
        let out_name = node.output.first().cloned().unwrap_or_default();
        let Some(x) = (0..node.input.len()).find_map(|i| self.gpu_input(node, i)) else {
            return Ok(false);
        };
        let first_is_gpu = self.gpu_input(node, 0).is_some();
        let result = match op {
            "Identity" | "Dropout" if first_is_gpu => self.view(x, self.shape(x).to_vec()),
            "Cast" if first_is_gpu => {
                let to = attr_i(node, "to").unwrap_or(1);
                if to != pb::tensor_proto::DataType::Float as i64 {
                    return Ok(false);
                }
                self.view(x, self.shape(x).to_vec())
            }
            "Shape" | "Size" if first_is_gpu => {
                let placeholder = HostTensor::f32(self.shape(x).to_vec(), vec![]);
                // Shape and Size read only the shape.
                let t = if op == "Shape" {
                    host::eval("Shape", node, &[Some(&placeholder)])?.context("Shape")?.remove(0)
                } else {
                    HostTensor::i64(vec![], vec![self.shape(x).iter().product::<usize>() as i64])
                };
                self.set(&out_name, Val::Const(t));
                return Ok(true);
            }
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" if first_is_gpu => {
                let extra = self.const_input(node, 1);
                if node.input.len() > 1 && !node.input[1].is_empty() && extra.is_none() {
                    return Ok(false);
                }
                let shape = reshaped(op, node, self.shape(x), extra.as_ref())?;
                self.view(x, shape)
            }
            "Conv" if first_is_gpu => {
                let Some(w) = self.const_input(node, 1) else { return Ok(false) };
                let b = self.const_input(node, 2);
                if node.input.len() > 2 && !node.input[2].is_empty() && b.is_none() {
                    return Ok(false);
                }
                self.conv(node, x, &w, b.as_ref())?
            }
            "ConvTranspose" if first_is_gpu => {
                let Some(w) = self.const_input(node, 1) else { return Ok(false) };
                let b = self.const_input(node, 2);
                self.conv_transpose(node, x, &w, b.as_ref())?
            }
            "BatchNormalization" if first_is_gpu && node.output.len() == 1 => {
                let (Some(s), Some(bb), Some(m), Some(v)) =
                    (self.const_input(node, 1), self.const_input(node, 2), self.const_input(node, 3), self.const_input(node, 4))
                else {
                    return Ok(false);
                };
                let eps = attr_f(node, "epsilon").unwrap_or(1e-5);
                let c = s.len();
                if [bb.len(), m.len(), v.len()].iter().any(|&l| l != c) || self.shape(x).get(1) != Some(&c) {
                    bail!("BatchNormalization parameters do not match the input's channels");
                }
                let (s, bb, m, v) = (s.as_f32(), bb.as_f32(), m.as_f32(), v.as_f32());
                let scale: Vec<f32> = (0..c).map(|i| s[i] / (v[i] + eps).sqrt()).collect();
                let shift: Vec<f32> = (0..c).map(|i| bb[i] - m[i] * scale[i]).collect();
                let rank = self.shape(x).len();
                let mut pshape = vec![c];
                pshape.extend(std::iter::repeat_n(1, rank.saturating_sub(2)));
                let sc = self.param(scale);
                let sh = self.param(shift);
                let y = self.binary(Binding::Value(x), self.shape(x).to_vec(), sc, pshape.clone(), 2)?;
                self.binary(Binding::Value(y), self.shape(y).to_vec(), sh, pshape, 0)?
            }
            "Relu" | "Sigmoid" | "Erf" | "Sqrt" | "Exp" | "Abs" | "Neg" | "Reciprocal" | "Tanh" | "HardSigmoid"
            | "HardSwish" | "Log" | "LeakyRelu" | "Floor" | "Ceil" | "Clip"
                if first_is_gpu =>
            {
                let act = match op {
                    "Clip" => {
                        let lo = if self.opset >= 11 {
                            match node.input.get(1).filter(|n| !n.is_empty()) {
                                Some(_) => match self.const_input(node, 1).and_then(|t| t.as_f32().first().copied()) {
                                    Some(v) => v,
                                    None => return Ok(false),
                                },
                                None => f32::MIN,
                            }
                        } else {
                            attr_f(node, "min").unwrap_or(f32::MIN)
                        };
                        let hi = if self.opset >= 11 {
                            match node.input.get(2).filter(|n| !n.is_empty()) {
                                Some(_) => match self.const_input(node, 2).and_then(|t| t.as_f32().first().copied()) {
                                    Some(v) => v,
                                    None => return Ok(false),
                                },
                                None => f32::MAX,
                            }
                        } else {
                            attr_f(node, "max").unwrap_or(f32::MAX)
                        };
                        Act::clip(lo, hi)
                    }
                    "HardSigmoid" => {
                        Act::new(kernels::HARD_SIGMOID, attr_f(node, "alpha").unwrap_or(0.2), attr_f(node, "beta").unwrap_or(0.5))
                    }
                    "LeakyRelu" => Act::new(kernels::LEAKY_RELU, attr_f(node, "alpha").unwrap_or(0.01), 0.0),
                    other => Act::named(other).context("unary op")?,
                };
                let y = self.new_value(self.shape(x).to_vec());
                self.push(kernels::unary(y, self.shape(y), x, act));
                y
            }
            "Add" | "Sub" | "Mul" | "Div" | "Min" | "Max" | "Pow" | "Sum" => {
                if node.input.iter().any(|n| n.is_empty()) || node.input.is_empty() {
                    return Ok(false);
                }
                if node.input.iter().any(|n| matches!(self.vals.get(n), Some(Val::Const(t)) if matches!(t.data, host::HostData::I(_))))
                {
                    // Integer arithmetic stays exact on the CPU.
                    return Ok(false);
                }
                let code = match op {
                    "Add" | "Sum" => 0,
                    "Sub" => 1,
                    "Mul" => 2,
                    "Div" => 3,
                    "Min" => 4,
                    "Max" => 5,
                    _ => 6,
                };
                let (mut acc, mut shape) = self.operand(&node.input[0])?;
                if node.input.len() == 1 {
                    let Binding::Value(v) = acc else { return Ok(false) };
                    self.view(v, shape)
                } else {
                    let mut last = 0;
                    for name in node.input[1..].to_vec() {
                        let (b, bs) = self.operand(&name)?;
                        last = self.binary(acc, shape.clone(), b, bs, code)?;
                        acc = Binding::Value(last);
                        shape = self.shape(last).to_vec();
                    }
                    last
                }
            }
            "MatMul" if node.input.len() == 2 => {
                let (a, ash) = self.operand(&node.input[0])?;
                let (b, bsh) = self.operand(&node.input[1])?;
                self.matmul(a, ash, b, bsh)?
            }
            "Concat" if !node.input.is_empty() => {
                let axis = attr_i(node, "axis").context("Concat needs an axis")?;
                let mut parts = vec![];
                for name in node.input.clone() {
                    parts.push(self.operand(&name)?);
                }
                self.concat(parts, axis)?
            }
            "Transpose" if first_is_gpu => {
                let shape = self.shape(x).to_vec();
                let rank = shape.len();
                let perm = host::permutation(attr_is(node, "perm"), rank)?;
                let st = host::strides(&shape);
                let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
                let src: Vec<i64> = perm.iter().map(|&p| st[p] as i64).collect();
                let y = self.new_value(out.clone());
                self.push(kernels::strided_copy("transpose", y, Binding::Value(x), &out, 0, &src, 0, &contiguous(&out))?);
                y
            }
            "Slice" if first_is_gpu => {
                let (Some(starts), Some(ends)) = (self.const_input(node, 1), self.const_input(node, 2)) else {
                    return Ok(false);
                };
                let shape = self.shape(x).to_vec();
                let rank = shape.len();
                let starts = starts.as_i64();
                let axes = match node.input.get(3).filter(|n| !n.is_empty()) {
                    Some(_) => match self.const_input(node, 3) {
                        Some(a) => a.as_i64(),
                        None => return Ok(false),
                    },
                    None => (0..starts.len() as i64).collect(),
                };
                let steps = match node.input.get(4).filter(|n| !n.is_empty()) {
                    Some(_) => match self.const_input(node, 4) {
                        Some(a) => a.as_i64(),
                        None => return Ok(false),
                    },
                    None => vec![1; starts.len()],
                };
                let ends = ends.as_i64();
                if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
                    bail!("Slice with starts, ends, axes and steps of different lengths");
                }
                let st = host::strides(&shape);
                let mut out = shape.clone();
                let mut src: Vec<i64> = st.iter().map(|&s| s as i64).collect();
                let mut base = 0i64;
                for k in 0..starts.len() {
                    let a = host::norm_axis(axes[k], rank)?;
                    let (s, step, len) = host::slice_axis(shape[a], starts[k], ends[k], steps[k])?;
                    out[a] = len;
                    base += s * st[a] as i64;
                    src[a] = step * st[a] as i64;
                }
                let y = self.new_value(out.clone());
                self.push(kernels::strided_copy("slice", y, Binding::Value(x), &out, base, &src, 0, &contiguous(&out))?);
                y
            }
            "Split" if first_is_gpu => {
                let shape = self.shape(x).to_vec();
                let axis = host::norm_axis(attr_i(node, "axis").unwrap_or(0), shape.len())?;
                let n = node.output.len().max(1);
                let sizes: Vec<usize> = match (self.const_input(node, 1), attr_is(node, "split")) {
                    (Some(t), _) => t.as_i64().iter().map(|&v| v.max(0) as usize).collect(),
                    (None, Some(s)) => s.iter().map(|&v| v.max(0) as usize).collect(),
                    _ => {
                        let each = shape[axis].div_ceil(n);
                        (0..n).map(|i| each.min(shape[axis].saturating_sub(i * each))).collect()
                    }
                };
                if sizes.len() != n || sizes.iter().sum::<usize>() != shape[axis] {
                    bail!("Split sizes {sizes:?} do not cover axis {axis} of {shape:?}");
                }
                let st = host::strides(&shape);
                let mut offset = 0;
                for (o, size) in node.output.clone().iter().zip(sizes) {
                    let mut out = shape.clone();
                    out[axis] = size;
                    let src: Vec<i64> = st.iter().map(|&s| s as i64).collect();
                    let y = self.new_value(out.clone());
                    let base = (offset * st[axis]) as i64;
                    self.push(kernels::strided_copy("split", y, Binding::Value(x), &out, base, &src, 0, &contiguous(&out))?);
                    self.set(o, Val::Gpu(y));
                    offset += size;
                }
                return Ok(true);
            }
            "Expand" if first_is_gpu => {
                let Some(t) = self.const_input(node, 1) else { return Ok(false) };
                let target: Vec<usize> = t.as_i64().iter().map(|&d| d.max(0) as usize).collect();
                let shape = self.shape(x).to_vec();
                let out = host::broadcast_shape(&shape, &target)?;
                let src: Vec<i64> = host::broadcast_strides(&shape, &out).iter().map(|&s| s as i64).collect();
                let y = self.new_value(out.clone());
                self.push(kernels::strided_copy("expand", y, Binding::Value(x), &out, 0, &src, 0, &contiguous(&out))?);
                y
            }
            "Resize" | "Upsample" if first_is_gpu => match self.resize(node, x)? {
                Some(y) => y,
                None => return Ok(false),
            },
            "AveragePool" | "MaxPool" if first_is_gpu && node.output.len() == 1 => self.pool(node, x)?,
            "GlobalAveragePool" | "GlobalMaxPool" if first_is_gpu => {
                let rank = self.shape(x).len();
                let axes: Vec<usize> = (2..rank).collect();
                self.reduce(x, &axes, true, if op == "GlobalAveragePool" { 1 } else { 2 })?
            }
            "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceSumSquare" if first_is_gpu => {
                let rank = self.shape(x).len();
                let axes = match (attr_is(node, "axes"), node.input.get(1).filter(|n| !n.is_empty())) {
                    (Some(a), _) => Some(a),
                    (None, Some(_)) => match self.const_input(node, 1) {
                        Some(t) => Some(t.as_i64()),
                        None => return Ok(false),
                    },
                    (None, None) => None,
                };
                let axes: Vec<usize> = match axes {
                    Some(a) if !a.is_empty() => a.iter().map(|&a| host::norm_axis(a, rank)).collect::<Result<_>>()?,
                    _ if attr_i(node, "noop_with_empty_axes").unwrap_or(0) != 0 => vec![],
                    _ => (0..rank).collect(),
                };
                let keep = attr_i(node, "keepdims").unwrap_or(1) != 0;
                let code = match op {
                    "ReduceSum" => 0,
                    "ReduceMean" => 1,
                    "ReduceMax" => 2,
                    "ReduceMin" => 3,
                    _ => 4,
                };
                self.reduce(x, &axes, keep, code)?
            }
            _ => return Ok(false),
        };
        self.set(&out_name, Val::Gpu(result));
        Ok(true)
    }

    fn binary(&mut self, a: Binding, ash: Vec<usize>, b: Binding, bsh: Vec<usize>, code: u32) -> Result<usize> {
        let out = host::broadcast_shape(&ash, &bsh)?;
        let y = self.new_value(out.clone());
        let k = kernels::binary(y, &out, a, &host::broadcast_strides(&ash, &out), b, &host::broadcast_strides(&bsh, &out), code)?;
        self.push(k);
        Ok(y)
    }

    fn matmul(&mut self, a: Binding, ash: Vec<usize>, b: Binding, bsh: Vec<usize>) -> Result<usize> {
        if ash.is_empty() || bsh.is_empty() {
            bail!("MatMul of a scalar");
        }
        // 1-D operands are promoted as numpy does, and the added axis removed afterwards.
        let a2 = if ash.len() == 1 { vec![1, ash[0]] } else { ash.clone() };
        let b2 = if bsh.len() == 1 { vec![bsh[0], 1] } else { bsh.clone() };
        let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
        let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
        if k != k2 {
            bail!("MatMul of {ash:?} and {bsh:?}");
        }
        let abatch = &a2[..a2.len() - 2];
        let bbatch = &b2[..b2.len() - 2];
        let batch = host::broadcast_shape(abatch, bbatch)?;
        if batch.len() > 3 {
            bail!("MatMul with more than 3 batch axes");
        }
        let pad3 = |v: &[usize]| -> [usize; 3] {
            let mut o = [0usize; 3];
            o[3 - v.len()..].copy_from_slice(v);
            o
        };
        let mut full = batch.clone();
        full.extend([m, n]);
        let sa = host::broadcast_strides(abatch, &batch).iter().map(|s| s * m * k).collect::<Vec<_>>();
        let sb = host::broadcast_strides(bbatch, &batch).iter().map(|s| s * k * n).collect::<Vec<_>>();
        let mut bd = [1usize; 3];
        bd[3 - batch.len()..].copy_from_slice(&batch);
        let y = self.new_value(full.clone());
        self.push(kernels::matmul(y, &full, a, b, m, k, n, bd, pad3(&sa), pad3(&sb)));
        let mut out = batch;
        if ash.len() > 1 {
            out.push(m);
        }
        if bsh.len() > 1 {
            out.push(n);
        }
        Ok(if out == full { y } else { self.view(y, out) })
    }

    fn concat(&mut self, parts: Vec<(Binding, Vec<usize>)>, axis: i64) -> Result<usize> {
        let rank = parts[0].1.len();
        let axis = host::norm_axis(axis, rank)?;
        let mut out = parts[0].1.clone();
        out[axis] = 0;
        for (_, s) in &parts {
            if s.len() != rank || (0..rank).any(|i| i != axis && s[i] != parts[0].1[i]) {
                bail!("Concat of mismatched shapes");
            }
            out[axis] += s[axis];
        }
        let y = self.new_value(out.clone());
        let ost = host::strides(&out);
        let mut offset = 0;
        for (b, s) in parts {
            if s[axis] == 0 {
                continue;
            }
            let src = contiguous(&s);
            let dst: Vec<i64> = ost.iter().map(|&v| v as i64).collect();
            self.push(kernels::strided_copy("concat", y, b, &s, 0, &src, (offset * ost[axis]) as i64, &dst)?);
            offset += s[axis];
        }
        Ok(y)
    }

    fn reduce(&mut self, x: usize, axes: &[usize], keep: bool, code: u32) -> Result<usize> {
        let shape = self.shape(x).to_vec();
        let st = host::strides(&shape);
        let kept: Vec<usize> = (0..shape.len()).map(|i| if axes.contains(&i) { 1 } else { shape[i] }).collect();
        let red: Vec<usize> = (0..shape.len()).map(|i| if axes.contains(&i) { shape[i] } else { 1 }).collect();
        let out: Vec<usize> = if keep {
            kept.clone()
        } else {
            (0..shape.len()).filter(|i| !axes.contains(i)).map(|i| shape[i]).collect()
        };
        let y = self.new_value(out);
        self.push(kernels::reduce(y, x, &kept, &red, &st, code)?);
        Ok(y)
    }

    fn conv(&mut self, node: &pb::NodeProto, x: usize, w: &HostTensor, b: Option<&HostTensor>) -> Result<usize> {
        let xs = self.shape(x).to_vec();
        if xs.len() != 4 || w.shape.len() != 4 {
            bail!("only 2-D convolutions run on the GPU (input {xs:?}, weight {:?})", w.shape);
        }
        let (n, c, ih, iw) = (xs[0], xs[1], xs[2], xs[3]);
        let (oc, icg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
        let g = attr_i(node, "group").unwrap_or(1).clamp(1, 1 << 20) as usize;
        if oc == 0 || kh == 0 || kw == 0 || icg * g != c || oc % g != 0 {
            bail!("Conv weight {:?} does not fit input {xs:?} with {g} groups", w.shape);
        }
        let s = attr_list(node, "strides", &[1, 1], 2, 1)?;
        let d = attr_list(node, "dilations", &[1, 1], 2, 1)?;
        let (sh, sw, dh, dw) = (s[0], s[1], d[0], d[1]);
        let (pt, pl, pb_, pr) = pads(node, [ih, iw], [kh, kw], [sh, sw], [dh, dw])?;
        let eh = (kh - 1) * dh + 1;
        let ew = (kw - 1) * dw + 1;
        if ih + pt + pb_ < eh || iw + pl + pr < ew {
            bail!("Conv kernel larger than its padded input");
        }
        let oh = (ih + pt + pb_ - eh) / sh + 1;
        let ow = (iw + pl + pr - ew) / sw + 1;
        let bias = b.map(|b| b.as_f32()).unwrap_or_else(|| vec![0.0; oc]);
        if bias.len() != oc {
            bail!("Conv bias has {} values for {oc} channels", bias.len());
        }
        let y = self.new_value(vec![n, oc, oh, ow]);
        let geo = kernels::ConvGeometry { n, c, ih, iw, oc, oh, ow, g, kh, kw, sh, sw, dh, dw, pt, pl };
        let wb = self.param(w.as_f32());
        let bb = self.param(bias);
        let depthwise = g == c && oc == c;
        let k = match (self.opts.conv, depthwise) {
            (ConvImpl::Naive, _) => kernels::conv_naive(y, x, wb, bb, &geo),
            (ConvImpl::Fast, true) => kernels::depthwise_tiled(y, x, wb, bb, &geo, self.opts.workgroup_bytes.max(4096)),
            (ConvImpl::Fast, false)
                if self.opts.pointwise_gemm.unwrap_or(true) && kernels::is_pointwise(&geo) && n <= 65535 && oc.div_ceil(64) <= 65535 =>
            {
                kernels::conv1x1_gemm(y, x, wb, bb, &geo)
            }
            (ConvImpl::Fast, false) => kernels::conv_dense(y, x, wb, bb, &geo),
        };
        self.push(k);
        Ok(y)
    }

    fn conv_transpose(&mut self, node: &pb::NodeProto, x: usize, w: &HostTensor, b: Option<&HostTensor>) -> Result<usize> {
        let xs = self.shape(x).to_vec();
        if xs.len() != 4 || w.shape.len() != 4 {
            bail!("only 2-D transposed convolutions run on the GPU");
        }
        let (n, c, ih, iw) = (xs[0], xs[1], xs[2], xs[3]);
        let g = attr_i(node, "group").unwrap_or(1).clamp(1, 1 << 20) as usize;
        if w.shape[0] != c || c % g != 0 {
            bail!("ConvTranspose weight {:?} does not fit input {xs:?}", w.shape);
        }
        let (ocg, kh, kw) = (w.shape[1], w.shape[2], w.shape[3]);
        let oc = ocg * g;
        let s = attr_list(node, "strides", &[1, 1], 2, 1)?;
        let d = attr_list(node, "dilations", &[1, 1], 2, 1)?;
        let (sh, sw, dh, dw) = (s[0], s[1], d[0], d[1]);
        let op = attr_list(node, "output_padding", &[0, 0], 2, 0)?;
        let p = attr_list(node, "pads", &[0, 0, 0, 0], 4, 0)?;
        if attr_is(node, "output_shape").is_some() || attr_s(node, "auto_pad").is_some_and(|a| a != "NOTSET") {
            bail!("ConvTranspose with output_shape or auto_pad is not supported on the GPU");
        }
        if ih == 0 || iw == 0 || kh == 0 || kw == 0 {
            bail!("ConvTranspose of an empty tensor or kernel");
        }
        let full_h = sh * (ih - 1) + op[0] + (kh - 1) * dh + 1;
        let full_w = sw * (iw - 1) + op[1] + (kw - 1) * dw + 1;
        let (pt, pl, pb_, pr) = (p[0], p[1], p[2], p[3]);
        if full_h < pt + pb_ + 1 || full_w < pl + pr + 1 {
            bail!("ConvTranspose pads larger than its output");
        }
        let (oh, ow) = (full_h - pt - pb_, full_w - pl - pr);
        let bias = b.map(|b| b.as_f32()).unwrap_or_else(|| vec![0.0; oc]);
        if bias.len() != oc {
            bail!("ConvTranspose bias has {} values for {oc} channels", bias.len());
        }
        let y = self.new_value(vec![n, oc, oh, ow]);
        let geo = kernels::ConvGeometry { n, c, ih, iw, oc, oh, ow, g, kh, kw, sh, sw, dh, dw, pt, pl };
        let wb = self.param(w.as_f32());
        let bb = self.param(bias);
        self.push(kernels::conv_transpose(y, x, wb, bb, &geo));
        Ok(y)
    }

    fn pool(&mut self, node: &pb::NodeProto, x: usize) -> Result<usize> {
        let xs = self.shape(x).to_vec();
        if xs.len() != 4 {
            bail!("only 2-D pooling runs on the GPU");
        }
        let (ih, iw) = (xs[2], xs[3]);
        let k = attr_list(node, "kernel_shape", &[], 2, 1)?;
        let (kh, kw) = (k[0], k[1]);
        let s = attr_list(node, "strides", &[1, 1], 2, 1)?;
        let d = attr_list(node, "dilations", &[1, 1], 2, 1)?;
        let (sh, sw, dh, dw) = (s[0], s[1], d[0], d[1]);
        let (pt, pl, pb_, pr) = pads(node, [ih, iw], [kh, kw], [sh, sw], [dh, dw])?;
        let ceil = attr_i(node, "ceil_mode").unwrap_or(0) != 0;
        let out_len = |i: usize, p0: usize, p1: usize, k: usize, s: usize, d: usize| -> Result<usize> {
            let e = (k - 1) * d + 1;
            if i + p0 + p1 < e {
                bail!("pooling window larger than its padded input");
            }
            let span = i + p0 + p1 - e;
            let mut o = if ceil { span.div_ceil(s) + 1 } else { span / s + 1 };
            // A window may not start inside the trailing padding only.
            if ceil && (o - 1) * s >= i + p0 {
                o -= 1;
            }
            Ok(o)
        };
        let oh = out_len(ih, pt, pb_, kh, sh, dh)?;
        let ow = out_len(iw, pl, pr, kw, sw, dw)?;
        let max = node.op_type == "MaxPool";
        let count_pad = attr_i(node, "count_include_pad").unwrap_or(0) != 0;
        let y = self.new_value(vec![xs[0], xs[1], oh, ow]);
        let geo = kernels::ConvGeometry { n: xs[0], c: xs[1], ih, iw, oc: xs[1], oh, ow, g: 1, kh, kw, sh, sw, dh, dw, pt, pl };
        self.push(kernels::pool(y, x, &geo, max, count_pad, pb_, pr));
        Ok(y)
    }

    fn resize(&mut self, node: &pb::NodeProto, x: usize) -> Result<Option<usize>> {
        let xs = self.shape(x).to_vec();
        let rank = xs.len();
        let mode = attr_s(node, "mode").unwrap_or_else(|| "nearest".into());
        let coord = attr_s(node, "coordinate_transformation_mode").unwrap_or_else(|| {
            if node.op_type == "Upsample" || self.opset < 11 { "asymmetric".into() } else { "half_pixel".into() }
        });
        let nearest_mode = attr_s(node, "nearest_mode").unwrap_or_else(|| {
            if node.op_type == "Upsample" || self.opset < 11 { "floor".into() } else { "round_prefer_floor".into() }
        });
        let (scales_idx, sizes_idx) = if node.op_type == "Upsample" || self.opset < 11 { (1, usize::MAX) } else { (2, 3) };
        let has = |i: usize| node.input.get(i).is_some_and(|n| !n.is_empty());
        let (out, scales): (Vec<usize>, Vec<f32>) = if has(sizes_idx) {
            let Some(t) = self.const_input(node, sizes_idx) else { return Ok(None) };
            let sizes: Vec<usize> = t.as_i64().iter().map(|&v| v.max(0) as usize).collect();
            if sizes.len() != rank {
                return Ok(None);
            }
            let scales = sizes.iter().zip(&xs).map(|(&o, &i)| o as f32 / i as f32).collect();
            (sizes, scales)
        } else if has(scales_idx) {
            let Some(t) = self.const_input(node, scales_idx) else { return Ok(None) };
            let sc = t.as_f32();
            if sc.len() != rank {
                return Ok(None);
            }
            (xs.iter().zip(&sc).map(|(&i, &s)| (i as f32 * s).floor() as usize).collect(), sc)
        } else if let Some(sc) = attr(node, "scales").map(|a| a.floats.clone()) {
            (xs.iter().zip(&sc).map(|(&i, &s)| (i as f32 * s).floor() as usize).collect(), sc)
        } else {
            return Ok(None);
        };
        let mode = match mode.as_str() {
            "nearest" => 0,
            "linear" | "bilinear" => 1,
            _ => return Ok(None),
        };
        let coord = match coord.as_str() {
            "half_pixel" => 0,
            "align_corners" => 1,
            "asymmetric" => 2,
            "pytorch_half_pixel" => 3,
            "tf_half_pixel_for_nn" => 4,
            _ => return Ok(None),
        };
        let nearest = match nearest_mode.as_str() {
            "round_prefer_floor" => 0,
            "round_prefer_ceil" => 1,
            "floor" => 2,
            "ceil" => 3,
            _ => return Ok(None),
        };
        let resized: Vec<usize> = (0..rank).filter(|&i| out[i] != xs[i] || (scales[i] - 1.0).abs() > 1e-6).collect();
        let h = match resized.as_slice() {
            [] => return Ok(Some(self.view(x, out))),
            [a] if *a + 1 < rank => *a,
            [a] => *a - 1,
            [a, b] if *b == *a + 1 => *a,
            _ => return Ok(None),
        };
        if h + 1 >= rank {
            return Ok(None);
        }
        let outer: usize = xs[..h].iter().product();
        let inner: usize = xs[h + 2..].iter().product();
        let y = self.new_value(out.clone());
        self.push(kernels::resize(
            y,
            x,
            [outer, xs[h], xs[h + 1], inner],
            [out[h], out[h + 1]],
            [scales[h], scales[h + 1]],
            mode,
            coord,
            nearest,
        ));
        Ok(Some(y))
    }

    /// Fuses an element-wise activation into the kernel producing its input when nothing else
    /// reads that intermediate (conv + ReLU/Clip/Sigmoid become one pass).
    fn fuse_activations(&mut self, pinned: &HashSet<usize>) {
        let mut producer: HashMap<usize, usize> = HashMap::new();
        let mut removed = vec![false; self.kernels.len()];
        for i in 0..self.kernels.len() {
            let k = &self.kernels[i];
            if k.shader == Shader::Unary {
                if let (Binding::Value(out), Binding::Value(inp)) = (k.bindings[0], k.bindings[1]) {
                    if let Some(&p) = producer.get(&inp) {
                        let storage = self.values[inp].storage;
                        let shape_ok = self.values[inp].shape.iter().product::<usize>() == self.values[out].shape.iter().product::<usize>();
                        if self.uses[inp] == 1 && !pinned.contains(&storage) && shape_ok && self.kernels[p].fusable_act() {
                            let act = self.kernels[i].act();
                            self.kernels[p].set_act(act);
                            self.kernels[p].bindings[0] = Binding::Value(out);
                            self.kernels[p].label.push_str(&format!("+{}", act.name()));
                            removed[i] = true;
                            producer.insert(out, p);
                            continue;
                        }
                    }
                }
            }
            if let Binding::Value(out) = self.kernels[i].bindings[0] {
                producer.insert(out, i);
            }
        }
        let mut i = 0;
        self.kernels.retain(|_| {
            i += 1;
            !removed[i - 1]
        });
    }

    fn build_tail(&mut self, model: &pb::ModelProto, outputs: Vec<pb::ValueInfoProto>, pinned: &mut HashSet<usize>) -> Result<Tail> {
        let produced: HashSet<&str> = self.tail_nodes.iter().flat_map(|n| n.output.iter().map(|s| s.as_str())).collect();
        let mut inputs = vec![];
        let mut input_infos = vec![];
        let mut initializers = vec![];
        let mut seen = HashSet::new();
        for n in &self.tail_nodes {
            for name in &n.input {
                if name.is_empty() || produced.contains(name.as_str()) || !seen.insert(name.clone()) {
                    continue;
                }
                match self.vals.get(name) {
                    Some(Val::Gpu(v)) => {
                        let v = *v;
                        pinned.insert(self.values[v].storage);
                        input_infos.push(float_info(name, &self.values[v].shape));
                        inputs.push((name.clone(), v));
                    }
                    Some(Val::Const(t)) => initializers.push(t.to_proto(name)),
                    _ => bail!("tail input '{name}' has no value"),
                }
            }
        }
        for (_, v) in &inputs {
            self.uses[*v] += 1;
        }
        let onnx = pb::ModelProto {
            ir_version: model.ir_version.max(7),
            opset_import: model.opset_import.clone(),
            producer_name: "edgesight gpu planner (cpu tail)".into(),
            graph: Some(pb::GraphProto {
                node: self.tail_nodes.clone(),
                name: "cpu_tail".into(),
                initializer: initializers,
                input: input_infos,
                output: outputs,
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(Tail { onnx: prost::Message::encode_to_vec(&onnx), inputs, ops: self.tail_ops.clone() })
    }
}

fn domain_is_onnx(node: &pb::NodeProto) -> bool {
    node.domain.is_empty() || node.domain == "ai.onnx"
}

fn contiguous(shape: &[usize]) -> Vec<i64> {
    host::strides(shape).iter().map(|&s| s as i64).collect()
}

fn float_info(name: &str, shape: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|&d| Dimension { denotation: String::new(), value: Some(Value::DimValue(d as i64)) })
                        .collect(),
                }),
            })),
        }),
        doc_string: String::new(),
    }
}

/// Explicit (top, left, bottom, right) padding of a 2-D window op, resolving auto_pad.
fn pads(node: &pb::NodeProto, input: [usize; 2], k: [usize; 2], s: [usize; 2], d: [usize; 2]) -> Result<(usize, usize, usize, usize)> {
    let auto = attr_s(node, "auto_pad").unwrap_or_else(|| "NOTSET".into());
    match auto.as_str() {
        "NOTSET" | "" => {
            let p = attr_list(node, "pads", &[0, 0, 0, 0], 4, 0)?;
            Ok((p[0], p[1], p[2], p[3]))
        }
        "VALID" => Ok((0, 0, 0, 0)),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut begin = [0; 2];
            let mut end = [0; 2];
            for a in 0..2 {
                let out = input[a].div_ceil(s[a]);
                let need = ((out - 1) * s[a] + (k[a] - 1) * d[a] + 1).saturating_sub(input[a]);
                let small = need / 2;
                if auto == "SAME_UPPER" {
                    begin[a] = small;
                    end[a] = need - small;
                } else {
                    begin[a] = need - small;
                    end[a] = small;
                }
            }
            Ok((begin[0], begin[1], end[0], end[1]))
        }
        other => bail!("unsupported auto_pad {other}"),
    }
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
