//! `EdgesightConv`: a convolution run by `conv::PackedConv`, the rule that swaps it in for
//! tract's, and the rules that fuse a following clamp or hard swish into it.

use crate::engine::cpu_kernels::choice::KernelChoice;
use crate::engine::cpu_kernels::conv::{Clamp, ConvSpec, Isa, PackedConv};
use crate::engine::cpu_kernels::epilogue;
use crate::engine::cpu_kernels::pool::parallel;
use crate::engine::cpu_kernels::rules::{Replacement, Rule, RuleContext};
use super::conv_operands;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// A convolution on NCHW f32 input with constant weights, run by `conv::PackedConv`. Inputs:
/// the data and the bias (c_out values or one; a graph input before decluttering folds it).
#[derive(Debug, Clone, PartialEq)]
pub struct EdgesightConv {
    pub conv: PackedConv,
    /// Input (N, C, H, W), fixed at planning; `batch_axis` false for CHW tensors.
    pub input_shape: [usize; 4],
    pub output_shape: [usize; 4],
    pub batch_axis: bool,
    /// Hard swish fused after the clamp: y = (x * k) * min(max(x + 3, 0), 6), in the ONNX
    /// graph's order of operations (k = 1/6 as the graph stores it).
    pub hard_swish: Option<f32>,
}

impl EdgesightConv {
    fn tensor_shape(&self, s: [usize; 4]) -> TVec<usize> {
        if self.batch_axis { s.into() } else { s[1..].into() }
    }
}

// Weights are compared bitwise-equal or not; NaN weights only make two ops unequal.
impl Eq for EdgesightConv {}

