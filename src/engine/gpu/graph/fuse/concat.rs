//! Concatenations without copies: a kernel whose output is only copied into a concatenation
//! stores its values at their place in the concatenation's buffer instead.

use super::{plain, stores_plainly, Readers};
use crate::engine::gpu::graph::{Binding, Planner};
use crate::engine::gpu::kernels::{ConstV, Shader};

pub(super) fn apply(p: &mut Planner<'_>, r: &Readers) -> bool {
    for c in 0..p.kernels.len() {
        let copy = &p.kernels[c];
        if copy.shader != Shader::StridedCopy || !copy.label.starts_with("concat") || !copy.epilogue.is_identity() {
            continue;
        }
        let (Some(y), Binding::Value(u)) = (copy.output(), copy.bindings[1]) else { continue };
        let Some(k) = r.producer(u) else { continue };
        if k >= c || !r.only_reader(p, u, c) {
            continue;
        }
        let prod = &p.kernels[k];
        if !prod.relocatable() || !stores_plainly(prod) {
            continue;
        }
        let int = |name: &str| match copy.get(name) {
            Some(ConstV::I(v)) => v as i64,
            Some(ConstV::U(v)) => v as i64,
            _ => 0,
        };
        let dims: Vec<usize> = ["D0", "D1", "D2", "D3", "D4", "D5"].iter().map(|n| copy.get_u(n)).collect();
        let src: Vec<i64> = ["SX0", "SX1", "SX2", "SX3", "SX4", "SX5"].iter().map(|n| int(n)).collect();
        let dst: Vec<i64> = ["SY0", "SY1", "SY2", "SY3", "SY4", "SY5"].iter().map(|n| int(n)).collect();
        // A plain copy of the whole part (its own contiguous layout) ...
        if int("XBASE") != 0 || !plain(&src, &dims) {
            continue;
        }
        // ... over the producer's coordinates (the last ones of six, the rest of extent 1).
        let rank = prod.space.len();
        if rank > 6 || dims[6 - rank..] != prod.space[..] || dims[..6 - rank].iter().any(|&d| d != 1) {
            continue;
        }
        let strides = dst[6 - rank..].to_vec();
        let base = int("YBASE");
        let prod = &mut p.kernels[k];
        prod.bindings[0] = Binding::Value(y);
        prod.out_base = base;
        prod.out_strides = strides;
        prod.label.push_str("->concat");
        p.kernels.remove(c);
        return true;
    }
    false
}
