//! `EdgesightDeconv`: a transposed convolution run by `deconv::PackedDeconv`, and the rule that
//! swaps it in for tract's.

use crate::engine::cpu_kernels::choice::KernelChoice;
use crate::engine::cpu_kernels::deconv::{PackedDeconv, Tail};
use crate::engine::cpu_kernels::pool::parallel;
use crate::engine::cpu_kernels::rules::{Replacement, Rule, RuleContext};
use crate::engine::cpu_kernels::spec::{Clamp, Isa};
use super::conv::{bin_name, clamp_after, tighten};
use super::conv_operands;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Deconv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// f32 deconvolutions -> `EdgesightDeconv` (inputs: data, bias).
pub const REPLACE: Rule = Rule { name: "deconv", matcher: replace, compact_after: false };

fn replace(cx: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(op) = node.op_as::<Deconv>() else { return Ok(None) };
    let Some(op) = edgesight_deconv(model, node, op, cx.isa, cx.choice)? else { return Ok(None) };
    let patch = TypedModelPatch::replace_single_op(model, node, &[node.inputs[0], node.inputs[2]], op)?;
    Ok(Some(Replacement { patch, tally: |c| c.deconvs += 1 }))
}

/// deconv -> Add(other of the same shape) -> the addition in the deconvolution's output pass
/// (`deconv::Tail`), when the deconvolution's output has no other reader.
pub const FUSE_ADD: Rule = Rule { name: "deconv-add", matcher: fuse_add, compact_after: false };

fn fuse_add(_: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let id = node.id;
    // An addition after a fused clamp would run in the wrong order.
    let Some(op) = node.op_as::<EdgesightDeconv>().filter(|op| !op.add && op.clamp == Clamp::NONE) else { return Ok(None) };
    let Some(succ) = model.single_succ(id)? else { return Ok(None) };
    if model.outputs.iter().any(|o| o.node == id) || bin_name(succ) != Some("Add") || succ.inputs.len() != 2 {
        return Ok(None);
    }
    let other = match (succ.inputs[0].node == id, succ.inputs[1].node == id) {
        (true, false) => succ.inputs[1],
        (false, true) => succ.inputs[0],
        _ => return Ok(None),
    };
    let (mine, theirs, sum) = (model.outlet_fact(id.into())?, model.outlet_fact(other)?, model.outlet_fact(succ.id.into())?);
    if theirs.datum_type != f32::datum_type() || theirs.shape != mine.shape || sum.shape != mine.shape {
        return Ok(None);
    }
    let mut fused = op.clone();
    fused.add = true;
    let mut patch = TypedModelPatch::default();
    let inputs = patch.taps(model, &[node.inputs[0], node.inputs[1], other])?;
    let out = patch.wire_node(format!("{}.add", node.name), fused, &inputs)?;
    patch.shunt_outside(model, succ.id.into(), out[0])?;
    Ok(Some(Replacement { patch, tally: |c| c.fused_deconv_tails += 1 }))
}

/// deconv -> max(x, c) -> min(x, c) (ReLU, ReLU6, Clip) -> the clamp in the deconvolution's
/// output pass, when the deconvolution's output has no other reader.
pub const FUSE_CLAMP: Rule = Rule { name: "deconv-clamp", matcher: fuse_clamp, compact_after: false };

fn fuse_clamp(_: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(op) = node.op_as::<EdgesightDeconv>() else { return Ok(None) };
    let Some((kind, value)) = clamp_after(model, node)? else { return Ok(None) };
    let mut op = op.clone();
    tighten(&mut op.clamp, kind, value);
    let patch = TypedModelPatch::fuse_with_next(model, node, op)?;
    Ok(Some(Replacement { patch, tally: |c| c.fused_deconv_tails += 1 }))
}

/// A transposed convolution (group 1, constant weights) run by `deconv::PackedDeconv`. Inputs:
/// the data, the bias and, with `add`, an operand of the output's shape added to the output;
/// then `clamp`.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgesightDeconv {
    pub deconv: PackedDeconv,
    pub batch: usize,
    pub batch_axis: bool,
    /// A third input is added to the output (a fused Add).
    pub add: bool,
    /// A fused Max / Min against constants, after the addition.
    pub clamp: Clamp,
}

impl Eq for EdgesightDeconv {}

impl EdgesightDeconv {
    fn shape(&self, c: usize, hw: [usize; 2]) -> TVec<usize> {
        if self.batch_axis { tvec!(self.batch, c, hw[0], hw[1]) } else { tvec!(c, hw[0], hw[1]) }
    }
}

