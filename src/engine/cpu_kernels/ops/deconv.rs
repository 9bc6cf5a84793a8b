//! `EdgesightDeconv`: a transposed convolution run by `deconv::PackedDeconv`, and the rule that
//! swaps it in for tract's.

use crate::engine::cpu_kernels::choice::KernelChoice;
use crate::engine::cpu_kernels::deconv::PackedDeconv;
use crate::engine::cpu_kernels::pool::parallel;
use crate::engine::cpu_kernels::rules::{Replacement, Rule, RuleContext};
use crate::engine::cpu_kernels::spec::Isa;
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

/// A transposed convolution (group 1, constant weights) run by `deconv::PackedDeconv`. Inputs:
/// the data and the bias.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgesightDeconv {
    pub deconv: PackedDeconv,
    pub batch: usize,
    pub batch_axis: bool,
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
        Ok(vec![format!("{} -> {} {:?} -> {:?} s {:?}", d.c_in, d.c_out, d.input_hw, d.output_hw, d.stride)])
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
            for (img, o) in input.chunks(plane_in).zip(out.chunks_mut(plane_out)) {
                d.run(img, &bias, o, &parallel);
            }
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightDeconv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let d = &self.deconv;
        ensure!(inputs.len() == 2 && inputs[0].datum_type == f32::datum_type() && inputs[1].datum_type == f32::datum_type());
        ensure!(inputs[0].shape.as_concrete() == Some(&self.shape(d.c_in, d.input_hw)[..]));
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
    Ok(Some(EdgesightDeconv { deconv, batch: n, batch_axis }))
}
