//! `EdgesightPlaneMean`: averages of whole planes, run by `plane_mean`, and the rule that swaps
//! it in for tract's SumPool.

use super::one_f32_input;
use crate::engine::cpu_kernels::plane_mean;
use crate::engine::cpu_kernels::rules::{Replacement, Rule, RuleContext};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{PaddingSpec, SumPool};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// f32 NCHW average pools over whole planes without padding -> `EdgesightPlaneMean`.
pub const REPLACE: Rule = Rule { name: "plane-mean", matcher: replace, compact_after: false };

fn replace(_: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(op) = node.op_as::<SumPool>() else { return Ok(None) };
    let Some(op) = edgesight_plane_mean(model, node, op)? else { return Ok(None) };
    let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
    Ok(Some(Replacement { patch, tally: |c| c.reductions += 1 }))
}

/// Average over whole planes (an AveragePool whose kernel is the input's H x W, NCHW): the
/// selfie model's squeeze-and-excite pools. tract 0.23.9 sums them on one thread at 0.9 ns per
/// element (0.23 ms for 16 x 128 x 128); this sums 16 lanes at a time, planes split over the
/// worker pool. The order of the additions differs from tract's (float rounding only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgesightPlaneMean {
    pub input_shape: TVec<usize>,
}

impl EdgesightPlaneMean {
    /// N x C x 1 x 1.
    fn output_shape(&self) -> TVec<usize> {
        let mut s = self.input_shape.clone();
        s[2] = 1;
        s[3] = 1;
        s
    }
}

impl Op for EdgesightPlaneMean {
    fn name(&self) -> StaticName {
        "EdgesightPlaneMean".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.input_shape)])
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightPlaneMean {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightPlaneMean input is not contiguous")?;
        let plane = self.input_shape[2] * self.input_shape[3];
        let mut t = tract_onnx::prelude::Tensor::zero::<f32>(&self.output_shape())?;
        plane_mean::plane_means(input, plane, t.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightPlaneMean {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        one_f32_input(inputs, &self.input_shape)?;
        Ok(tvec!(f32::fact(self.output_shape())))
    }

    as_op!();
}

/// An `EdgesightPlaneMean` for an f32 NCHW SumPool that averages whole planes without padding.
fn edgesight_plane_mean(model: &TypedModel, node: &TypedNode, op: &SumPool) -> TractResult<Option<EdgesightPlaneMean>> {
    let fact = model.outlet_fact(node.inputs[0])?;
    let ps = &op.pool_spec;
    let Some(shape) = fact.shape.as_concrete() else { return Ok(None) };
    let no_padding = match &ps.padding {
        PaddingSpec::Valid => true,
        PaddingSpec::Explicit(a, b) | PaddingSpec::ExplicitOnnxPool(a, b, _) => a.iter().chain(b).all(|p| *p == 0),
        _ => false,
    };
    let whole = shape.len() == 4 && ps.kernel_shape[..] == shape[2..] && ps.dilations.as_ref().is_none_or(|d| d.iter().all(|v| *v == 1));
    if !op.normalize || ps.data_format != DataFormat::NCHW || fact.datum_type != f32::datum_type() || !no_padding || !whole {
        return Ok(None);
    }
    Ok(Some(EdgesightPlaneMean { input_shape: shape.into() }))
}
