//! An element-wise kernel read only by a reduction runs inside it: the reduction reads its
//! input through the program (`mean((x - m)^2)` of a LayerNorm needs no stored square).

use super::{plain, stores_plainly, Readers};
use crate::engine::gpu::epilogue::{ExtraInput, Program};
use crate::engine::gpu::graph::{Binding, Planner};
use crate::engine::gpu::kernels::Shader;

pub(super) fn apply(p: &mut Planner<'_>, r: &Readers) -> bool {
    for k in 0..p.kernels.len() {
        let red = &p.kernels[k];
        if !matches!(red.shader, Shader::Reduce | Shader::PlaneReduce) || red.pre.is_some() {
            continue;
        }
        let Binding::Value(u) = red.bindings[1] else { continue };
        let Some(e) = r.producer(u) else { continue };
        let ew = &p.kernels[e];
        if e >= k || ew.shader != Shader::Ewise || !stores_plainly(ew) || !r.only_reader(p, u, k) {
            continue;
        }
        // The reduction indexes its input linearly: every input of the program must be read
        // at that same linear index (contiguous over the whole input) or be one value.
        let mut pre = Program { inputs: vec![], ops: ew.epilogue.ops.clone() };
        let mut ok = true;
        let mut first_plain = None;
        for i in &ew.epilogue.inputs {
            let stride = if i.strides.iter().all(|&s| s == 0) {
                0
            } else if plain(&i.strides, &ew.space) {
                first_plain.get_or_insert(i.binding);
                1
            } else {
                ok = false;
                break;
            };
            pre.inputs.push(ExtraInput { binding: i.binding, strides: vec![stride], base: i.base });
        }
        // The reduction's own input binding must still be a buffer of that size.
        let Some(stand_in) = first_plain.filter(|_| ok) else { continue };
        let mut merged = p.kernels[k].clone();
        merged.bindings[1] = stand_in;
        merged.pre = Some(pre);
        merged.label = format!("{}({})", merged.label.split(" #").next().unwrap_or("reduce"), ew.epilogue.describe());
        p.kernels[k] = merged;
        p.kernels.remove(e);
        return true;
    }
    false
}
