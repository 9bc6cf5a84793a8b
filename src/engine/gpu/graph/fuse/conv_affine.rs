//! A per-channel or scalar constant Mul / Div / Add / Sub right after a convolution (a batch
//! norm kept as an affine pair, a layer scale) folded into the convolution's weights and bias.

use super::{is_conv, plain, stores_plainly, Readers};
use crate::engine::gpu::epilogue::EOp;
use crate::engine::gpu::graph::{Binding, Planner};
use crate::engine::gpu::kernels::Shader;

pub(super) fn apply(p: &mut Planner<'_>, r: &Readers) -> bool {
    for c in 0..p.kernels.len() {
        if let Some((k, scale, shift, out)) = candidate(p, r, c) {
            let (Binding::Param(wi), Binding::Param(bi)) = (p.kernels[k].bindings[2], p.kernels[k].bindings[3]) else { continue };
            let oc = p.values[out].shape[1];
            let per = p.params[wi].len() / oc;
            for o in 0..oc {
                let s = scale.as_ref().map_or(1.0, |v| v[o]);
                for x in &mut p.params[wi][o * per..(o + 1) * per] {
                    *x *= s;
                }
                p.params[bi][o] = p.params[bi][o] * s + shift.as_ref().map_or(0.0, |v| v[o]);
            }
            p.kernels[k].bindings[0] = Binding::Value(out);
            p.kernels.remove(c);
            return true;
        }
    }
    false
}

/// (the convolution, per-channel scale, per-channel shift, the element-wise kernel's output)
/// when kernel `c` is `conv OP constant` on the convolution's own output.
#[allow(clippy::type_complexity)]
fn candidate(p: &Planner<'_>, r: &Readers, c: usize) -> Option<(usize, Option<Vec<f32>>, Option<Vec<f32>>, usize)> {
    let e = &p.kernels[c];
    if e.shader != Shader::Ewise || !stores_plainly(e) || e.epilogue.inputs.len() != 2 {
        return None;
    }
    let [EOp::Input(a), EOp::Input(b), EOp::Binary(op, 0, 1)] = e.epilogue.ops.as_slice() else { return None };
    let (mut ia, mut ib) = (&e.epilogue.inputs[*a], &e.epilogue.inputs[*b]);
    // `constant + conv` and `constant * conv` as well.
    if matches!((ia.binding, ib.binding), (Binding::Param(_), Binding::Value(_))) && matches!(op, 0 | 2) {
        std::mem::swap(&mut ia, &mut ib);
    }
    let (Binding::Value(v), Binding::Param(pi)) = (ia.binding, ib.binding) else { return None };
    let out = e.output()?;
    let k = r.producer(v)?;
    let conv = &p.kernels[k];
    if !is_conv(conv) || !conv.epilogue.is_identity() || !stores_plainly(conv) || !r.only_reader(p, v, c) {
        return None;
    }
    let shape = &p.values[v].shape;
    if shape.len() != 4 || p.values[out].shape != *shape || !plain(&ia.strides, &e.space) || ia.base != 0 {
        return None;
    }
    // The constant: one value for all, or one per channel (axis 1 of NCHW, axis 3 of the six).
    let oc = shape[1];
    let vals = &p.params[pi];
    let per_channel: Vec<f32> = if ib.strides.iter().all(|&s| s == 0) {
        vec![*vals.first()?; oc]
    } else if ib.strides == [0, 0, 0, 1, 0, 0] && vals.len() >= oc {
        vals[..oc].to_vec()
    } else {
        return None;
    };
    match op {
        0 => Some((k, None, Some(per_channel), out)),
        1 => Some((k, None, Some(per_channel.iter().map(|x| -x).collect()), out)),
        2 => Some((k, Some(per_channel), None, out)),
        3 if per_channel.iter().all(|&x| x != 0.0) => Some((k, Some(per_channel.iter().map(|x| 1.0 / x).collect()), None, out)),
        _ => None,
    }
}
