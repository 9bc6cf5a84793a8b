//! Transposed 2D convolution (ONNX ConvTranspose, group 1, no dilation) as `stride^2` ordinary
//! convolutions, one per output phase (sub-pixel decomposition), run by `conv::PackedConv` and
//! interleaved into the output. LitePose's 4x4 stride-2 heads spend a third of their time in
//! tract's matrix product + scatter-add for this; here each phase is a dense 2x2 convolution.
//!
//! Output row `oy` has phase `a = (oy + pad) mod s` and only kernel rows `ky = a + s m` reach it,
//! from input row `q - m` where `q = (oy + pad - a) / s`: a correlation over `m` with the kernel
//! rows of that phase reversed and `M - 1` rows of padding before.

use super::choice::KernelChoice;
use super::conv::PackedConv;
use super::spec::{Clamp, ConvSpec, Isa, SendPtr};

thread_local! {
    static PHASES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Debug, Clone, PartialEq)]
struct Phase {
    /// Output row and column phase.
    a: usize,
    b: usize,
    /// None when no kernel tap reaches this phase (kernel smaller than the stride): bias only.
    conv: Option<PackedConv>,
    /// Size of the phase convolution's output.
    qh: usize,
    qw: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PackedDeconv {
    pub c_in: usize,
    pub c_out: usize,
    pub input_hw: [usize; 2],
    pub output_hw: [usize; 2],
    pub stride: [usize; 2],
    pub pad_before: [usize; 2],
    phases: Vec<Phase>,
    /// When every phase convolution has the same kernel size (kernel a multiple of the
    /// stride, as LitePose's 4x4 / 2), all phases as one convolution with stride^2 x c_out
    /// outputs (phase-major), and its output size: one pass over the input instead of one per
    /// phase, then one interleaving pass.
    stacked: Option<(PackedConv, [usize; 2])>,
}

impl PackedDeconv {
    /// `weights` as [c_out][c_in][kh][kw] (tract's OIHW for a deconvolution); the phase
    /// convolutions are planned for `input_hw` with `choice`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        pad_before: [usize; 2],
        input_hw: [usize; 2],
        output_hw: [usize; 2],
        weights: &[f32],
        isa: Isa,
        choice: &KernelChoice,
    ) -> PackedDeconv {
        let [kh, kw] = kernel;
        assert_eq!(weights.len(), c_out * c_in * kh * kw);
        let mut phases = Vec::new();
        let phase_kernel = |a: usize, b: usize| [kh.saturating_sub(a).div_ceil(stride[0]), kw.saturating_sub(b).div_ceil(stride[1])];
        let uniform = (0..stride[0]).all(|a| (0..stride[1]).all(|b| phase_kernel(a, b) == phase_kernel(0, 0))) && kh >= stride[0] && kw >= stride[1];
        let q_max = |axis: usize, ph: usize| (output_hw[axis] - 1 + pad_before[axis]).saturating_sub(ph) / stride[axis];
        // Phase (a, b)'s kernel: rows ky = a + s m reversed, columns likewise, [co][ci][t][u].
        let phase_weights = |a: usize, b: usize, [m, n]: [usize; 2], k: &mut Vec<f32>| {
            for co in 0..c_out {
                for ci in 0..c_in {
                    for t in 0..m {
                        for u in 0..n {
                            let ky = a + stride[0] * (m - 1 - t);
                            let kx = b + stride[1] * (n - 1 - u);
                            k.push(weights[((co * c_in + ci) * kh + ky) * kw + kx]);
                        }
                    }
                }
            }
        };
        let phase_spec = |c_out: usize, [m, n]: [usize; 2], pad_after: [usize; 2]| ConvSpec {
            c_in,
            c_out,
            group: 1,
            kernel: [m, n],
            stride: [1, 1],
            dilation: [1, 1],
            pad_before: [m - 1, n - 1],
            pad_after,
        };
        let stacked = uniform.then(|| {
            // Phase 0 has the most output rows and columns; the others compute (and the
            // interleaving skips) at most one more.
            let mn = phase_kernel(0, 0);
            let (qh, qw) = (q_max(0, 0) + 1, q_max(1, 0) + 1);
            let pad_after = [qh.saturating_sub(input_hw[0]), qw.saturating_sub(input_hw[1])];
            let mut k = Vec::with_capacity(stride[0] * stride[1] * c_out * c_in * mn[0] * mn[1]);
            for a in 0..stride[0] {
                for b in 0..stride[1] {
                    phase_weights(a, b, mn, &mut k);
                }
            }
            let spec = phase_spec(stride[0] * stride[1] * c_out, mn, pad_after);
            (PackedConv::plan_without_winograd(spec, &k, isa, input_hw[0], input_hw[1], choice), [input_hw[0] + pad_after[0], input_hw[1] + pad_after[1]])
        });
        for a in 0..stride[0] {
            for b in 0..stride[1] {
                let [m, n] = phase_kernel(a, b);
                // Phase outputs q = 0..=q_max along each axis (q_max from the last output row of
                // this phase); the phase convolution yields input + pad_after of them.
                let (qy, qx) = (q_max(0, a), q_max(1, b));
                let pad_after = [(qy + 1).saturating_sub(input_hw[0]), (qx + 1).saturating_sub(input_hw[1])];
                let (qh, qw) = (input_hw[0] + pad_after[0], input_hw[1] + pad_after[1]);
                let conv = (m > 0 && n > 0 && stacked.is_none()).then(|| {
                    let mut k = Vec::with_capacity(c_out * c_in * m * n);
                    phase_weights(a, b, [m, n], &mut k);
                    PackedConv::plan_without_winograd(phase_spec(c_out, [m, n], pad_after), &k, isa, input_hw[0], input_hw[1], choice)
                });
                phases.push(Phase { a, b, conv, qh, qw });
            }
        }
        PackedDeconv { c_in, c_out, input_hw, output_hw, stride, pad_before, phases, stacked }
    }

