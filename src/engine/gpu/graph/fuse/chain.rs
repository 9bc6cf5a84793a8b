//! Chains of element-wise kernels as one: a kernel whose input is made by another element-wise
//! kernel, which nothing else reads, takes that kernel's program in (its inputs read through
//! the composed broadcast strides), so the intermediate is never stored.

use super::{stores_plainly, Readers};
use crate::engine::gpu::epilogue::{EOp, ExtraInput, Program};
use crate::engine::gpu::graph::{Binding, Planner};
use crate::engine::gpu::kernels::{contiguous, Shader};

pub(super) fn apply(p: &mut Planner<'_>, r: &Readers) -> bool {
    for c in 0..p.kernels.len() {
        if p.kernels[c].shader != Shader::Ewise {
            continue;
        }
        for j in 0..p.kernels[c].epilogue.inputs.len() {
            let Binding::Value(u) = p.kernels[c].epilogue.inputs[j].binding else { continue };
            let Some(k) = r.producer(u) else { continue };
            if k >= c || p.kernels[k].shader != Shader::Ewise || !stores_plainly(&p.kernels[k]) || !r.only_reader(p, u, c) {
                continue;
            }
            let (cons, prod) = (&p.kernels[c], &p.kernels[k]);
            // The consumer reads every element of the producer's output as its own (broadcast
            // over the consumer's axes only where the producer's extent is 1).
            let fits = (0..6).all(|a| prod.space[a] == 1 || prod.space[a] == cons.space[a]);
            let plain = contiguous(&prod.space);
            let reads_plainly = cons.epilogue.inputs.iter().all(|e| {
                e.binding != Binding::Value(u) || (e.base == 0 && (0..6).all(|a| e.strides[a] == if prod.space[a] == 1 { 0 } else { plain[a] }))
            });
            if !fits || !reads_plainly {
                continue;
            }
            let merged = inline(&cons.epilogue, u, &prod.epilogue, &prod.space);
            p.kernels[c].epilogue = merged;
            p.kernels[c].label = p.kernels[c].epilogue.describe();
            p.kernels.remove(k);
            return true;
        }
    }
    false
}

/// `consumer` with its reads of value `u` replaced by `producer`'s program (over a space of
/// extents `prod_space`, broadcast into the consumer's where they are 1).
fn inline(consumer: &Program, u: usize, producer: &Program, prod_space: &[usize]) -> Program {
    let mut out = Program { inputs: vec![], ops: vec![] };
    let mut pmap = Vec::with_capacity(producer.ops.len());
    for op in &producer.ops {
        let new = match op {
            EOp::Acc => out.push(EOp::Const(0.0)),
            EOp::Input(j) => {
                let e = &producer.inputs[*j];
                let strides = (0..6).map(|a| if prod_space[a] == 1 { 0 } else { e.strides[a] }).collect();
                let i = out.input(ExtraInput { binding: e.binding, strides, base: e.base });
                out.push(EOp::Input(i))
            }
            EOp::Const(v) => out.push(EOp::Const(*v)),
            EOp::Unary(a, x) => out.push(EOp::Unary(*a, pmap[*x])),
            EOp::Binary(o, a, b) => out.push(EOp::Binary(*o, pmap[*a], pmap[*b])),
        };
        pmap.push(new);
    }
    let produced = pmap[producer.result()];
    let mut cmap = Vec::with_capacity(consumer.ops.len());
    for op in &consumer.ops {
        let new = match op {
            EOp::Input(j) if consumer.inputs[*j].binding == Binding::Value(u) => produced,
            EOp::Input(j) => {
                let i = out.input(consumer.inputs[*j].clone());
                out.push(EOp::Input(i))
            }
            EOp::Acc => out.push(EOp::Const(0.0)),
            EOp::Const(v) => out.push(EOp::Const(*v)),
            EOp::Unary(a, x) => out.push(EOp::Unary(*a, cmap[*x])),
            EOp::Binary(o, a, b) => out.push(EOp::Binary(*o, cmap[*a], cmap[*b])),
        };
        cmap.push(new);
    }
    let last = cmap[consumer.result()];
    if last != out.result() {
        out.push(EOp::Unary(crate::engine::gpu::epilogue::Act::new(crate::engine::gpu::epilogue::IDENTITY, 0.0, 0.0), last));
    }
    out
}
