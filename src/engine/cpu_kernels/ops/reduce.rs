//! `EdgesightReduce`: max or first arg-max over one strided axis, run by `reduce`, and the rule
//! that swaps it in for tract's Reduce.

use super::one_f32_input;
use crate::engine::cpu_kernels::reduce;
use crate::engine::cpu_kernels::rules::{Replacement, Rule, RuleContext};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};

/// f32 Max / ArgMax (first index) over one axis with more after it -> `EdgesightReduce`.
pub const REPLACE: Rule = Rule { name: "strided-reduce", matcher: replace, compact_after: false };

fn replace(_: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(op) = node.op_as::<Reduce>() else { return Ok(None) };
    let fact = model.outlet_fact(node.inputs[0])?;
    let reducer = match op.reducer {
        Reducer::Max => Some(StridedReducer::Max),
        Reducer::ArgMax(false) => Some(StridedReducer::ArgMax),
        _ => None,
    };
    if let (Some(reducer), [axis], Some(shape), true) =
        (reducer, &op.axes[..], fact.shape.as_concrete(), fact.datum_type == f32::datum_type())
    {
        // Only the strided case: tract's contiguous one is already vectorised.
        if *axis + 1 < shape.len() && shape[axis + 1..].iter().product::<usize>() > 1 {
            let op = EdgesightReduce { input_shape: shape.into(), axis: *axis, reducer };
            let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs[..1], op)?;
            return Ok(Some(Replacement { patch, tally: |c| c.reductions += 1 }));
        }
    }
    Ok(None)
}

/// Max or first arg-max over one strided axis of an f32 tensor. tract 0.23.9 folds these
/// element by element through ndarray views: 16 ms for MoveNet's max over 64x64x6x17 ->
/// 64x64x1x17, 0.64 ms for its arg-max over 4096x102 -> 1x102. Same folds as tract's, so the
/// same results, NaNs included (a NaN never wins).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgesightReduce {
    pub input_shape: TVec<usize>,
    pub axis: usize,
    pub reducer: StridedReducer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StridedReducer {
    Max,
    /// The first index of the maximum (ONNX ArgMax with select_last_index = 0), as i64.
    ArgMax,
}

impl EdgesightReduce {
    fn output_shape(&self) -> TVec<usize> {
        let mut s = self.input_shape.clone();
        s[self.axis] = 1;
        s
    }
}

impl Op for EdgesightReduce {
    fn name(&self) -> StaticName {
        format!("EdgesightReduce{:?}", self.reducer).into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} axis {}", self.input_shape, self.axis)])
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightReduce {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightReduce input is not contiguous")?;
        let len = self.input_shape[self.axis];
        let inner: usize = self.input_shape[self.axis + 1..].iter().product();
        let t = match self.reducer {
            StridedReducer::Max => {
                let mut t = tract_onnx::prelude::Tensor::zero::<f32>(&self.output_shape())?;
                reduce::strided_max(input, len, inner, t.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
                t
            }
            StridedReducer::ArgMax => {
                let mut t = tract_onnx::prelude::Tensor::zero::<i64>(&self.output_shape())?;
                ensure!(len <= u32::MAX as usize);
                reduce::strided_argmax(input, len, inner, t.try_as_plain_ram_mut()?.as_slice_mut::<i64>()?);
                t
            }
        };
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightReduce {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        one_f32_input(inputs, &self.input_shape)?;
        Ok(tvec!(match self.reducer {
            StridedReducer::Max => f32::fact(self.output_shape()),
            StridedReducer::ArgMax => i64::fact(self.output_shape()),
        }))
    }

    as_op!();
}
