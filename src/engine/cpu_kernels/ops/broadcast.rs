//! `EdgesightBroadcast`: element-wise binary ops with broadcasting, run by `broadcast` (and
//! `mul` for products), and the rules that swap it in for tract's where tract is slow.

use crate::engine::cpu_kernels::broadcast::broadcast_binary;
use crate::engine::cpu_kernels::rules::{Replacement, Rule, RuleContext};
use crate::engine::cpu_kernels::{mul, pool};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;

/// Before and after decluttering: f32 Add / Sub / Mul and comparisons in the broadcast patterns
/// tract runs element by element (`edgesight_broadcast` without `any_pattern`).
pub const REPLACE_SLOW_PATTERNS: Rule = Rule { name: "broadcast-slow-patterns", matcher: replace_slow, compact_after: false };

/// Last, on the decluttered model (`patch_elementwise`): large element-wise ops of any
/// pattern, Max and Min too, split over the worker pool.
pub const REPLACE_LARGE: Rule = Rule { name: "broadcast-large", matcher: replace_large, compact_after: false };

fn replace_slow(_: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    replace(model, node, false)
}

fn replace_large(_: &RuleContext, model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    replace(model, node, true)
}

fn replace(model: &TypedModel, node: &TypedNode, any_pattern: bool) -> TractResult<Option<Replacement>> {
    let Some(op) = node.op_as::<TypedBinOp>() else { return Ok(None) };
    let Some(op) = edgesight_broadcast(model, node, op, any_pattern)? else { return Ok(None) };
    let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
    Ok(Some(Replacement { patch, tally: |c| c.broadcasts += 1 }))
}

/// Add / Sub / Mul of two f32 tensors that broadcast against each other in middle axes (MoveNet's
/// [64,64,6,17] x [64,64,1,17] decoding arithmetic), where tract 0.23.9 falls back to a generic
/// element-by-element loop. Same IEEE operation per element, so bitwise the same result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgesightBroadcast {
    pub kind: BinKind,
    pub a_shape: TVec<usize>,
    pub b_shape: TVec<usize>,
    pub out_shape: TVec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinKind {
    Add,
    Sub,
    Mul,
    Max,
    Min,
    /// Comparisons, with a bool output (MoveNet's box masks: tract's generic broadcasting
    /// comparison took 0.7 ms for [64,64,1,1] < [1,1,6,1]).
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinKind {
    fn is_comparison(self) -> bool {
        matches!(self, BinKind::Lt | BinKind::Le | BinKind::Gt | BinKind::Ge)
    }
}

impl Op for EdgesightBroadcast {
    fn name(&self) -> StaticName {
        format!("Edgesight{:?}", self.kind).into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} x {:?}", self.a_shape, self.b_shape)])
    }

    op_as_typed_op!();
}
impl EvalOp for EdgesightBroadcast {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let a = inputs[0].to_plain_array_view::<f32>()?;
        let b = inputs[1].to_plain_array_view::<f32>()?;
        let (a, b) = (a.as_slice().context("not contiguous")?, b.as_slice().context("not contiguous")?);
        let (sa, sb, so) = (&self.a_shape[..], &self.b_shape[..], &self.out_shape[..]);
        // SAFETY: broadcast_binary writes every output element.
        let t = if self.kind.is_comparison() {
            let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<bool>(so)? };
            {
                let mut view = t.try_as_plain_ram_mut()?;
                let out = view.as_slice_mut::<bool>()?;
                match self.kind {
                    BinKind::Lt => broadcast_binary(a, sa, b, sb, so, out, |x, y| x < y, None),
                    BinKind::Le => broadcast_binary(a, sa, b, sb, so, out, |x, y| x <= y, None),
                    BinKind::Gt => broadcast_binary(a, sa, b, sb, so, out, |x, y| x > y, None),
                    _ => broadcast_binary(a, sa, b, sb, so, out, |x, y| x >= y, None),
                }
            }
            t
        } else {
            let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<f32>(so)? };
            {
                let mut view = t.try_as_plain_ram_mut()?;
                let out = view.as_slice_mut::<f32>()?;
                match self.kind {
                    BinKind::Add => broadcast_binary(a, sa, b, sb, so, out, |x, y| x + y, None),
                    BinKind::Sub => broadcast_binary(a, sa, b, sb, so, out, |x, y| x - y, None),
                    BinKind::Max => broadcast_binary(a, sa, b, sb, so, out, |x: f32, y| x.max(y), None),
                    BinKind::Min => broadcast_binary(a, sa, b, sb, so, out, |x: f32, y| x.min(y), None),
                    // Rows through `mul::mul_into`: no denormal stalls, same bits.
                    _ => broadcast_binary(a, sa, b, sb, so, out, |x, y| x * y, Some(&mul::mul_into)),
                }
            }
            t
        };
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightBroadcast {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2 && inputs.iter().all(|f| f.datum_type == f32::datum_type()));
        ensure!(inputs[0].shape.as_concrete() == Some(&self.a_shape[..]) && inputs[1].shape.as_concrete() == Some(&self.b_shape[..]));
        Ok(tvec!(if self.kind.is_comparison() { bool::fact(&self.out_shape) } else { f32::fact(&self.out_shape) }))
    }

    as_op!();
}

