//! Fusion after lowering, as named rules run in order over the kernel list until none applies:
//!
//! - `conv_affine`: a per-channel (or scalar) constant Mul / Div / Add / Sub after a
//!   convolution folded into its weights and bias (batch norms that were left as affine ops);
//! - `plane_affine`: a depthwise convolution on 1 x 1 planes (a per-channel affine map) folded
//!   into the convolution before it;
//! - `view`: a transpose, slice or split read only by an element-wise kernel is read in place;
//! - `ewise_chain`: an element-wise kernel whose input is made by another element-wise kernel
//!   that nothing else reads takes that kernel's program in (GELU, LayerNorm's tail, hard swish
//!   become one kernel each);
//! - `epilogue`: an element-wise kernel that reads a kernel's output, alone, runs as that
//!   kernel's epilogue (activations, residual Adds, gating);
//! - `squeeze`: global average pool + two 1 x 1 convolutions (squeeze-and-excitation) as one;
//! - `reduce_prologue`: an element-wise kernel read only by a reduction runs inside it;
//! - `separable`: a depthwise convolution read only by a pointwise one runs with it in one pass;
//! - `concat`: a kernel whose output is only copied into a concatenation writes there itself.
//!
//! The rules read and rewrite `Planner::kernels`; who reads what is recomputed from the kernel
//! list as they go (`Readers`). Each rule's count is kept for reports and tests.

mod chain;
mod concat;
mod conv_affine;
mod epilogue;
mod plane_affine;
mod reduce_prologue;
mod separable;
mod squeeze;
mod view;

use super::{Binding, Planner};
use crate::engine::gpu::kernels::{contiguous, Kernel, Shader};
use std::collections::{HashMap, HashSet};

/// A rule: its name and one application (true when it changed the plan).
pub(super) struct Rule {
    pub name: &'static str,
    pub apply: fn(&mut Planner<'_>, &Readers) -> bool,
}

pub(super) const RULES: [Rule; 9] = [
    Rule { name: "conv_affine", apply: conv_affine::apply },
    Rule { name: "plane_affine", apply: plane_affine::apply },
    Rule { name: "view", apply: view::apply },
    Rule { name: "ewise_chain", apply: chain::apply },
    Rule { name: "epilogue", apply: epilogue::apply },
    Rule { name: "squeeze", apply: squeeze::apply },
    Rule { name: "reduce_prologue", apply: reduce_prologue::apply },
    Rule { name: "separable", apply: separable::apply },
    Rule { name: "concat", apply: concat::apply },
];

/// The rule names, for `PlanOptions::skip_rules` (and "all").
pub fn rule_names() -> Vec<&'static str> {
    RULES.iter().map(|r| r.name).collect()
}

/// Who reads and writes each storage, from the current kernel list.
pub(super) struct Readers {
    /// storage -> (kernel, value read) for every read binding.
    reads: HashMap<usize, Vec<(usize, usize)>>,
    /// value -> kernels writing it.
    writers: HashMap<usize, Vec<usize>>,
    pinned: HashSet<usize>,
}

impl Readers {
    pub fn of(p: &Planner<'_>, pinned: &HashSet<usize>) -> Readers {
        let mut reads: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        let mut writers: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, k) in p.kernels.iter().enumerate() {
            for (j, b) in k.all_bindings().iter().enumerate() {
                if let Binding::Value(v) = b {
                    if j == 0 {
                        writers.entry(*v).or_default().push(i);
                    } else {
                        reads.entry(p.values[*v].storage).or_default().push((i, *v));
                    }
                }
            }
        }
        Readers { reads, writers, pinned: pinned.clone() }
    }

    /// The one kernel that writes `v` (None: several, as the parts of a concatenation, or none).
    pub fn producer(&self, v: usize) -> Option<usize> {
        match self.writers.get(&v).map(Vec::as_slice) {
            Some([k]) => Some(*k),
            _ => None,
        }
    }

    /// The one kernel that writes `v`'s data: `v` itself, or a value `v` is a view of (a
    /// reshape: the same storage and element count).
    pub fn producer_of_same(&self, p: &Planner<'_>, v: usize) -> Option<usize> {
        if let Some(k) = self.producer(v) {
            return Some(k);
        }
        let (s, n) = (p.values[v].storage, p.values[v].shape.iter().product::<usize>());
        let mut found = None;
        for (u, val) in p.values.iter().enumerate() {
            if u != v && val.storage == s && val.shape.iter().product::<usize>() == n {
                if let Some(k) = self.producer(u) {
                    if found.is_some_and(|f| f != k) {
                        return None;
                    }
                    found = Some(k);
                }
            }
        }
        found
    }

    /// Whether `v` is read by kernel `k` only, always as `v` itself (not through a view), and
    /// is not a graph output or a download.
    pub fn only_reader(&self, p: &Planner<'_>, v: usize, k: usize) -> bool {
        let s = p.values[v].storage;
        if self.pinned.contains(&s) {
            return false;
        }
        // A read through a view (another value of the same storage) counts as another reader.
        match self.reads.get(&s) {
            Some(r) => !r.is_empty() && r.iter().all(|&(kk, x)| kk == k && x == v),
            None => false,
        }
    }
}

/// Whether a kernel stores its output contiguously over its own space (not into a larger tensor).
pub(super) fn stores_plainly(k: &Kernel) -> bool {
    k.out_base == 0 && plain(&k.out_strides, &k.space)
}

/// Whether `strides` walk a tensor of extents `space` contiguously (strides of axes of extent 1
/// never matter).
pub(super) fn plain(strides: &[i64], space: &[usize]) -> bool {
    let c = contiguous(space);
    strides.len() == space.len() && (0..space.len()).all(|a| space[a] == 1 || strides[a] == c[a])
}

/// The NCHW convolutions whose weights are [OC, ICG, KH, KW] and bias [OC] parameters.
pub(super) fn is_conv(k: &Kernel) -> bool {
    matches!(k.shader, Shader::ConvDense | Shader::Conv1x1Gemm | Shader::Conv1x1Vec4 | Shader::ConvIgemm | Shader::DepthwiseTiled | Shader::ConvNaive)
}

impl Planner<'_> {
    /// Runs every rule to a fixed point; returns how often each applied.
    pub(super) fn fuse(&mut self, pinned: &HashSet<usize>) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = RULES.iter().map(|r| (r.name, 0)).collect();
        for (i, rule) in RULES.iter().enumerate() {
            if self.opts.skip_rules.iter().any(|s| s == rule.name || s == "all") {
                continue;
            }
            loop {
                let readers = Readers::of(self, pinned);
                if !(rule.apply)(self, &readers) {
                    break;
                }
                counts[i].1 += 1;
            }
        }
        for (i, k) in self.kernels.iter_mut().enumerate() {
            let base = k.label.split(" #").next().unwrap_or("").to_string();
            k.label = format!("{base} #{i}");
        }
        counts
    }
}
