//! A depthwise convolution over a 1 x 1 plane (as attention blocks apply to pooled vectors) is
//! a per-channel affine map: only the tap that lands on the single input pixel counts, the rest
//! read padding. Folded into the convolution producing its input, it costs nothing.

use super::{is_conv, stores_plainly, Readers};
use crate::engine::gpu::graph::{Binding, Planner};
use crate::engine::gpu::kernels::Shader;

pub(super) fn apply(p: &mut Planner<'_>, r: &Readers) -> bool {
    for d in 0..p.kernels.len() {
        let dw = &p.kernels[d];
        if dw.shader != Shader::DepthwiseTiled || !stores_plainly(dw) {
            continue;
        }
        let u = |n: &str| dw.get_u(n);
        if [u("IH"), u("IW"), u("OH"), u("OW")] != [1, 1, 1, 1] {
            continue;
        }
        // The tap on input (0, 0): ky * DH = PT, kx * DW = PL.
        let (pt, pl, dh, dwl, kh, kw) = (u("PT"), u("PL"), u("DH").max(1), u("DW").max(1), u("KH"), u("KW"));
        if pt % dh != 0 || pl % dwl != 0 || pt / dh >= kh || pl / dwl >= kw {
            continue;
        }
        let tap = (pt / dh) * kw + pl / dwl;
        let (Binding::Value(v), Binding::Param(dwi), Binding::Param(dbi)) = (dw.bindings[1], dw.bindings[2], dw.bindings[3]) else { continue };
        let Some(k) = r.producer(v) else { continue };
        let conv = &p.kernels[k];
        if k >= d || !is_conv(conv) || !conv.epilogue.is_identity() || !stores_plainly(conv) || !r.only_reader(p, v, d) {
            continue;
        }
        let (Binding::Param(wi), Binding::Param(bi)) = (conv.bindings[2], conv.bindings[3]) else { continue };
        let c = u("IC");
        if p.values[v].shape.get(1) != Some(&c) || p.params[wi].len() % c != 0 {
            continue;
        }
        let per = p.params[wi].len() / c;
        for ch in 0..c {
            let s = p.params[dwi][ch * kh * kw + tap];
            for w in &mut p.params[wi][ch * per..(ch + 1) * per] {
                *w *= s;
            }
            p.params[bi][ch] = p.params[bi][ch] * s + p.params[dbi][ch];
        }
        // The convolution, now with the depthwise output and epilogue, where the depthwise ran.
        let mut merged = p.kernels[k].clone();
        merged.bindings[0] = p.kernels[d].bindings[0];
        merged.epilogue = p.kernels[d].epilogue.clone();
        p.kernels[d] = merged;
        p.kernels.remove(k);
        return true;
    }
    false
}