impl Op for EdgesightDeconv {
    fn name(&self) -> StaticName {
        "EdgesightDeconv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let d = &self.deconv;
        Ok(vec![format!("{} -> {} {:?} -> {:?} s {:?} add {} clamp {:?}", d.c_in, d.c_out, d.input_hw, d.output_hw, d.stride, self.add, self.clamp)])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightDeconv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let d = &self.deconv;
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightDeconv input is not contiguous")?;
        let bias: Vec<f32> = inputs[1].to_plain_array_view::<f32>()?.iter().copied().collect();
        let bias = match bias.len() {
            1 => vec![bias[0]; d.c_out],
            l if l == d.c_out => bias,
            l => bail!("EdgesightDeconv has {} output channels, bias has {l} values", d.c_out),
        };
        let plane_in = d.c_in * d.input_hw[0] * d.input_hw[1];
        let plane_out = d.c_out * d.output_hw[0] * d.output_hw[1];
        // SAFETY: every output element belongs to exactly one phase, and each phase's rows are
        // all written (the deconv tests start from NaN and check every element).
        let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<f32>(&self.shape(d.c_out, d.output_hw))? };
        {
            let mut view = t.try_as_plain_ram_mut()?;
            let out = view.as_slice_mut::<f32>()?;
            let add = if self.add { Some(inputs[2].to_plain_array_view::<f32>()?) } else { None };
            let add = match &add {
                Some(a) => Some(a.as_slice().context("EdgesightDeconv addend is not contiguous")?),
                None => None,
            };
            for (i, (img, o)) in input.chunks(plane_in).zip(out.chunks_mut(plane_out)).enumerate() {
                let tail = Tail { add: add.map(|a| &a[i * plane_out..][..plane_out]), clamp: self.clamp };
                d.run_with(img, &bias, &tail, o, &parallel);
            }
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightDeconv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let d = &self.deconv;
        ensure!(inputs.len() == 2 + self.add as usize && inputs.iter().all(|i| i.datum_type == f32::datum_type()));
        ensure!(inputs[0].shape.as_concrete() == Some(&self.shape(d.c_in, d.input_hw)[..]));
        if self.add {
            ensure!(inputs[2].shape.as_concrete() == Some(&self.shape(d.c_out, d.output_hw)[..]));
        }
        Ok(tvec!(f32::fact(self.shape(d.c_out, d.output_hw))))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!((Cost::FMA(f32::datum_type()), (self.batch * self.deconv.macs()).into())))
    }

    as_op!();
}

/// An `EdgesightDeconv` for a group-1 f32 NCHW (or CHW) 2D deconvolution with constant OIHW
/// weights, no dilation, explicit or no padding.
fn edgesight_deconv(model: &TypedModel, node: &TypedNode, op: &Deconv, isa: Isa, choice: &KernelChoice) -> TractResult<Option<EdgesightDeconv>> {
    let ps = &op.pool_spec;
    if op.group != 1
        || !matches!(ps.data_format, DataFormat::NCHW | DataFormat::CHW)
        || op.kernel_format != KernelFormat::OIHW
        || ps.kernel_shape.len() != 2
        || node.inputs.len() != 3
        || ps.dilations.as_ref().is_some_and(|d| d.iter().any(|d| *d != 1))
        || !matches!(ps.padding, PaddingSpec::Explicit(..) | PaddingSpec::Valid)
    {
        return Ok(None);
    }
    let Some((kernel, batch_axis, [n, c, h, w])) = conv_operands(model, node, ps.data_format)? else { return Ok(None) };
    let bias = model.outlet_fact(node.inputs[2])?;
    let (kh, kw) = (ps.kernel_shape[0], ps.kernel_shape[1]);
    let c_out = ps.output_channels;
    if c != ps.input_channels || kernel.shape() != [c_out, c, kh, kw] {
        return Ok(None);
    }
    let Some(out_shape) = model.outlet_fact(node.id.into())?.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
    let (oh, ow) = (out_shape[out_shape.len() - 2], out_shape[out_shape.len() - 1]);
    let strides: TVec<usize> = ps.strides.clone().unwrap_or_else(|| tvec!(1, 1));
    let padded = ps.padding.compute_for_deconv(&[h, w], &[kh, kw], &[1, 1], &strides, &op.adjustments)?;
    if [padded[0].deconvoluted, padded[1].deconvoluted] != [oh, ow] {
        return Ok(None);
    }
    if !matches!(bias.shape.as_concrete(), Some(s) if s.iter().product::<usize>() == c_out || s.iter().product::<usize>() == 1) {
        return Ok(None);
    }
    let kernel: Vec<f32> = kernel.to_plain_array_view::<f32>()?.iter().copied().collect();
    let deconv = PackedDeconv::new(
        c,
        c_out,
        [kh, kw],
        [strides[0], strides[1]],
        [padded[0].pad_before, padded[1].pad_before],
        [h, w],
        [oh, ow],
        &kernel,
        isa,
        choice,
    );
    Ok(Some(EdgesightDeconv { deconv, batch: n, batch_axis, add: false, clamp: Clamp::NONE }))
}