impl Op for EdgesightConv {
    fn name(&self) -> StaticName {
        "EdgesightConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let s = &self.conv.spec;
        Ok(vec![format!(
            "in {:?} k {:?} s {:?} d {:?} pad {:?}/{:?} group {} clamp {:?} hard swish {:?}",
            self.input_shape, s.kernel, s.stride, s.dilation, s.pad_before, s.pad_after, s.group, self.conv.clamp, self.hard_swish
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightConv input is not contiguous")?;
        let [_, c, h, w] = self.input_shape;
        let [_, co, oh, ow] = self.output_shape;
        let bias: Vec<f32> = inputs[1].to_plain_array_view::<f32>()?.iter().copied().collect();
        let bias = match bias.len() {
            1 => vec![bias[0]; co],
            l if l == co => bias,
            l => bail!("EdgesightConv has {co} output channels, bias has {l} values"),
        };
        // SAFETY: the convolution writes every output element.
        let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<f32>(&self.tensor_shape(self.output_shape))? };
        {
            let mut view = t.try_as_plain_ram_mut()?;
            let out = view.as_slice_mut::<f32>()?;
            for (img, o) in input.chunks(c * h * w).zip(out.chunks_mut(co * oh * ow)) {
                self.conv.run(img, h, w, &bias, o, &parallel);
                if let Some(k) = self.hard_swish {
                    epilogue::hard_swish(o, k);
                }
            }
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2 && inputs[0].datum_type == f32::datum_type() && inputs[1].datum_type == f32::datum_type());
        ensure!(
            inputs[0].shape.as_concrete() == Some(&self.tensor_shape(self.input_shape)[..]),
            "EdgesightConv planned for {:?}",
            self.input_shape
        );
        Ok(tvec!(f32::fact(self.tensor_shape(self.output_shape))))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let macs = self.input_shape[0] * self.conv.macs(self.input_shape[2], self.input_shape[3]);
        Ok(tvec!((Cost::FMA(f32::datum_type()), macs.into())))
    }

    as_op!();
}

/// f32 NCHW 2D convolutions with constant weights -> `EdgesightConv` (inputs: data, bias).
pub const REPLACE: Rule = Rule { name: "conv", matcher: replace, compact_after: false };

fn replace(cx: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(conv) = node.op_as::<Conv>() else { return Ok(None) };
    let Some(op) = edgesight_conv(model, node, conv, cx.isa, cx.choice)? else {
        if cx.choice.debug_patch {
            let facts: Vec<String> = node.inputs.iter().map(|i| model.outlet_fact(*i).map(|f| format!("{f:?} konst={}", f.konst.is_some())).unwrap_or_default()).collect();
            eprintln!("not patched: {} {:?} {:?} {:?}", node.name, conv.pool_spec, conv.kernel_fmt, facts);
        }
        return Ok(None);
    };
    let patch = TypedModelPatch::replace_single_op(model, node, &[node.inputs[0], node.inputs[2]], op)?;
    Ok(Some(Replacement { patch, tally: |c| c.convs += 1 }))
}

/// conv -> max(x, c) -> min(x, c) (ReLU, ReLU6, Clip) -> the clamp of the `EdgesightConv`, when
/// the conv output has no other reader.
pub const FUSE_CLAMP: Rule = Rule { name: "conv-clamp", matcher: fuse_clamp, compact_after: false };

fn fuse_clamp(_: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(op) = node.op_as::<EdgesightConv>() else { return Ok(None) };
    let Some((kind, value)) = clamp_after(model, node)? else { return Ok(None) };
    let mut op = op.clone();
    tighten(&mut op.conv.clamp, kind, value);
    let patch = TypedModelPatch::fuse_with_next(model, node, op)?;
    Ok(Some(Replacement { patch, tally: |c| c.fused_clamps += 1 }))
}

/// The clamp that `node`'s only reader applies (`clamp_of`), when `node`'s output is not also a
/// model output.
pub(super) fn clamp_after(model: &TypedModel, node: &TypedNode) -> TractResult<Option<(&'static str, f32)>> {
    let Some(succ) = model.single_succ(node.id)? else { return Ok(None) };
    if model.outputs.iter().any(|o| o.node == node.id) {
        return Ok(None);
    }
    clamp_of(model, succ, node.id)
}

/// `clamp` followed by max(x, value) ("Max") or min(x, value).
pub(super) fn tighten(clamp: &mut Clamp, kind: &str, value: f32) {
    match kind {
        "Max" => clamp.lo = clamp.lo.max(value),
        _ => clamp.hi = clamp.hi.min(value),
    }
}

/// conv -> hard swish (`hard_swish_after`) -> the hard swish of the `EdgesightConv`.
pub const FUSE_HARD_SWISH: Rule = Rule { name: "conv-hard-swish", matcher: fuse_hard_swish, compact_after: true };

fn fuse_hard_swish(_: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some((last, k)) = hard_swish_after(model, node)? else { return Ok(None) };
    let mut op = node.op_as::<EdgesightConv>().expect("matched an EdgesightConv").clone();
    op.hard_swish = Some(k);
    let mut patch = TypedModelPatch::default();
    let inputs = patch.taps(model, &node.inputs)?;
    let out = patch.wire_node(format!("{}.hard_swish", node.name), op, &inputs)?;
    patch.shunt_outside(model, last.into(), out[0])?;
    Ok(Some(Replacement { patch, tally: |c| c.fused_hard_swish += 1 }))
}

/// An `EdgesightConv` for an f32 NCHW (or CHW) 2D convolution with constant OIHW weights and a
/// bias of c_out values or one, planned for its input size.
fn edgesight_conv(model: &TypedModel, node: &TypedNode, conv: &Conv, isa: Isa, choice: &KernelChoice) -> TractResult<Option<EdgesightConv>> {
    let ps = &conv.pool_spec;
    if conv.q_params.is_some()
        || !matches!(ps.data_format, DataFormat::NCHW | DataFormat::CHW)
        || conv.kernel_fmt != KernelFormat::OIHW
        || ps.kernel_shape.len() != 2
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let Some((kernel, batch_axis, [n, c, h, w])) = conv_operands(model, node, ps.data_format)? else { return Ok(None) };
    let bias = model.outlet_fact(node.inputs[2])?;
    let (kh, kw) = (ps.kernel_shape[0], ps.kernel_shape[1]);
    let group = conv.group;
    let c_out = ps.output_channels;
    if c != ps.input_channels || group == 0 || c % group != 0 || c_out % group != 0 {
        return Ok(None);
    }
    if kernel.shape() != [c_out, c / group, kh, kw] {
        return Ok(None);
    }
    let strides: TVec<usize> = ps.strides.clone().unwrap_or_else(|| tvec!(1, 1));
    let dilations: TVec<usize> = ps.dilations.clone().unwrap_or_else(|| tvec!(1, 1));
    let padded = ps.padding.compute(&[h, w], &[kh, kw], &dilations, &strides);
    if !matches!(bias.shape.as_concrete(), Some(s) if s.iter().product::<usize>() == c_out || s.iter().product::<usize>() == 1) {
        return Ok(None);
    }
    let spec = ConvSpec {
        c_in: c,
        c_out,
        group,
        kernel: [kh, kw],
        stride: [strides[0], strides[1]],
        dilation: [dilations[0], dilations[1]],
        pad_before: [padded[0].pad_before, padded[1].pad_before],
        pad_after: [padded[0].pad_after, padded[1].pad_after],
    };
    let Some((oh, ow)) = spec.output_hw(h, w) else { return Ok(None) };
    if (oh, ow) != (padded[0].convoluted, padded[1].convoluted) {
        return Ok(None);
    }
    let kernel: Vec<f32> = kernel.to_plain_array_view::<f32>()?.iter().copied().collect();
    let conv = PackedConv::plan(spec, &kernel, Clamp::NONE, isa, h, w, choice);
    Ok(Some(EdgesightConv { conv, input_shape: [n, c, h, w], output_shape: [n, c_out, oh, ow], batch_axis, hard_swish: None }))
}

/// A hard swish as the selfie model's ONNX spells it after a convolution x:
/// Mul(Mul(x, k), Min(Max(Add(x, 3), 0), 6)), with the convolution's output read by nothing
/// else. Returns (the last Mul, k) for the convolution `node`.
fn hard_swish_after(model: &TypedModel, node: &TypedNode) -> TractResult<Option<(usize, f32)>> {
    let id = node.id;
    let Some(op) = node.op_as::<EdgesightConv>() else { return Ok(None) };
    if op.hard_swish.is_some() || model.outputs.iter().any(|o| o.node == id) || node.outputs.len() != 1 {
        return Ok(None);
    }
    let readers = &node.outputs[0].successors;
    if readers.len() != 2 {
        return Ok(None);
    }
    let [a, b] = [model.node(readers[0].node), model.node(readers[1].node)];
    let (add, scale) = if bin_name(a) == Some("Add") { (a, b) } else { (b, a) };
    let step = |n: &TypedNode, from: usize, name: &str, value: f32| -> TractResult<bool> {
        Ok(bin_name(n) == Some(name) && const_operand(model, n, from)? == Some(value))
    };
    if !step(add, id, "Add", 3.0)? || bin_name(scale) != Some("Mul") {
        return Ok(None);
    }
    let Some(k) = const_operand(model, scale, id)? else { return Ok(None) };
    let Some(max) = model.single_succ(add.id)? else { return Ok(None) };
    if !step(max, add.id, "Max", 0.0)? {
        return Ok(None);
    }
    let Some(min) = model.single_succ(max.id)? else { return Ok(None) };
    if !step(min, max.id, "Min", 6.0)? {
        return Ok(None);
    }
    // (x * k) * clamped: the last Mul reads both branches and nothing else reads them.
    let Some(last) = model.single_succ(min.id)? else { return Ok(None) };
    let ins: Vec<usize> = last.inputs.iter().map(|i| i.node).collect();
    if bin_name(last) != Some("Mul") || !(ins == [scale.id, min.id] || ins == [min.id, scale.id]) {
        return Ok(None);
    }
    if model.single_succ(scale.id)?.map(|n| n.id) != Some(last.id) {
        return Ok(None);
    }
    let shape = &model.outlet_fact(OutletId::new(id, 0))?.shape;
    if [add, max, min, scale, last].iter().any(|n| model.outlet_fact(OutletId::new(n.id, 0)).map(|f| &f.shape != shape).unwrap_or(true)) {
        return Ok(None);
    }
    Ok(Some((last.id, k)))
}

pub(super) fn bin_name(node: &TypedNode) -> Option<&'static str> {
    let bin = node.op_as::<TypedBinOp>()?;
    ["Add", "Max", "Min", "Mul"].into_iter().find(|n| bin.0.name() == *n)
}

/// The uniform f32 constant that `node` (a binary op) combines with `from`'s output.
fn const_operand(model: &TypedModel, node: &TypedNode, from: usize) -> TractResult<Option<f32>> {
    if node.inputs.len() != 2 {
        return Ok(None);
    }
    let other = match (node.inputs[0].node == from, node.inputs[1].node == from) {
        (true, false) => node.inputs[1],
        (false, true) => node.inputs[0],
        _ => return Ok(None),
    };
    let Some(k) = &model.outlet_fact(other)?.konst else { return Ok(None) };
    if k.datum_type() != f32::datum_type() || k.len() == 0 {
        return Ok(None);
    }
    let vals: Vec<f32> = k.to_plain_array_view::<f32>()?.iter().copied().collect();
    // (A NaN compares unequal, so it never counts as uniform.)
    Ok(vals.iter().all(|v| *v == vals[0]).then_some(vals[0]))
}

/// `succ` as ("Max" | "Min", c) when it is max/min of `from`'s output and a uniform constant
/// and keeps its shape.
fn clamp_of(model: &TypedModel, succ: &TypedNode, from: usize) -> TractResult<Option<(&'static str, f32)>> {
    let Some(kind @ ("Max" | "Min")) = bin_name(succ) else { return Ok(None) };
    let Some(value) = const_operand(model, succ, from)? else { return Ok(None) };
    if model.outlet_fact(succ.id.into())?.shape != model.outlet_fact(OutletId::new(from, 0))?.shape {
        return Ok(None);
    }
    Ok(Some((kind, value)))
}
