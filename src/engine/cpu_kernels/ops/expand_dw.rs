//! `EdgesightExpandDw`: a pointwise expansion and the channel-blocked depthwise convolution
//! that alone reads it, run as one (`dw_blocked::Expansion`), and the rule that fuses them.
//! The expanded planes are the largest tensors of LitePose and MoveNet (9-19 MB at the first
//! stages); fused, each expanded row is made in cache just before the depthwise kernel reads it.

use crate::engine::cpu_kernels::dw_blocked::Expansion;
use crate::engine::cpu_kernels::pool::parallel;
use crate::engine::cpu_kernels::rules::{Replacement, Rule, RuleContext};
use crate::engine::cpu_kernels::strategy::ConvStrategy;
use super::conv::EdgesightConv;
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Fused only where the expansion is cheap next to what it writes (few input channels) and
/// what it writes leaves the L2 cache (2 MiB); there the pair was bound by memory. With more
/// input channels the pointwise kernel's wider tiles make the planes faster than the ring's
/// one-block rows. Measured with `examples/profile_ops`, one thread, per pair, unfused -> fused:
/// - fused: MoveNet's 24 -> 144 at 128x128 with its 3x3 stride-2 depthwise 2.09 -> 1.2 ms;
///   LitePose-S's 16 -> 96 at 224x224 with a 7x7 stride-2 one 4.47 -> 2.2-2.3 ms, at 112x112
///   with 7x7 stride 1 about 1.3 -> 0.97 ms, 32 -> 192 at 56x56 about 0.79 -> 0.68 ms
///   (LitePose-S in all 68.6-68.8 -> 65.0-68.5 ms against fusing from 6 MiB only);
///   LitePose-XS's 16 -> 96 at 128x128 1.68 -> 0.97 ms;
/// - left apart: MoveNet's 40 -> 240 at 64x64, 0.90 -> 0.97 ms; LitePose-S's 120 -> 720 at
///   28x28, about 1.41 -> 1.62 ms.
const MAX_EXPANSION_INPUTS: usize = 32;
const MIN_EXPANDED_BYTES: usize = 2 << 20;

/// 1x1 convolution -> blocked depthwise convolution (its only reader) -> `EdgesightExpandDw`.
pub const FUSE: Rule = Rule { name: "expand-depthwise", matcher: fuse, compact_after: true };

fn fuse(_: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(exp) = node.op_as::<EdgesightConv>() else { return Ok(None) };
    let s = &exp.conv.spec;
    let pointwise = s.kernel == [1, 1] && s.stride == [1, 1] && s.group == 1 && s.pad_before == [0, 0] && s.pad_after == [0, 0];
    if !pointwise || s.c_in > MAX_EXPANSION_INPUTS || exp.hard_swish.is_some() || model.outputs.iter().any(|o| o.node == node.id) {
        return Ok(None);
    }
    let Some(succ) = model.single_succ(node.id)? else { return Ok(None) };
    let Some(dw) = succ.op_as::<EdgesightConv>() else { return Ok(None) };
    if dw.conv.strategy() != ConvStrategy::DepthwiseBlocked
        || dw.hard_swish.is_some()
        || succ.inputs[0] != OutletId::new(node.id, 0)
        || dw.input_shape != exp.output_shape
        || dw.batch_axis != exp.batch_axis
        || exp.output_shape[1..].iter().product::<usize>() * 4 < MIN_EXPANDED_BYTES
    {
        return Ok(None);
    }
    let (Some(exp_bias), Some(dw_bias)) = (constant(model, node.inputs[1], s.c_out)?, constant(model, succ.inputs[1], dw.conv.spec.c_out)?) else {
        return Ok(None);
    };
    let expansion = Expansion::new(s.c_in, s.c_out, &exp.conv.oihw(), &exp_bias, exp.conv.clamp);
    let op = EdgesightExpandDw { expansion: Arc::new(expansion), input_shape: exp.input_shape, dw: dw.clone(), dw_bias };
    let mut patch = TypedModelPatch::default();
    let input = patch.tap_model(model, node.inputs[0])?;
    let out = patch.wire_node(format!("{}.expanded", succ.name), op, &[input])?;
    patch.shunt_outside(model, succ.id.into(), out[0])?;
    Ok(Some(Replacement { patch, tally: |c| c.fused_expansions += 1 }))
}

/// A constant bias of `n` values (or one, repeated).
fn constant(model: &TypedModel, outlet: OutletId, n: usize) -> TractResult<Option<Vec<f32>>> {
    let Some(k) = &model.outlet_fact(outlet)?.konst else { return Ok(None) };
    if k.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let v: Vec<f32> = k.to_plain_array_view::<f32>()?.iter().copied().collect();
    Ok(match v.len() {
        1 => Some(vec![v[0]; n]),
        l if l == n => Some(v),
        _ => None,
    })
}

/// `dw` (a blocked depthwise `EdgesightConv`) on the output of `expansion`, run on the
/// expansion's input. One input: the expansion's; both biases are constants of the op.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgesightExpandDw {
    pub expansion: Arc<Expansion>,
    /// The expansion's input (N, C, H, W).
    pub input_shape: [usize; 4],
    pub dw: EdgesightConv,
    pub dw_bias: Vec<f32>,
}

impl EdgesightExpandDw {
    fn tensor_shape(&self, s: [usize; 4]) -> TVec<usize> {
        if self.dw.batch_axis { s.into() } else { s[1..].into() }
    }
}

impl Eq for EdgesightExpandDw {}

impl Op for EdgesightExpandDw {
    fn name(&self) -> StaticName {
        "EdgesightExpandDw".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let s = &self.dw.conv.spec;
        Ok(vec![format!(
            "in {:?} -> {} channels, then k {:?} s {:?} clamp {:?}",
            self.input_shape, s.c_in, s.kernel, s.stride, self.dw.conv.clamp
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightExpandDw {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightExpandDw input is not contiguous")?;
        let [_, c, h, w] = self.input_shape;
        let [_, co, oh, ow] = self.dw.output_shape;
        // SAFETY: the depthwise kernel writes every output element.
        let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<f32>(&self.tensor_shape(self.dw.output_shape))? };
        {
            let mut view = t.try_as_plain_ram_mut()?;
            let out = view.as_slice_mut::<f32>()?;
            for (img, o) in input.chunks(c * h * w).zip(out.chunks_mut(co * oh * ow)) {
                self.dw.conv.run_expanded(&self.expansion, img, &self.dw_bias, o, &parallel).context("EdgesightExpandDw planned without the blocked kernel")?;
            }
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightExpandDw {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type());
        ensure!(inputs[0].shape.as_concrete() == Some(&self.tensor_shape(self.input_shape)[..]), "EdgesightExpandDw planned for {:?}", self.input_shape);
        Ok(tvec!(f32::fact(self.tensor_shape(self.dw.output_shape))))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let [n, c, h, w] = self.input_shape;
        let expand = n * c * self.dw.conv.spec.c_in * h * w;
        let dw = n * self.dw.conv.macs(h, w);
        Ok(tvec!((Cost::FMA(f32::datum_type()), (expand + dw).into())))
    }

    as_op!();
}