    pub fn macs(&self) -> usize {
        if let Some((conv, _)) = &self.stacked {
            return conv.macs(self.input_hw[0], self.input_hw[1]);
        }
        self.phases.iter().filter_map(|p| p.conv.as_ref()).map(|c| c.macs(self.input_hw[0], self.input_hw[1])).sum()
    }

    /// One CHW image in, c_out x output_hw out.
    pub fn run(&self, input: &[f32], bias: &[f32], out: &mut [f32], par: &dyn Fn(usize, &(dyn Fn(usize) + Sync))) {
        self.run_with(input, bias, &Tail::default(), out, par)
    }

    /// `run`, then `tail` (a residual addition, a clamp) on each output row while it is in
    /// cache: LitePose's heads add two deconvolutions and apply a ReLU, which as separate
    /// passes read and wrote 6 MB planes twice more.
    pub fn run_with(&self, input: &[f32], bias: &[f32], tail: &Tail, out: &mut [f32], par: &dyn Fn(usize, &(dyn Fn(usize) + Sync))) {
        let [h, w] = self.input_hw;
        let [oh, ow] = self.output_hw;
        assert_eq!(input.len(), self.c_in * h * w);
        assert_eq!(out.len(), self.c_out * oh * ow);
        if let Some(add) = tail.add {
            assert_eq!(add.len(), out.len());
        }
        if let Some((conv, [qh, qw])) = &self.stacked {
            return self.run_stacked(conv, *qh, *qw, input, bias, tail, out, par);
        }
        self.run_phases(input, bias, out, par);
        if !tail.is_empty() {
            let dst = SendPtr(out.as_mut_ptr());
            par(self.c_out, &|co: usize| {
                // SAFETY: each task writes only output channel `co`'s plane.
                let plane = unsafe { std::slice::from_raw_parts_mut(dst.get().add(co * oh * ow), oh * ow) };
                tail.apply(plane, co * oh * ow);
            });
        }
    }

    /// Each phase as its own convolution, scattered into the output.
    fn run_phases(&self, input: &[f32], bias: &[f32], out: &mut [f32], par: &dyn Fn(usize, &(dyn Fn(usize) + Sync))) {
        let [h, w] = self.input_hw;
        let [oh, ow] = self.output_hw;
        let mut tmp = Vec::new();
        for p in &self.phases {
            tmp.clear();
            tmp.resize(self.c_out * p.qh * p.qw, 0.0);
            match &p.conv {
                Some(conv) => conv.run(input, h, w, bias, &mut tmp, par),
                None => {
                    for (co, plane) in tmp.chunks_mut(p.qh * p.qw).enumerate() {
                        plane.fill(bias[co]);
                    }
                }
            }
            // Output row oy = q * s + a - pad for every q that lands inside the output.
            let first = |axis: usize, ph: usize| self.pad_before[axis].saturating_sub(ph).div_ceil(self.stride[axis]);
            let (q0, r0) = (first(0, p.a), first(1, p.b));
            let (tmp, dst) = (&tmp, SendPtr(out.as_mut_ptr()));
            par(self.c_out, &|co: usize| {
                let src = &tmp[co * p.qh * p.qw..][..p.qh * p.qw];
                // SAFETY: each task writes only output channel `co`'s plane.
                let dst = unsafe { std::slice::from_raw_parts_mut(dst.get().add(co * oh * ow), oh * ow) };
                for q in q0..p.qh {
                    let oy = q * self.stride[0] + p.a - self.pad_before[0];
                    if oy >= oh {
                        break;
                    }
                    let row = &src[q * p.qw..][..p.qw];
                    let drow = &mut dst[oy * ow..][..ow];
                    let mut ox = r0 * self.stride[1] + p.b - self.pad_before[1];
                    for &v in &row[r0..] {
                        if ox >= ow {
                            break;
                        }
                        drow[ox] = v;
                        ox += self.stride[1];
                    }
                }
            });
        }
    }
}

