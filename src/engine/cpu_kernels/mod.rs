//! edgesight's own CPU kernels, swapped into tract's typed model at load time (`patch_model`).
//!
//! tract stays the graph runtime (loading, shape inference, every other op, the plan); only the
//! ops it runs slowly on x86 are replaced by edgesight's (`ops`), each running one of the
//! kernels here, with the ReLU / ReLU6 or hard swish that follows a convolution fused into it.
//! The replacements are named rules (`rules`), listed below in the order they run.

pub mod broadcast;
pub mod choice;
pub mod conv;
pub mod deconv;
pub mod direct;
pub mod dw_blocked;
pub mod dw_direct;
#[cfg(target_arch = "x86_64")]
pub mod dw_rows;
pub mod epilogue;
pub mod exp;
pub mod gelu;
pub mod move_axis;
pub mod mul;
pub mod ops;
pub mod plane_mean;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod rules;
pub mod simd;
pub mod spec;
pub mod strategy;
#[cfg(target_arch = "x86_64")]
pub mod winograd;
#[cfg(target_arch = "x86_64")]
pub mod winograd_avx2;
#[cfg(target_arch = "x86_64")]
pub mod winograd_layout;
#[cfg(test)]
mod tests;

pub use broadcast::{broadcast_binary, RowKernel};
pub use choice::{DenseForce, DepthwiseForce, KernelChoice};
pub use ops::broadcast::{BinKind, EdgesightBroadcast};
pub use ops::conv::EdgesightConv;
pub use ops::deconv::EdgesightDeconv;
#[cfg(target_arch = "x86_64")]
pub use ops::expand_dw::EdgesightExpandDw;
pub use ops::move_axis::EdgesightMoveAxis;
pub use ops::plane_mean::EdgesightPlaneMean;
pub use ops::reduce::{EdgesightReduce, StridedReducer};
pub use ops::resize::EdgesightResize;
pub use ops::unary::{EdgesightUnary, UnaryFunc};
pub use rules::{PatchCount, Rule};
pub use spec::Isa;
use tract_onnx::prelude::*;

/// Before and after decluttering: tract's ops replaced, each node once in eval order. (Before
/// decluttering, which would turn 1x1 convolutions into matrix products; after, for what it
/// folded: deconvolution kernels, clamps.)
pub const REPLACE: &[Rule] = &[
    ops::deconv::REPLACE,
    ops::broadcast::REPLACE_SLOW_PATTERNS,
    ops::reduce::REPLACE,
    ops::resize::REPLACE,
    ops::move_axis::REPLACE,
    ops::plane_mean::REPLACE,
    ops::unary::REPLACE,
    ops::conv::REPLACE,
];

/// Then, each until it matches nowhere: what follows a replaced convolution or deconvolution,
/// into it (a deconvolution's addition before its clamp, the graph's order).
/// Last, a pointwise expansion into the blocked depthwise convolution that alone reads it
/// (both with their clamps by then).
pub const FUSE: &[Rule] = &[
    ops::conv::FUSE_CLAMP,
    ops::conv::FUSE_HARD_SWISH,
    ops::deconv::FUSE_ADD,
    ops::deconv::FUSE_CLAMP,
    #[cfg(target_arch = "x86_64")]
    ops::expand_dw::FUSE,
];

/// Last, on the decluttered model (`patch_elementwise`).
pub const ELEMENTWISE: &[Rule] = &[ops::broadcast::REPLACE_LARGE];

/// Runs the large element-wise binary ops left after `patch_model` (f32 Add, Sub, Mul, Max, Min,
/// any broadcast: from 512K outputs on one thread, from 64K with more) as `EdgesightBroadcast`,
/// split over the worker pool: tract fuses them into chains that run on one thread at 1-5 ns
/// per element (BEVANet-S's batch-norm and ReLU chains, ~50 ms per frame). Smaller ones stay
/// in tract's fused chains. The sizes depend on the pool's threads at load time.
/// Call it on the decluttered model after `patch_model`, so that batch norms are already folded
/// into convolutions and clamps fused into them.
pub fn patch_elementwise(model: &mut TypedModel, choice: &KernelChoice) -> TractResult<usize> {
    let Some(isa) = choice.isa() else { return Ok(0) };
    let mut count = PatchCount::default();
    rules::each_node_once(model, ELEMENTWISE, &rules::RuleContext { isa, choice }, &mut count)?;
    Ok(count.broadcasts)
}

/// Replaces every f32 NCHW 2D convolution with constant weights by `EdgesightConv` (and the
/// other ops of `REPLACE`) and fuses a following max/min against constants into it (`FUSE`).
/// Returns the model unchanged where this CPU has no fast kernels (`Isa::fast`), or when the
/// choice says tract only (for comparisons).
pub fn patch_model(model: &mut TypedModel, choice: &KernelChoice) -> TractResult<PatchCount> {
    let mut count = PatchCount::default();
    let Some(isa) = choice.isa() else { return Ok(count) };
    let cx = rules::RuleContext { isa, choice };
    rules::each_node_once(model, REPLACE, &cx, &mut count)?;
    for rule in FUSE {
        rules::until_none(model, rule, &cx, &mut count)?;
    }
    model.compact()?;
    Ok(count)
}
