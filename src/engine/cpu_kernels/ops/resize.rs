//! `EdgesightResize`: tract's core Resize run by `resize::resize_planes`, and the rule that
//! swaps it in.

use super::one_f32_input;
use crate::engine::cpu_kernels::resize;
use crate::engine::cpu_kernels::rules::{Replacement, Rule, RuleContext};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::resize::Resize as CoreResize;

/// f32 resizes of the last two axes -> `EdgesightResize`.
pub const REPLACE: Rule = Rule { name: "resize", matcher: replace, compact_after: false };

fn replace(_: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(op) = node.op_as::<CoreResize>() else { return Ok(None) };
    let Some(op) = edgesight_resize(model, node, op)? else { return Ok(None) };
    let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs[..1], op)?;
    Ok(Some(Replacement { patch, tally: |c| c.resizes += 1 }))
}

/// tract's core Resize on the last two axes of an f32 tensor, run by `resize::resize_planes`.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgesightResize {
    pub input_shape: TVec<usize>,
    pub output_shape: TVec<usize>,
    pub rows: resize::AxisTaps,
    pub cols: resize::AxisTaps,
}

impl Eq for EdgesightResize {}

impl Op for EdgesightResize {
    fn name(&self) -> StaticName {
        "EdgesightResize".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} -> {:?}", self.input_shape, self.output_shape)])
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightResize {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightResize input is not contiguous")?;
        let r = self.input_shape.len();
        let (h, w) = (self.input_shape[r - 2], self.input_shape[r - 1]);
        let planes = self.input_shape[..r - 2].iter().product();
        // SAFETY: the resize writes every output element.
        let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<f32>(&self.output_shape)? };
        resize::resize_planes(input, planes, h, w, &self.rows, &self.cols, t.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightResize {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        one_f32_input(inputs, &self.input_shape)?;
        Ok(tvec!(f32::fact(&self.output_shape)))
    }

    as_op!();
}

/// An `EdgesightResize` for an f32 Resize of the last two axes only, with no extrapolated taps.
fn edgesight_resize(model: &TypedModel, node: &TypedNode, op: &CoreResize) -> TractResult<Option<EdgesightResize>> {
    let input = model.outlet_fact(node.inputs[0])?;
    let (Some(shape), Some(out_shape)) =
        (input.shape.as_concrete(), model.outlet_fact(node.id.into())?.shape.as_concrete())
    else {
        return Ok(None);
    };
    let rank = shape.len();
    if input.datum_type != f32::datum_type() || rank < 2 || out_shape.len() != rank {
        return Ok(None);
    }
    // The scales tract's eval would use: the scales input when it has one per axis, else the
    // size ratio.
    let scales_input = op.optional_scales_input.and_then(|ix| node.inputs.get(ix));
    let scales: Vec<f32> = match scales_input.map(|o| model.outlet_fact(*o)).transpose()? {
        Some(f) if f.shape.volume() == rank.to_dim() => {
            let Some(k) = &f.konst else { return Ok(None) };
            k.cast_to::<f32>()?.to_plain_array_view::<f32>()?.iter().copied().collect()
        }
        _ => out_shape.iter().zip(shape).map(|(o, i)| *o as f32 / *i as f32).collect(),
    };
    for axis in 0..rank - 2 {
        if shape[axis] != out_shape[axis] || scales[axis] != 1.0 {
            return Ok(None);
        }
    }
    let taps = |axis: usize| {
        let plan = op.plan_axis(scales[axis], shape[axis], out_shape[axis]);
        (!plan.extrapolated.contains(&true))
            .then_some(resize::AxisTaps { window: plan.window, indices: plan.indices, weights: plan.weights })
    };
    let (Some(rows), Some(cols)) = (taps(rank - 2), taps(rank - 1)) else { return Ok(None) };
    Ok(Some(EdgesightResize { input_shape: shape.into(), output_shape: out_shape.into(), rows, cols }))
}