impl PackedDeconv {
    /// Every phase in one convolution, then each output row interleaved from its phases' rows.
    #[allow(clippy::too_many_arguments)]
    fn run_stacked(&self, conv: &PackedConv, qh: usize, qw: usize, input: &[f32], bias: &[f32], tail: &Tail, out: &mut [f32], par: &dyn Fn(usize, &(dyn Fn(usize) + Sync))) {
        let ([h, w], [sh, sw]) = (self.input_hw, self.stride);
        let phases = sh * sw;
        let stacked_bias: Vec<f32> = (0..phases).flat_map(|_| bias.iter().copied()).collect();
        // The phase outputs: kept per calling thread between runs (MBs, written in full by the
        // convolution), as a fresh zeroed buffer per run measured 1 ms of LitePose-S's 5.7 ms.
        let mut tmp = PHASES.with(|t| std::mem::take(&mut *t.borrow_mut()));
        tmp.resize(phases * self.c_out * qh * qw, 0.0);
        conv.run(input, h, w, &stacked_bias, &mut tmp, par);
        self.interleave(&tmp, qh, qw, tail, out, par);
        PHASES.with(|t| *t.borrow_mut() = tmp);
    }

    /// Output (oy, ox) is phase (a, b) = ((oy + pt) % sh, (ox + pl) % sw) at
    /// ((oy + pt) / sh, (ox + pl) / sw) of `tmp` (phase-major planes).
    fn interleave(&self, tmp: &[f32], qh: usize, qw: usize, tail: &Tail, out: &mut [f32], par: &dyn Fn(usize, &(dyn Fn(usize) + Sync))) {
        let ([oh, ow], [sh, sw], [pt, pl]) = (self.output_hw, self.stride, self.pad_before);
        let dst = SendPtr(out.as_mut_ptr());
        let plane = qh * qw;
        par(self.c_out, &|co: usize| {
            // SAFETY: each task writes only output channel `co`'s plane.
            let dst = unsafe { std::slice::from_raw_parts_mut(dst.get().add(co * oh * ow), oh * ow) };
            for (oy, drow) in dst.chunks_exact_mut(ow).enumerate() {
                let (a, q) = ((oy + pt) % sh, (oy + pt) / sh);
                let src_row = |b: usize| &tmp[((a * sw + b) * self.c_out + co) * plane + q * qw..][..qw];
                if sw == 2 {
                    // Even columns from one phase, odd from the other: a plain interleave.
                    let (b0, b1) = (pl % 2, (1 + pl) % 2);
                    let (x0, x1) = (&src_row(b0)[pl / 2..], &src_row(b1)[(1 + pl) / 2..]);
                    let pairs = ow / 2;
                    for (o, (u, v)) in drow.chunks_exact_mut(2).zip(x0[..pairs].iter().zip(&x1[..pairs])) {
                        o[0] = *u;
                        o[1] = *v;
                    }
                    if ow % 2 == 1 {
                        drow[ow - 1] = x0[pairs];
                    }
                } else {
                    for (ox, d) in drow.iter_mut().enumerate() {
                        *d = src_row((ox + pl) % sw)[(ox + pl) / sw];
                    }
                }
                tail.apply(drow, (co * oh + oy) * ow);
            }
        });
    }
}

/// What follows a deconvolution in the graph, done on its output as it is written:
/// `out = clamp(out + add)`, in that order (tract's Add, then its Max / Min).
#[derive(Debug, Clone, Copy)]
pub struct Tail<'a> {
    /// An operand of the output's shape added to it.
    pub add: Option<&'a [f32]>,
    pub clamp: Clamp,
}

impl Default for Tail<'_> {
    fn default() -> Self {
        Tail { add: None, clamp: Clamp::NONE }
    }
}

impl Tail<'_> {
    fn is_empty(&self) -> bool {
        self.add.is_none() && self.clamp == Clamp::NONE
    }

    /// On `out`, the output elements from `offset` on.
    #[inline]
    fn apply(&self, out: &mut [f32], offset: usize) {
        if let Some(add) = self.add {
            let n = out.len();
            for (o, a) in out.iter_mut().zip(&add[offset..offset + n]) {
                *o += *a;
            }
        }
        // No clamp without one: a NaN stays a NaN, as with no Max / Min in the graph.
        if self.clamp != Clamp::NONE {
            let Clamp { lo, hi } = self.clamp;
            for o in out.iter_mut() {
                *o = o.max(lo).min(hi);
            }
        }
    }
}

