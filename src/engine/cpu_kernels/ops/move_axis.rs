//! `EdgesightMoveAxis`: one axis of an f32 tensor moved, run by `move_axis`, and the rule that
//! swaps it in for tract's AxisOp::Move.

use super::one_f32_input;
use crate::engine::cpu_kernels::move_axis;
use crate::engine::cpu_kernels::rules::{Replacement, Rule, RuleContext};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::change_axes::AxisOp;

/// Moves of a real axis in f32 tensors of 32K elements and more -> `EdgesightMoveAxis`.
pub const REPLACE: Rule = Rule { name: "move-axis", matcher: replace, compact_after: false };

fn replace(_: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(&AxisOp::Move(from, to)) = node.op_as::<AxisOp>() else { return Ok(None) };
    let fact = model.outlet_fact(node.inputs[0])?;
    if let (Some(shape), true) = (fact.shape.as_concrete(), fact.datum_type == f32::datum_type()) {
        // Large tensors only, and a real move (not one of size-1 axes).
        let moved = shape.iter().enumerate().filter(|(a, d)| **d > 1 && (from.min(to)..=from.max(to)).contains(a)).count() > 1;
        if from != to && from.max(to) < shape.len() && moved && shape.iter().product::<usize>() >= 1 << 15 {
            let op = EdgesightMoveAxis { input_shape: shape.into(), from, to };
            let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
            return Ok(Some(Replacement { patch, tally: |c| c.transposes += 1 }));
        }
    }
    Ok(None)
}

/// One axis of an f32 tensor moved (tract's `AxisOp::Move`: the NHWC inputs of MoveNet and
/// selfie to NCHW, MoveNet's heads back): a strided copy by output rows over the worker pool.
/// tract 0.23.9 copies it on one thread at 1.6 ns per element (0.3 ms for selfie's input).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgesightMoveAxis {
    pub input_shape: TVec<usize>,
    pub from: usize,
    pub to: usize,
}

impl EdgesightMoveAxis {
    /// Input axis of each output axis.
    fn perm(&self) -> TVec<usize> {
        let mut p: TVec<usize> = (0..self.input_shape.len()).filter(|a| *a != self.from).collect();
        p.insert(self.to, self.from);
        p
    }

    fn output_shape(&self) -> TVec<usize> {
        self.perm().iter().map(|a| self.input_shape[*a]).collect()
    }
}

impl Op for EdgesightMoveAxis {
    fn name(&self) -> StaticName {
        "EdgesightMoveAxis".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} axis {} to {}", self.input_shape, self.from, self.to)])
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightMoveAxis {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightMoveAxis input is not contiguous")?;
        let (perm, out_shape) = (self.perm(), self.output_shape());
        out_shape.last().context("EdgesightMoveAxis on a scalar")?;
        // SAFETY: every output element is written (rows cover the whole output).
        let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<f32>(&out_shape)? };
        move_axis::move_axis(input, &self.input_shape, &perm, &out_shape, t.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightMoveAxis {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        one_f32_input(inputs, &self.input_shape)?;
        Ok(tvec!(f32::fact(self.output_shape())))
    }

    as_op!();
}
