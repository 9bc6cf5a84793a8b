//! Depthwise then pointwise convolution (the separable pair of MobileNet blocks) in one pass
//! (`Shader::DwPw`): a workgroup computes the depthwise values of a tile of pixels for a slice
//! of channels into workgroup memory and feeds them straight to the pointwise product, so the
//! depthwise output is never stored.

use super::{stores_plainly, Readers};
use crate::engine::gpu::graph::{Binding, Planner};
use crate::engine::gpu::kernels::{self, Shader};

pub(super) fn apply(p: &mut Planner<'_>, r: &Readers) -> bool {
    for g in 0..p.kernels.len() {
        let pw = &p.kernels[g];
        // The pointwise convolution, whichever shader runs it (tiled, vec4, or `conv_dense`
        // where it was forced): 1 x 1, stride 1, unpadded, ungrouped.
        if !kernels::is_pointwise_kernel(pw) {
            continue;
        }
        let Binding::Value(v) = pw.bindings[1] else { continue };
        let Some(d) = r.producer(v) else { continue };
        let dw = &p.kernels[d];
        if dw.shader != Shader::DepthwiseTiled || d >= g || !dw.epilogue.is_pure() || !stores_plainly(dw) || !r.only_reader(p, v, g) {
            continue;
        }
        let Some(k) = kernels::dw_pw(dw, pw, p.opts.workgroup_bytes.max(4096)) else { continue };
        p.kernels[g] = k;
        p.kernels.remove(d);
        return true;
    }
    false
}
