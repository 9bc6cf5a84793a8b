//! An element-wise kernel that reads a kernel's output, which nothing else reads, runs as that
//! kernel's epilogue: convolution + activation, + residual Add, + a GELU or hard-swish chain,
//! + sigmoid gating by another tensor, become one pass. The merged kernel runs where the
//! element-wise one did (its other inputs are ready by then).

use super::{plain, stores_plainly, Readers};
use crate::engine::gpu::epilogue::{ExtraInput, Program};
use crate::engine::gpu::graph::{Binding, Planner};
use crate::engine::gpu::kernels::Shader;

pub(super) fn apply(p: &mut Planner<'_>, r: &Readers) -> bool {
    for c in 0..p.kernels.len() {
        let e = &p.kernels[c];
        if e.shader != Shader::Ewise || !stores_plainly(e) {
            continue;
        }
        // Every value the element-wise kernel reads, in order: try each one's producer.
        let values: Vec<usize> = e.epilogue.inputs.iter().filter_map(|i| if let Binding::Value(v) = i.binding { Some(v) } else { None }).collect();
        for v in values {
            let Some(k) = r.producer(v) else { continue };
            if k >= c || !r.only_reader(p, v, c) {
                continue;
            }
            let (prod, cons) = (&p.kernels[k], &p.kernels[c]);
            let rank = prod.space.len();
            let others = cons.epilogue.inputs.iter().any(|i| i.binding != Binding::Value(v));
            if !prod.takes_epilogue(others) || !stores_plainly(prod) || prod.shader == Shader::Ewise && rank != 6 {
                continue;
            }
            // The element-wise kernel covers exactly the producer's output, element for element.
            let shape = &p.values[v].shape;
            let pad = |d: &[usize]| -> Option<Vec<usize>> {
                (d.len() <= 6).then(|| std::iter::repeat_n(1, 6 - d.len()).chain(d.iter().copied()).collect())
            };
            let (Some(vs), Some(os)) = (pad(shape), pad(&p.values[cons.output().unwrap_or(v)].shape)) else { continue };
            if cons.space != vs || os != vs {
                continue;
            }
            // The producer's space is the value's shape (coordinate kernels), or nothing
            // (kernels that store contiguously: the program may not read anything else).
            if prod.shader.coords() > 0 && (rank > 6 || vs[6 - rank..] != prod.space[..] || vs[..6 - rank].iter().any(|&d| d != 1)) {
                continue;
            }
            if cons.epilogue.inputs.iter().any(|i| i.binding == Binding::Value(v) && (i.base != 0 || !plain(&i.strides, &cons.space))) {
                continue;
            }
            // The consumer's program over the producer's coordinates (the last `rank` of six).
            let mut program = Program { inputs: vec![], ops: cons.epilogue.ops.clone() };
            let mut replaced = vec![];
            for (j, i) in cons.epilogue.inputs.iter().enumerate() {
                if i.binding == Binding::Value(v) {
                    replaced.push(j);
                }
                let strides = if prod.shader.coords() > 0 { i.strides[6 - rank..].to_vec() } else { vec![] };
                program.inputs.push(ExtraInput { binding: i.binding, strides, base: i.base });
            }
            let out = cons.output();
            let mut merged = p.kernels[k].clone();
            merged.epilogue.then(&program, &replaced);
            if let Some(o) = out {
                merged.bindings[0] = Binding::Value(o);
            }
            p.kernels[c] = merged;
            p.kernels.remove(k);
            return true;
        }
    }
    false
}
