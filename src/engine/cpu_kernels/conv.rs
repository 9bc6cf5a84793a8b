//! One convolution planned for its input size: the weights packed for the direct kernel
//! (`direct`), the kernel `strategy` chose for it, and that kernel's own form of the weights
//! (`winograd`, `dw_blocked`, `dw_direct`; `dw_rows` works on the direct kernel's). `run`
//! hands the convolution to that kernel.

pub use super::spec::{reference, serial, Clamp, ConvSpec, Isa};
use super::choice::{DenseForce, KernelChoice};
use super::direct::DirectConv;
#[cfg(target_arch = "x86_64")]
use super::spec::SendPtr;
pub use super::strategy::ConvStrategy;
#[cfg(target_arch = "x86_64")]
use super::{dw_blocked::BlockedDw, dw_direct::DirectDw, winograd::Winograd};
#[cfg(target_arch = "x86_64")]
use std::sync::Arc;

/// A convolution with its weights repacked for the kernel chosen at planning.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedConv {
    pub spec: ConvSpec,
    /// Fused into the store; the rewrite may tighten it after planning (ReLU, ReLU6 after).
    pub clamp: Clamp,
    strategy: ConvStrategy,
    /// The input size the strategy was chosen for; `run` takes only that size.
    input_hw: [usize; 2],
    /// The weights for the generic tiles, which the depthwise kernels read per channel too.
    direct: DirectConv,
    /// Depthwise on AVX-512: the same weights with 16 channels per vector (`dw_blocked`).
    #[cfg(target_arch = "x86_64")]
    blocked: Option<Arc<BlockedDw>>,
    /// Depthwise on AVX-512 read unpadded: the masks for this input size (`dw_direct`).
    #[cfg(target_arch = "x86_64")]
    dw_direct: Option<Arc<DirectDw>>,
    /// Dense 3x3 stride 1 on AVX-512 where it pays for the planned input size: the weights
    /// transformed for F(4x4, 3x3). Only then: its 36 matrices are 4x the weights (37 MB for
    /// one of BEVANet-S's 512-channel convolutions, which run direct at 8x16).
    #[cfg(target_arch = "x86_64")]
    winograd: Option<Arc<Winograd>>,
}

impl PackedConv {
    /// Plans `spec` for an `h` x `w` input: the kernel `strategy::choose` picks for `isa` and
    /// `choice`, with `weights` (OIHW: [c_out][c_in / group][kh][kw]) packed for it.
    #[allow(clippy::too_many_arguments)]
    pub fn plan(spec: ConvSpec, weights: &[f32], clamp: Clamp, isa: Isa, h: usize, w: usize, choice: &KernelChoice) -> PackedConv {
        let strategy = super::strategy::choose(&spec, isa, choice, h, w);
        PackedConv::with_strategy(spec, weights, clamp, isa, h, w, strategy).expect("the chooser picks kernels that take the convolution")
    }

    /// `plan` for a deconvolution's phase convolutions, which the Winograd kernel never runs
    /// (its transform was only ever planned for `EdgesightConv`).
    pub(super) fn plan_without_winograd(spec: ConvSpec, weights: &[f32], isa: Isa, h: usize, w: usize, choice: &KernelChoice) -> PackedConv {
        let choice = KernelChoice { dense: Some(DenseForce::Direct), ..choice.clone() };
        PackedConv::plan(spec, weights, Clamp::NONE, isa, h, w, &choice)
    }

