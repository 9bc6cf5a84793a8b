//! Views read in place: a strided copy (transpose, slice, split, expand) whose output only an
//! element-wise kernel reads is dropped, and that kernel reads the copy's source through the
//! composed strides and offset.

use super::{plain, Readers};
use crate::engine::gpu::epilogue::ExtraInput;
use crate::engine::gpu::graph::{Binding, Planner};
use crate::engine::gpu::kernels::{ConstV, Shader};

pub(super) fn apply(p: &mut Planner<'_>, r: &Readers) -> bool {
    for c in 0..p.kernels.len() {
        if p.kernels[c].shader != Shader::Ewise {
            continue;
        }
        for j in 0..p.kernels[c].epilogue.inputs.len() {
            let input = &p.kernels[c].epilogue.inputs[j];
            let Binding::Value(u) = input.binding else { continue };
            let Some(k) = r.producer(u) else { continue };
            let copy = &p.kernels[k];
            if k >= c || copy.shader != Shader::StridedCopy || !copy.epilogue.is_identity() || !r.only_reader(p, u, c) {
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
            // The copy fills its whole output contiguously (no concatenation part) ...
            if int("YBASE") != 0 || !plain(&dst, &dims) {
                continue;
            }
            // ... and the element-wise kernel reads that output plainly, broadcast where its
            // extent is 1.
            let cons = &p.kernels[c];
            let fits = (0..6).all(|a| dims[a] == 1 || dims[a] == cons.space[a]);
            let own = crate::engine::gpu::kernels::contiguous(&dims);
            let reads_plainly = cons.epilogue.inputs.iter().all(|e| {
                e.binding != Binding::Value(u) || (e.base == 0 && (0..6).all(|a| e.strides[a] == if dims[a] == 1 { 0 } else { own[a] }))
            });
            let Binding::Value(x) = copy.bindings[1] else { continue };
            if !fits || !reads_plainly {
                continue;
            }
            let strides: Vec<i64> = (0..6).map(|a| if dims[a] == 1 { 0 } else { src[a] }).collect();
            let replacement = ExtraInput { binding: Binding::Value(x), strides, base: int("XBASE") };
            for e in &mut p.kernels[c].epilogue.inputs {
                if e.binding == Binding::Value(u) {
                    *e = replacement.clone();
                }
            }
            p.kernels.remove(k);
            return true;
        }
    }
    false
}
