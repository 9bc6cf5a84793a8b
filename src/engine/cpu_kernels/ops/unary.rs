//! `EdgesightUnary`: e^x or GELU over a large f32 tensor in place, run by `exp` / `gelu` split
//! over the worker pool, and the rule that swaps it in for tract's element-wise op.

use super::one_f32_input;
use crate::engine::cpu_kernels::pool::split_out;
use crate::engine::cpu_kernels::rules::{PatchCount, Replacement, Rule, RuleContext};
use crate::engine::cpu_kernels::{exp, gelu};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;

/// f32 Exp (and GeluExact where `gelu` repeats tract's bits) of 32K elements and more ->
/// `EdgesightUnary`.
pub const REPLACE: Rule = Rule { name: "unary", matcher: replace, compact_after: false };

fn replace(_: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(op) = node.op_as::<ElementWiseOp>() else { return Ok(None) };
    let fact = model.outlet_fact(node.inputs[0])?;
    // GELU only where `gelu` repeats tract's AVX-512 arithmetic bit for bit.
    let func = match op.0.name().as_str() {
        "Exp" => Some(UnaryFunc::Exp),
        "GeluExact" if gelu_matches_tract() => Some(UnaryFunc::Gelu),
        _ => None,
    };
    if let (Some(func), Some(shape), true) = (func, fact.shape.as_concrete(), fact.datum_type == f32::datum_type()) {
        // Large tensors only: below one parallel split the call costs more than it saves.
        if shape.iter().product::<usize>() >= 1 << 15 {
            let op = EdgesightUnary { func, shape: shape.into() };
            let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
            let tally: fn(&mut PatchCount) = match func {
                UnaryFunc::Exp => |c| c.exps += 1,
                UnaryFunc::Gelu => |c| c.gelus += 1,
            };
            return Ok(Some(Replacement { patch, tally }));
        }
    }
    Ok(None)
}

/// An element-wise function of a large f32 tensor, in place, split over the worker pool: e^x
/// (`exp`) or GELU (`gelu`), both single-threaded in tract.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgesightUnary {
    pub func: UnaryFunc,
    pub shape: TVec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryFunc {
    Exp,
    Gelu,
}

impl Op for EdgesightUnary {
    fn name(&self) -> StaticName {
        format!("Edgesight{:?}", self.func).into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.shape)])
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightUnary {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        // In place, as tract's element-wise ops are (the input is copied only if shared).
        let mut t = inputs.remove(0).into_tensor();
        {
            let mut view = t.try_as_plain_ram_mut()?;
            let f = match self.func {
                UnaryFunc::Exp => exp::exp_in_place,
                UnaryFunc::Gelu => gelu::gelu_in_place,
            };
            split_out(view.as_slice_mut::<f32>()?, 16, &|_, part: &mut [f32]| f(part));
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightUnary {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        one_f32_input(inputs, &self.shape)?;
        Ok(tvec!(f32::fact(&self.shape)))
    }

    as_op!();
}

/// Whether this CPU runs tract's AVX-512 erf, which `gelu` repeats exactly.
fn gelu_matches_tract() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}