    /// `spec` on an `h` x `w` input run by the kernel `strategy` names (tests and comparisons
    /// construct it explicitly); `None` where that kernel cannot run it (`strategy::supports`).
    #[allow(clippy::too_many_arguments)]
    pub fn with_strategy(spec: ConvSpec, weights: &[f32], clamp: Clamp, isa: Isa, h: usize, w: usize, strategy: ConvStrategy) -> Option<PackedConv> {
        if !super::strategy::supports(strategy, &spec, isa, h, w) {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        let (oh, ow) = spec.output_hw(h, w)?;
        #[cfg(target_arch = "x86_64")]
        let (mut blocked, mut dw_direct, mut winograd) = (None, None, None);
        #[cfg(target_arch = "x86_64")]
        match strategy {
            ConvStrategy::Winograd => winograd = Some(Arc::new(Winograd::new(&spec, weights, isa)?)),
            ConvStrategy::DepthwiseBlocked => {
                blocked = Some(Arc::new(BlockedDw::new(spec.group, spec.kernel, spec.stride, spec.dilation, spec.pad_before, weights)?))
            }
            ConvStrategy::DepthwiseDirect => {
                dw_direct = Some(Arc::new(DirectDw::new(h, w, oh, ow, spec.kernel, spec.stride, spec.dilation, spec.pad_before)?))
            }
            ConvStrategy::DepthwiseRows | ConvStrategy::Direct => {}
        }
        Some(PackedConv {
            direct: DirectConv::new(spec.clone(), weights, isa),
            spec,
            clamp,
            strategy,
            input_hw: [h, w],
            #[cfg(target_arch = "x86_64")]
            blocked,
            #[cfg(target_arch = "x86_64")]
            dw_direct,
            #[cfg(target_arch = "x86_64")]
            winograd,
        })
    }

    /// The weights in OIHW order, as planned.
    pub fn oihw(&self) -> Vec<f32> {
        self.direct.oihw()
    }

    /// A blocked depthwise convolution (`ConvStrategy::DepthwiseBlocked`) of the output of
    /// `expansion`, run on the expansion's input (`input`: its c_in planes of the planned size):
    /// the expanded planes are never written out. `None` for any other strategy.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    pub fn run_expanded(&self, expansion: &super::dw_blocked::Expansion, input: &[f32], bias: &[f32], out: &mut [f32], par: &dyn Fn(usize, &(dyn Fn(usize) + Sync))) -> Option<()> {
        let bd = self.blocked.as_ref().filter(|_| self.strategy == ConvStrategy::DepthwiseBlocked)?;
        let [h, w] = self.input_hw;
        let (oh, ow) = self.spec.output_hw(h, w)?;
        assert_eq!(input.len(), expansion.c_in() * h * w);
        assert_eq!(out.len(), self.spec.c_out * oh * ow);
        assert_eq!(bias.len(), self.spec.c_out);
        let out = SendPtr(out.as_mut_ptr());
        let threads = super::pool::threads();
        // SAFETY: as in `run`'s blocked path: each task writes only its own block's channels in
        // its own band of rows of the c_out x oh x ow output (asserted above).
        par(bd.tasks(oh, threads), &|t: usize| unsafe { bd.run_task(t, threads, input, Some(expansion), h, w, bias, self.clamp, out.get(), oh, ow) });
        Some(())
    }

    /// The input size the convolution was planned for.
    pub fn input_hw(&self) -> [usize; 2] {
        self.input_hw
    }

    /// The kernel this convolution runs with.
    pub fn strategy(&self) -> ConvStrategy {
        self.strategy
    }

    /// Multiply-accumulates for an input of `h` x `w`.
    pub fn macs(&self, h: usize, w: usize) -> usize {
        self.direct.macs(h, w)
    }