/// Plain reference transposed convolution (tests); weights [c_out][c_in][kh][kw].
#[allow(clippy::too_many_arguments)]
pub fn reference(
    c_in: usize,
    c_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad_before: [usize; 2],
    input_hw: [usize; 2],
    output_hw: [usize; 2],
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
) -> Vec<f32> {
    let [h, w] = input_hw;
    let [oh, ow] = output_hw;
    let mut out = vec![0f64; c_out * oh * ow];
    for co in 0..c_out {
        for v in &mut out[co * oh * ow..][..oh * ow] {
            *v = bias[co] as f64;
        }
        for ci in 0..c_in {
            for iy in 0..h {
                for ix in 0..w {
                    for ky in 0..kernel[0] {
                        for kx in 0..kernel[1] {
                            let oy = (iy * stride[0] + ky) as isize - pad_before[0] as isize;
                            let ox = (ix * stride[1] + kx) as isize - pad_before[1] as isize;
                            if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                continue;
                            }
                            out[(co * oh + oy as usize) * ow + ox as usize] += input[(ci * h + iy) * w + ix] as f64
                                * weights[((co * c_in + ci) * kernel[0] + ky) * kernel[1] + kx] as f64;
                        }
                    }
                }
            }
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu_kernels::spec::serial;
    use crate::rng::SplitMix64;

    #[test]
    fn matches_reference_over_random_shapes() {
        let mut rng = SplitMix64(3);
        let mut cases = vec![(24, 17, [4, 4], [2, 2], [1, 1], [16, 16], 0)];
        for _ in 0..120 {
            let k = [1 + rng.below(6), 1 + rng.below(6)];
            let s = [1 + rng.below(3), 1 + rng.below(3)];
            let p = [rng.below(k[0]), rng.below(k[1])];
            cases.push((1 + rng.below(20), 1 + rng.below(20), k, s, p, [1 + rng.below(19), 1 + rng.below(19)], rng.below(2)));
        }
        for (c_in, c_out, k, s, p, hw, adj) in cases {
            // ONNX output size: (in - 1) * s + k - 2p (+ output_padding < s).
            let out_dim = |i: usize| ((hw[i] - 1) * s[i] + k[i] + adj.min(s[i] - 1)).checked_sub(2 * p[i]).filter(|d| *d > 0);
            let (Some(oh), Some(ow)) = (out_dim(0), out_dim(1)) else { continue };
            let input: Vec<f32> = (0..c_in * hw[0] * hw[1]).map(|_| rng.unit_f32() - 0.5).collect();
            let weights: Vec<f32> = (0..c_out * c_in * k[0] * k[1]).map(|_| rng.unit_f32() - 0.5).collect();
            let bias: Vec<f32> = (0..c_out).map(|_| rng.unit_f32() - 0.5).collect();
            let want = reference(c_in, c_out, k, s, p, hw, [oh, ow], &input, &weights, &bias);
            for isa in Isa::available() {
                let d = PackedDeconv::new(c_in, c_out, k, s, p, hw, [oh, ow], &weights, isa, &KernelChoice::default());
                let mut got = vec![f32::NAN; c_out * oh * ow];
                d.run(&input, &bias, &mut got, &serial);
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * (c_in as f32).sqrt() + 1e-6, "{isa:?} k{k:?} s{s:?} p{p:?} {hw:?} at {i}: {a} vs {b}");
                }
                // The fused tail is the plain output plus the operand, clamped: bitwise.
                let add: Vec<f32> = (0..got.len()).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01).collect();
                for clamp in [Clamp::NONE, Clamp { lo: 0.0, hi: f32::INFINITY }, Clamp { lo: -0.1, hi: 0.2 }] {
                    for with_add in [false, true] {
                        let tail = Tail { add: with_add.then_some(&add[..]), clamp };
                        let mut fused = vec![f32::NAN; got.len()];
                        d.run_with(&input, &bias, &tail, &mut fused, &serial);
                        for (i, (f, g)) in fused.iter().zip(&got).enumerate() {
                            let mut e = if with_add { g + add[i] } else { *g };
                            if clamp != Clamp::NONE {
                                e = e.max(clamp.lo).min(clamp.hi);
                            }
                            assert_eq!(f.to_bits(), e.to_bits(), "{isa:?} k{k:?} s{s:?} {hw:?} {clamp:?} add {with_add} at {i}");
                        }
                    }
                }
            }
        }
    }
}