/// An `EdgesightBroadcast` for `node` when it is f32 Add/Sub/Mul whose inputs both broadcast, or
/// one broadcasts in an axis before a non-broadcast one (tract's fast paths cover the rest:
/// same shapes, scalars, leading-axis broadcasts).
fn edgesight_broadcast(model: &TypedModel, node: &TypedNode, op: &TypedBinOp, any_pattern: bool) -> TractResult<Option<EdgesightBroadcast>> {
    let kind = match op.0.name() {
        "Add" => BinKind::Add,
        "Sub" => BinKind::Sub,
        "Mul" => BinKind::Mul,
        "Max" if any_pattern => BinKind::Max,
        "Min" if any_pattern => BinKind::Min,
        "LT" => BinKind::Lt,
        "LTE" => BinKind::Le,
        "GT" => BinKind::Gt,
        "GTE" => BinKind::Ge,
        _ => return Ok(None),
    };
    if node.inputs.len() != 2 {
        return Ok(None);
    }
    let (fa, fb, fo) = (model.outlet_fact(node.inputs[0])?, model.outlet_fact(node.inputs[1])?, model.outlet_fact(node.id.into())?);
    let out_type = if kind.is_comparison() { bool::datum_type() } else { f32::datum_type() };
    if fa.datum_type != f32::datum_type() || fb.datum_type != f32::datum_type() || fo.datum_type != out_type {
        return Ok(None);
    }
    let (Some(a), Some(b), Some(o)) = (fa.shape.as_concrete(), fb.shape.as_concrete(), fo.shape.as_concrete()) else { return Ok(None) };
    if a.len() != o.len() || b.len() != o.len() || o.is_empty() || o.iter().product::<usize>() < 4096 {
        return Ok(None);
    }
    let broadcasts = |s: &[usize]| s != o;
    let scalar = |s: &[usize]| s.iter().all(|d| *d == 1);
    // A size-1 axis (broadcast) followed later by a full-size axis.
    let middle = |s: &[usize]| (0..s.len()).any(|i| s[i] == 1 && o[i] > 1 && (i + 1..s.len()).any(|j| s[j] == o[j] && o[j] > 1));
    // Broadcast only over trailing axes whose sizes multiply to a short row: tract multiplies
    // such rows one scalar at a time (MoveNet's [64,64,6,17] x [64,64,6,1]: 0.8 ms, 2 ns per
    // element, on one thread).
    let short_rows = |s: &[usize]| {
        let lead = s.iter().zip(o).take_while(|(x, y)| x == y).count();
        lead < o.len() && s[lead..].iter().all(|d| *d == 1) && o[lead..].iter().product::<usize>() < 64
    };
    let elements = o.iter().product::<usize>();
    // On one thread tract's fused chains of small element-wise ops win (selfie 2% slower
    // without them); with threads to split over, splitting wins (selfie at 2 threads 15%
    // faster with every op from 64K elements split; alternating runs of `bench`).
    let large = if pool::threads() > 1 { 1 << 16 } else { 1 << 19 };
    let wanted = (any_pattern && elements >= large)
        || (any_pattern && elements >= 1 << 15 && (short_rows(a) || short_rows(b)))
        || (!scalar(a) && !scalar(b) && ((broadcasts(a) && broadcasts(b)) || middle(a) || middle(b)));
    if !wanted || a.iter().zip(o).any(|(x, y)| *x != *y && *x != 1) || b.iter().zip(o).any(|(x, y)| *x != *y && *x != 1) {
        return Ok(None);
    }
    Ok(Some(EdgesightBroadcast { kind, a_shape: a.into(), b_shape: b.into(), out_shape: o.into() }))
}