    /// Runs on one CHW image of the planned size; `out` receives c_out x oh x ow. `par` runs
    /// the kernel's tasks (any closure running a parallel for-each: `pool::parallel` spreads
    /// them over the worker threads, `serial` keeps them on the caller's).
    pub fn run(&self, input: &[f32], h: usize, w: usize, bias: &[f32], out: &mut [f32], par: &dyn Fn(usize, &(dyn Fn(usize) + Sync))) {
        assert_eq!([h, w], self.input_hw, "convolution planned for another input size");
        let s = &self.spec;
        let (oh, ow) = s.output_hw(h, w).expect("output size checked at load");
        assert_eq!(input.len(), s.c_in * h * w);
        assert_eq!(out.len(), s.c_out * oh * ow);
        assert_eq!(bias.len(), s.c_out);
        match self.strategy {
            #[cfg(target_arch = "x86_64")]
            ConvStrategy::Winograd => {
                let wg = self.winograd.as_ref().expect("planned with Winograd");
                wg.run(input, h, w, bias, self.clamp, out, par);
            }
            #[cfg(target_arch = "x86_64")]
            ConvStrategy::DepthwiseBlocked => {
                let bd = self.blocked.as_ref().expect("planned blocked");
                let out = SendPtr(out.as_mut_ptr());
                // SAFETY: `out` holds c_out x oh x ow floats (asserted above); each task writes
                // only its own block's channels in its own band of rows.
                let threads = super::pool::threads();
                par(bd.tasks(oh, threads), &|t: usize| unsafe { bd.run_task(t, threads, input, None, h, w, bias, self.clamp, out.get(), oh, ow) });
            }
            #[cfg(target_arch = "x86_64")]
            ConvStrategy::DepthwiseDirect => {
                let d = self.dw_direct.as_ref().expect("planned direct depthwise");
                let (g, kh, kw) = (s.group, s.kernel[0], s.kernel[1]);
                let out = SendPtr(out.as_mut_ptr());
                // Channels in runs of at least 32K multiply-adds per task: one task per channel
                // made 1440 channels of 8x8 slower on two threads than on one (task handoffs).
                let per = (1usize << 15).div_ceil(oh * ow * kh * kw).clamp(1, g);
                par(g.div_ceil(per), &|t: usize| {
                    for c in t * per..((t + 1) * per).min(g) {
                        // SAFETY: each task writes only its own channels' output planes.
                        let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(c * oh * ow), oh * ow) };
                        d.run(&input[c * h * w..][..h * w], self.direct.channel_weights(c), bias[c], self.clamp, dst);
                    }
                });
            }
            ConvStrategy::DepthwiseRows => self.direct.run(input, h, w, bias, self.clamp, out, par, true),
            ConvStrategy::Direct => self.direct.run(input, h, w, bias, self.clamp, out, par, false),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("AVX-512 kernels planned without AVX-512"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu_kernels::choice::avx512_or_skip;
    use crate::rng::SplitMix64;

    /// Every kernel but Winograd (tested in `winograd` on its own, to its own bound) that takes
    /// the shape: the one the chooser picks first, then each other one constructed explicitly.
    const KERNELS: [ConvStrategy; 4] = [ConvStrategy::Direct, ConvStrategy::DepthwiseRows, ConvStrategy::DepthwiseDirect, ConvStrategy::DepthwiseBlocked];

    fn check(spec: ConvSpec, h: usize, w: usize, clamp: Clamp, rng: &mut SplitMix64) {
        let cig = spec.c_in / spec.group;
        let n_w = spec.c_out * cig * spec.kernel[0] * spec.kernel[1];
        let input: Vec<f32> = (0..spec.c_in * h * w).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
        let weights: Vec<f32> = (0..n_w).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
        let bias: Vec<f32> = (0..spec.c_out).map(|_| rng.unit_f32() - 0.5).collect();
        let want = reference(&spec, &input, h, w, &weights, &bias, clamp);
        let scale = (cig * spec.kernel[0] * spec.kernel[1]) as f32;
        for isa in Isa::available() {
            let chosen = PackedConv::plan(spec.clone(), &weights, clamp, isa, h, w, &KernelChoice::default());
            let others = KERNELS.into_iter().filter(|k| *k != chosen.strategy());
            let others = others.filter_map(|k| PackedConv::with_strategy(spec.clone(), &weights, clamp, isa, h, w, k));
            for packed in std::iter::once(chosen.clone()).chain(others) {
                let kernel = packed.strategy();
                let (oh, ow) = spec.output_hw(h, w).unwrap();
                let mut got = vec![f32::NAN; spec.c_out * oh * ow];
                packed.run(&input, h, w, &bias, &mut got, &serial);
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * scale.sqrt() + 1e-6 * scale, "{isa:?} {kernel:?} {spec:?} {h}x{w} at {i}: {a} vs {b}");
                }
                // Tasks spread over threads (as with --threads N) give the same bits.
                let mut par_got = vec![f32::NAN; spec.c_out * oh * ow];
                packed.run(&input, h, w, &bias, &mut par_got, &three_threads);
                assert!(got.iter().zip(&par_got).all(|(a, b)| a.to_bits() == b.to_bits()), "{isa:?} {kernel:?} {spec:?} threaded");
            }
        }
    }

    /// Depthwise row tiles on rows wider than 32 (below that the blocked kernel takes 5x5 and
    /// up): the unrolled 5x5 kernel, the generic one for 3x3 and 7x7, row counts that leave
    /// rows for the generic tiles, uneven padding.
    #[test]
    fn depthwise_row_tiles() {
        let mut rng = SplitMix64(21);
        for (k, h, w, pb, pa) in [(5, 9, 37, 2, 2), (5, 4, 50, 1, 3), (5, 13, 70, 2, 2), (7, 11, 45, 3, 3), (3, 6, 40, 1, 1), (5, 8, 33, 0, 4)] {
            let spec = ConvSpec { c_in: 3, c_out: 3, group: 3, kernel: [k, k], stride: [1, 1], dilation: [1, 1], pad_before: [pb, pb], pad_after: [pa, pa] };
            check(spec, h, w, Clamp { lo: 0.0, hi: 6.0 }, &mut rng);
        }
    }

    /// Runs tasks on three threads, interleaved.
    pub fn three_threads(n: usize, f: &(dyn Fn(usize) + Sync)) {
        std::thread::scope(|s| {
            for t in 0..3 {
                s.spawn(move || (t..n).step_by(3).for_each(f));
            }
        });
    }

    #[test]
    fn matches_reference_over_random_shapes() {
        let mut rng = SplitMix64(11);
        for case in 0..300 {
            let depthwise = case % 3 == 0;
            let group = if depthwise { 1 + rng.below(37) } else if case % 3 == 1 { 1 } else { 1 + rng.below(4) };
            let (c_in, c_out) = if depthwise {
                (group, group)
            } else {
                (group * (1 + rng.below(13)), group * (1 + rng.below(21)))
            };
            let k = [1 + rng.below(if case % 7 == 0 { 35 } else { 7 }), 1 + rng.below(if case % 5 == 0 { 35 } else { 7 })];
            let spec = ConvSpec {
                c_in,
                c_out,
                group,
                kernel: k,
                stride: [1 + rng.below(3), 1 + rng.below(3)],
                dilation: [1 + rng.below(3), 1 + rng.below(3)],
                pad_before: [rng.below(k[0] + 1), rng.below(k[1] + 1)],
                pad_after: [rng.below(k[0] + 1), rng.below(k[1] + 1)],
            };
            let h = 1 + rng.below(40);
            let w = 1 + rng.below(40);
            if spec.output_hw(h, w).is_none() {
                continue;
            }
            let clamp = match case % 4 {
                0 => Clamp::NONE,
                1 => Clamp { lo: 0.0, hi: f32::INFINITY },
                _ => Clamp { lo: 0.0, hi: 0.5 },
            };
            check(spec, h, w, clamp, &mut rng);
        }
    }

    #[test]
    fn model_shapes() {
        let mut rng = SplitMix64(5);
        let dw = |c, k: [usize; 2], s, d: [usize; 2], p: [usize; 2]| ConvSpec {
            c_in: c,
            c_out: c,
            group: c,
            kernel: k,
            stride: [s, s],
            dilation: d,
            pad_before: p,
            pad_after: p,
        };
        // LitePose 7x7 (strides 1 and 2), BEVANet 1x11 / 11x1 dilated strips and 5x5, MobileNet 3x3.
        check(dw(24, [7, 7], 2, [1, 1], [3, 3]), 33, 35, Clamp::NONE, &mut rng);
        check(dw(17, [7, 7], 1, [1, 1], [3, 3]), 16, 16, Clamp { lo: 0.0, hi: 6.0 }, &mut rng);
        check(dw(19, [1, 11], 1, [1, 2], [0, 10]), 20, 37, Clamp::NONE, &mut rng);
        check(dw(19, [11, 1], 1, [3, 1], [15, 0]), 37, 20, Clamp::NONE, &mut rng);
        check(dw(21, [5, 5], 1, [1, 1], [2, 2]), 16, 16, Clamp::NONE, &mut rng);
        check(dw(33, [3, 3], 2, [1, 1], [0, 0]), 31, 31, Clamp::NONE, &mut rng);
        // Row-tile depthwise: 1, 2, 3 and many vectors per row, dilation, strides, row remainders.
        check(dw(11, [7, 7], 2, [1, 1], [3, 3]), 67, 97, Clamp::NONE, &mut rng);
        check(dw(6, [5, 5], 3, [2, 1], [4, 2]), 80, 120, Clamp::NONE, &mut rng);
        check(dw(13, [7, 7], 1, [2, 1], [6, 3]), 45, 70, Clamp::NONE, &mut rng);
        check(dw(20, [3, 3], 1, [1, 1], [1, 1]), 28, 28, Clamp { lo: 0.0, hi: 6.0 }, &mut rng);
        check(dw(9, [7, 7], 1, [1, 1], [3, 3]), 27, 112, Clamp::NONE, &mut rng);
        check(dw(5, [5, 3], 1, [1, 2], [2, 2]), 50, 40, Clamp::NONE, &mut rng);
        let pw = |ci, co| ConvSpec {
            c_in: ci,
            c_out: co,
            group: 1,
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pad_before: [0, 0],
            pad_after: [0, 0],
        };
        check(pw(16, 97), 17, 19, Clamp { lo: 0.0, hi: 6.0 }, &mut rng);
        check(pw(96, 17), 16, 16, Clamp::NONE, &mut rng);
        // Many channels on a 4 KiB plane: copied to an unaliased stride instead of read in place.
        check(pw(260, 70), 32, 32, Clamp::NONE, &mut rng);
        let mut dense = pw(13, 35);
        dense.kernel = [3, 3];
        dense.stride = [2, 2];
        dense.pad_before = [1, 1];
        dense.pad_after = [1, 1];
        check(dense.clone(), 29, 30, Clamp::NONE, &mut rng);
        // More input channels than one chunk (partial sums through the output; clamp last).
        let mut deep = dense;
        deep.c_in = 70;
        deep.c_out = 19;
        deep.stride = [1, 1];
        check(deep.clone(), 13, 21, Clamp { lo: 0.0, hi: 0.3 }, &mut rng);
        deep.group = 2;
        deep.c_in = 2 * 37;
        deep.c_out = 2 * 9;
        check(deep, 11, 17, Clamp { lo: 0.0, hi: f32::INFINITY }, &mut rng);
    }

    fn depthwise(c: usize, k: [usize; 2], s: [usize; 2], d: [usize; 2], pb: [usize; 2], pa: [usize; 2]) -> ConvSpec {
        ConvSpec { c_in: c, c_out: c, group: c, kernel: k, stride: s, dilation: d, pad_before: pb, pad_after: pa }
    }

    /// Runs `kernel` explicitly (not through the chooser) on each shape against the plain
    /// reference, serially and on three threads (bitwise the same); panics if the kernel does
    /// not take a shape.
    fn check_kernel(kernel: ConvStrategy, shapes: &[(ConvSpec, usize, usize)], rng: &mut SplitMix64) {
        let isa = Isa::fast().expect("checked by the caller");
        for (case, (spec, h, w)) in shapes.iter().enumerate() {
            let (h, w) = (*h, *w);
            let taps = spec.kernel[0] * spec.kernel[1];
            let cig = spec.c_in / spec.group;
            let input: Vec<f32> = (0..spec.c_in * h * w).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
            let weights: Vec<f32> = (0..spec.c_out * cig * taps).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
            let bias: Vec<f32> = (0..spec.c_out).map(|_| rng.unit_f32() - 0.5).collect();
            let clamp = if case % 2 == 0 { Clamp { lo: 0.0, hi: 6.0 } } else { Clamp::NONE };
            let want = reference(spec, &input, h, w, &weights, &bias, clamp);
            let packed = PackedConv::with_strategy(spec.clone(), &weights, clamp, isa, h, w, kernel).unwrap_or_else(|| panic!("{kernel:?} does not take {spec:?} {h}x{w}"));
            let (oh, ow) = spec.output_hw(h, w).unwrap();
            let mut got = vec![f32::NAN; spec.c_out * oh * ow];
            packed.run(&input, h, w, &bias, &mut got, &serial);
            let tol = 1e-5 * ((cig * taps) as f32).sqrt() + 1e-6 * (cig * taps) as f32;
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= tol, "{kernel:?} {spec:?} {h}x{w} at {i}: {a} vs {b}");
            }
            let mut par_got = vec![f32::NAN; spec.c_out * oh * ow];
            packed.run(&input, h, w, &bias, &mut par_got, &three_threads);
            assert!(got.iter().zip(&par_got).all(|(a, b)| a.to_bits() == b.to_bits()), "{kernel:?} {spec:?} {h}x{w} threaded");
        }
    }

    /// The 3x3 row-tile depthwise path, which the chooser leaves to the blocked and direct
    /// kernels (only `EDGESIGHT_DW=rows` reached it): stride 1 and 2, dilation, uneven
    /// padding, rows of 2, 3 and many vectors, row counts that leave rows for the generic
    /// tiles, channel counts around a block of 16.
    #[test]
    fn depthwise_rows_3x3() {
        if !avx512_or_skip("conv::depthwise_rows_3x3") {
            return;
        }
        let mut rng = SplitMix64(33);
        let shapes = [
            (depthwise(16, [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]), 28, 28),
            (depthwise(17, [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]), 13, 40),
            (depthwise(3, [3, 3], [1, 1], [1, 1], [0, 0], [2, 2]), 9, 70),
            (depthwise(24, [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]), 64, 64),
            (depthwise(5, [3, 3], [2, 2], [1, 1], [0, 1], [1, 0]), 31, 97),
            (depthwise(7, [3, 3], [1, 1], [2, 2], [2, 2], [2, 2]), 20, 50),
            (depthwise(2, [3, 3], [1, 2], [1, 3], [1, 3], [1, 3]), 11, 120),
            (depthwise(33, [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]), 7, 17),
        ];
        check_kernel(ConvStrategy::DepthwiseRows, &shapes, &mut rng);
    }

    /// Every AVX-512 depthwise kernel constructed explicitly on each shape class it takes:
    /// 3x3, 5x5 (the unrolled row tile), 7x7, strips, strides 1-2 (and 3 for the row tiles),
    /// dilation, narrow and wide maps, channel counts that leave a block of 16 part empty.
    #[test]
    fn avx512_depthwise_kernels_on_their_shapes() {
        if !avx512_or_skip("conv::avx512_depthwise_kernels_on_their_shapes") {
            return;
        }
        let mut rng = SplitMix64(34);
        let common = [
            (depthwise(16, [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]), 16, 16),
            (depthwise(17, [5, 5], [1, 1], [1, 1], [2, 2], [2, 2]), 37, 45),
            (depthwise(24, [7, 7], [2, 2], [1, 1], [3, 3], [3, 3]), 33, 35),
            (depthwise(19, [1, 11], [1, 1], [1, 2], [0, 10], [0, 10]), 20, 37),
            (depthwise(9, [11, 1], [1, 1], [3, 1], [15, 0], [15, 0]), 37, 20),
            (depthwise(6, [5, 3], [2, 1], [2, 1], [4, 2], [4, 2]), 30, 66),
        ];
        for kernel in [ConvStrategy::DepthwiseBlocked, ConvStrategy::DepthwiseDirect, ConvStrategy::DepthwiseRows] {
            check_kernel(kernel, &common, &mut rng);
        }
        // Column stride 3: the row tiles only.
        check_kernel(ConvStrategy::DepthwiseRows, &[(depthwise(6, [5, 5], [3, 3], [2, 1], [4, 2], [4, 2]), 80, 120)], &mut rng);
        // One channel, group 1: the direct depthwise kernel takes it too.
        let one = ConvSpec { group: 1, ..depthwise(1, [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]) };
        check_kernel(ConvStrategy::DepthwiseDirect, &[(one, 21, 30)], &mut rng);
    }

    /// The generic kernel on every ISA here, explicitly, on each class it takes: dense,
    /// pointwise (flat), grouped and depthwise.
    #[test]
    fn direct_kernel_on_its_shapes() {
        let mut rng = SplitMix64(35);
        let dense = ConvSpec { c_in: 13, c_out: 35, group: 1, kernel: [3, 3], stride: [2, 2], dilation: [1, 1], pad_before: [1, 1], pad_after: [1, 1] };
        let pointwise = ConvSpec { c_in: 16, c_out: 97, group: 1, kernel: [1, 1], stride: [1, 1], dilation: [1, 1], pad_before: [0, 0], pad_after: [0, 0] };
        let grouped = ConvSpec { c_in: 2 * 37, c_out: 2 * 9, group: 2, ..dense.clone() };
        // Weights four times the padded input and more: run block-major over every tile.
        let weight_bound = ConvSpec { c_in: 96, c_out: 70, stride: [1, 1], ..dense.clone() };
        let weight_bound_s2 = ConvSpec { c_in: 80, c_out: 41, ..dense.clone() };
        let shapes = [
            (dense, 29, 30),
            (pointwise, 17, 19),
            (grouped, 11, 17),
            (depthwise(20, [7, 7], [1, 1], [1, 1], [3, 3], [3, 3]), 27, 40),
            (weight_bound, 5, 7),
            (weight_bound_s2, 9, 14),
        ];
        for isa in Isa::available() {
            for (spec, h, w) in &shapes {
                let (h, w) = (*h, *w);
                let cig = spec.c_in / spec.group;
                let taps = spec.kernel[0] * spec.kernel[1];
                let input: Vec<f32> = (0..spec.c_in * h * w).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
                let weights: Vec<f32> = (0..spec.c_out * cig * taps).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
                let bias: Vec<f32> = (0..spec.c_out).map(|_| rng.unit_f32() - 0.5).collect();
                let want = reference(spec, &input, h, w, &weights, &bias, Clamp::NONE);
                let packed = PackedConv::with_strategy(spec.clone(), &weights, Clamp::NONE, isa, h, w, ConvStrategy::Direct).expect("the direct kernel takes every shape");
                let (oh, ow) = spec.output_hw(h, w).unwrap();
                let mut got = vec![f32::NAN; spec.c_out * oh * ow];
                packed.run(&input, h, w, &bias, &mut got, &three_threads);
                let scale = (cig * taps) as f32;
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * scale.sqrt() + 1e-6 * scale, "{isa:?} {spec:?} {h}x{w} at {i}: {a} vs {b}");
                }
            }
        }
    }

    // CPU time of this thread: the machine is shared, and wall time counts other processes.
    use crate::stats::thread_cpu_seconds;

    /// `cargo test --release --lib cpu_kernels -- --ignored --nocapture`: GMAC/s per shape
    /// (thread CPU time, Linux x86_64).
    #[test]
    #[ignore]
    fn speed() {
        let mut rng = SplitMix64(1);
        let cases = [
            ("dw7x7 s2 96x128x128", 96, 96, 96, 7, 2, 1, 3, 128, 128),
            ("dw7x7 s1 96x64x64", 96, 96, 96, 7, 1, 1, 3, 64, 64),
            ("dw7x7 s1 480x16x16", 480, 480, 480, 7, 1, 1, 3, 16, 16),
            ("dw3x3 s1 144x64x64", 144, 144, 144, 3, 1, 1, 1, 64, 64),
            ("dw3x3 s2 144x128x128", 144, 144, 144, 3, 2, 1, 1, 128, 128),
            ("pw 16->96 128x128", 16, 96, 1, 1, 1, 1, 0, 128, 128),
            ("pw 96->24 64x64", 96, 24, 1, 1, 1, 1, 0, 64, 64),
            ("pw 24->144 128x128", 24, 144, 1, 1, 1, 1, 0, 128, 128),
            ("pw 16->96 224x224", 16, 96, 1, 1, 1, 1, 0, 224, 224),
            ("3x3 64->64 64x128", 64, 64, 1, 3, 1, 1, 1, 64, 128),
            ("3x3 128->128 64x128", 128, 128, 1, 3, 1, 1, 1, 64, 128),
        ];
        for (name, ci, co, g, k, s, d, p, h, w) in cases {
            let spec = ConvSpec {
                c_in: ci,
                c_out: co,
                group: g,
                kernel: [k, k],
                stride: [s, s],
                dilation: [d, d],
                pad_before: [p, p],
                pad_after: [p, p],
            };
            let input: Vec<f32> = (0..ci * h * w).map(|_| rng.unit_f32()).collect();
            let weights: Vec<f32> = (0..co * ci / g * k * k).map(|_| rng.unit_f32()).collect();
            let bias = vec![0f32; co];
            // The direct and depthwise kernels, as this test always measured (Winograd: `examples/conv_shapes`).
            let no_winograd = KernelChoice { dense: Some(DenseForce::Direct), ..KernelChoice::default() };
            let packed = PackedConv::plan(spec.clone(), &weights, Clamp::NONE, Isa::fast().unwrap_or(Isa::Portable), h, w, &no_winograd);
            let (oh, ow) = spec.output_hw(h, w).unwrap();
            let mut out = vec![0f32; co * oh * ow];
            let mut best = f64::MAX;
            for _ in 0..10 {
                let t = thread_cpu_seconds();
                packed.run(&input, h, w, &bias, &mut out, &serial);
                best = best.min(thread_cpu_seconds() - t);
            }
            let macs = packed.macs(h, w) as f64;
            println!("{name:<24} {:>8.3} ms {:>7.1} GMAC/s", best * 1e3, macs / best / 1e9);
        }
    }
}
