//! Which kernel runs a convolution: chosen once, when the convolution is planned for its input
//! size, from the spec, the instruction set and the caller's `KernelChoice` (never from the
//! environment), and stored with the packed weights (`conv::PackedConv`).

use super::choice::{DenseForce, DepthwiseForce, KernelChoice};
use super::spec::{ConvSpec, Isa};
#[cfg(target_arch = "x86_64")]
use super::{dw_blocked::BlockedDw, dw_direct::DirectDw, winograd::Winograd};

/// The kernels one convolution can run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvStrategy {
    /// Winograd F(4x4, 3x3) (`winograd`): dense 3x3 stride 1 on AVX-512 or AVX2.
    Winograd,
    /// Depthwise with 16 channels in the lanes (`dw_blocked`), AVX-512.
    DepthwiseBlocked,
    /// Depthwise read from the unpadded input (`dw_direct`), AVX-512.
    DepthwiseDirect,
    /// Depthwise through the padded copy, full groups of rows by the row tiles (`dw_rows`),
    /// the rest by the generic tiles; AVX-512.
    DepthwiseRows,
    /// The generic direct kernel (`direct`): dense, grouped or depthwise, every ISA.
    Direct,
}

/// Whether the 1x1, stride-1, unpadded convolution `direct` runs as one long row per channel.
pub(super) fn flat(spec: &ConvSpec) -> bool {
    spec.kernel == [1, 1] && spec.stride == [1, 1] && spec.pad_before == [0, 0] && spec.pad_after == [0, 0]
}

/// Whether `strategy` can run `spec` on an `h` x `w` input with `isa` (what each kernel's
/// constructor accepts).
pub fn supports(strategy: ConvStrategy, spec: &ConvSpec, isa: Isa, h: usize, w: usize) -> bool {
    let Some((oh, ow)) = spec.output_hw(h, w) else { return strategy == ConvStrategy::Direct };
    let (g, cig, cog) = (spec.group, spec.c_in / spec.group, spec.c_out / spec.group);
    #[cfg(target_arch = "x86_64")]
    let avx512 = isa == Isa::Avx512;
    #[cfg(not(target_arch = "x86_64"))]
    let avx512 = {
        let _ = isa;
        false
    };
    let _ = (oh, ow);
    match strategy {
        ConvStrategy::Direct => true,
        #[cfg(target_arch = "x86_64")]
        ConvStrategy::Winograd => Winograd::supports(spec, isa),
        #[cfg(target_arch = "x86_64")]
        ConvStrategy::DepthwiseBlocked => avx512 && g == spec.c_in && g == spec.c_out && g > 1 && BlockedDw::supports(spec.stride),
        #[cfg(target_arch = "x86_64")]
        ConvStrategy::DepthwiseDirect => avx512 && cig == 1 && cog == 1 && DirectDw::supports(oh, ow, spec.stride),
        ConvStrategy::DepthwiseRows => avx512 && g > 1 && cig == 1 && cog == 1 && !flat(spec),
        #[cfg(not(target_arch = "x86_64"))]
        _ => false,
    }
}

/// The kernel for `spec` on an `h` x `w` input, in this order of preference:
/// 1. Winograd where it pays at that size (`Winograd::pays`), unless `choice.dense` forces
///    the direct kernel;
/// 2. blocked depthwise (`blocked_depthwise`);
/// 3. direct depthwise (`direct_depthwise`);
/// 4. depthwise row tiles on rows wider than one vector (rows of one vector gain nothing: the
///    generic 8-position tiles measured faster there);
/// 5. the generic direct kernel.
///
/// A forced depthwise kernel (`choice.depthwise`) only applies where that kernel can run.
pub fn choose(spec: &ConvSpec, isa: Isa, choice: &KernelChoice, h: usize, w: usize) -> ConvStrategy {
    let can = |s: ConvStrategy| supports(s, spec, isa, h, w);
    #[cfg(target_arch = "x86_64")]
    if can(ConvStrategy::Winograd) && Winograd::pays(spec, h, w) && choice.dense != Some(DenseForce::Direct) {
        return ConvStrategy::Winograd;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = DenseForce::Direct;
    if can(ConvStrategy::DepthwiseBlocked) && blocked_depthwise(spec, choice.depthwise) {
        return ConvStrategy::DepthwiseBlocked;
    }
    if can(ConvStrategy::DepthwiseDirect) && direct_depthwise(spec, choice.depthwise) {
        return ConvStrategy::DepthwiseDirect;
    }
    if can(ConvStrategy::DepthwiseRows) && spec.output_hw(h, w).is_some_and(|(_, ow)| ow > 16) {
        return ConvStrategy::DepthwiseRows;
    }
    ConvStrategy::Direct
}

/// Whether a depthwise convolution that `blocked_depthwise` leaves reads its input unpadded
/// (`dw_direct`) rather than through the padded copy and row tiles: for 3x3 and smaller,
/// where the copy costs as much as the taps (measured 1.2-3x faster, `examples/conv_shapes`).
/// `EDGESIGHT_DW=direct|rows|blocked` forces one for comparisons.
fn direct_depthwise(spec: &ConvSpec, forced: Option<DepthwiseForce>) -> bool {
    match forced {
        Some(DepthwiseForce::Direct) => true,
        Some(DepthwiseForce::Rows) | Some(DepthwiseForce::Blocked) => false,
        None => spec.kernel[0] * spec.kernel[1] <= 9,
    }
}

/// Whether a depthwise convolution runs with channels in the lanes (`dw_blocked`): kernels
/// of 9 taps and more, unless the last block of 16 channels would leave more than a fifth
/// of all lanes empty (24 channels fill 24 of 32).
/// - Large kernels (`examples/conv_shapes`, one thread, row tiles against blocked): 7x7 on
///   112x112 x 96 channels 1.80-1.88 against 1.23-1.28 ms, on 28x28 x 720 1.59-1.72 against
///   0.73-0.78 ms, stride 2 from 224x224 4.3-7.5 against 2.3-2.7 ms; 5x5 on 64x64 even.
/// - 3x3 inside the models (`examples/profile_ops`, all 3x3 depthwise forced one way then
///   the other, ms per run at 1 / 2 threads): MoveNet 5.82 / 2.84 blocked against 6.71 /
///   3.20 direct, BEVANet-S 3.56 / 1.96 against 3.83 / 1.88, LitePose-S 0.82 / 0.46 against
///   1.08 / 0.59, selfie even. Alone, on an input the caller did not just write, the direct
///   kernel measured faster on maps 32 wide and more (0.75-1.1x), so the models decided.
fn blocked_depthwise(spec: &ConvSpec, forced: Option<DepthwiseForce>) -> bool {
    match forced {
        Some(DepthwiseForce::Blocked) => true,
        Some(DepthwiseForce::Direct) | Some(DepthwiseForce::Rows) => false,
        None => {
            let taps = spec.kernel[0] * spec.kernel[1];
            let c = spec.c_out;
            taps >= 9 && 5 * (c.div_ceil(16) * 16 - c) <= c
        }
    }
}

// The chooser's decisions for every ISA (pure: no kernel runs, so AVX-512 need not be here).
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn dw(c: usize, k: usize, s: usize) -> ConvSpec {
        let p = k / 2;
        ConvSpec { c_in: c, c_out: c, group: c, kernel: [k, k], stride: [s, s], dilation: [1, 1], pad_before: [p, p], pad_after: [p, p] }
    }

    fn dense(ci: usize, co: usize, k: usize) -> ConvSpec {
        let p = k / 2;
        ConvSpec { c_in: ci, c_out: co, group: 1, kernel: [k, k], stride: [1, 1], dilation: [1, 1], pad_before: [p, p], pad_after: [p, p] }
    }

    /// The choices the measurements above made, for AVX-512; AVX2 has Winograd too, and the
    /// generic kernel for the rest.
    #[test]
    fn chooses_as_measured() {
        let none = KernelChoice::default();
        for isa in [Isa::Portable, Isa::Avx2] {
            for spec in [dw(96, 7, 1), dw(144, 3, 2), dense(16, 96, 1)] {
                assert_eq!(choose(&spec, isa, &none, 64, 64), ConvStrategy::Direct, "{isa:?} {spec:?}");
            }
        }
        assert_eq!(choose(&dense(64, 64, 3), Isa::Portable, &none, 64, 64), ConvStrategy::Direct);
        assert_eq!(choose(&dense(64, 64, 3), Isa::Avx2, &none, 64, 64), ConvStrategy::Winograd);
        assert_eq!(choose(&dense(32, 32, 3), Isa::Avx2, &none, 64, 128), ConvStrategy::Direct);
        let isa = Isa::Avx512;
        // 7x7 and 3x3 over full blocks of 16 channels: blocked.
        assert_eq!(choose(&dw(96, 7, 1), isa, &none, 112, 112), ConvStrategy::DepthwiseBlocked);
        assert_eq!(choose(&dw(144, 3, 2), isa, &none, 128, 128), ConvStrategy::DepthwiseBlocked);
        // 3x3 on 17 channels (15 of 32 lanes empty): direct; 5x5 there: row tiles, or the
        // generic tiles on rows of one vector.
        assert_eq!(choose(&dw(17, 3, 1), isa, &none, 64, 64), ConvStrategy::DepthwiseDirect);
        assert_eq!(choose(&dw(17, 5, 1), isa, &none, 64, 64), ConvStrategy::DepthwiseRows);
        assert_eq!(choose(&dw(17, 5, 1), isa, &none, 16, 16), ConvStrategy::Direct);
        // Column stride 3: neither depthwise kernel that reads unpadded or blocked input.
        assert_eq!(choose(&dw(96, 3, 3), isa, &none, 64, 64), ConvStrategy::DepthwiseRows);
        // Winograd where it pays: 64 channels on 64x128, not 32, not on 8x16.
        assert_eq!(choose(&dense(64, 64, 3), isa, &none, 64, 128), ConvStrategy::Winograd);
        assert_eq!(choose(&dense(32, 32, 3), isa, &none, 64, 128), ConvStrategy::Direct);
        assert_eq!(choose(&dense(512, 512, 3), isa, &none, 8, 16), ConvStrategy::Direct);
        assert_eq!(choose(&dense(16, 96, 1), isa, &none, 64, 64), ConvStrategy::Direct);
    }

    #[test]
    fn forced_kernels_apply_where_they_run() {
        let isa = Isa::Avx512;
        let force = |d| KernelChoice { depthwise: Some(d), ..KernelChoice::default() };
        assert_eq!(choose(&dw(96, 3, 1), isa, &force(DepthwiseForce::Rows), 64, 64), ConvStrategy::DepthwiseRows);
        assert_eq!(choose(&dw(96, 7, 1), isa, &force(DepthwiseForce::Direct), 64, 64), ConvStrategy::DepthwiseDirect);
        assert_eq!(choose(&dw(17, 3, 1), isa, &force(DepthwiseForce::Blocked), 64, 64), ConvStrategy::DepthwiseBlocked);
        // Blocked forced where it cannot run (column stride 3): the next that can.
        assert_eq!(choose(&dw(96, 3, 3), isa, &force(DepthwiseForce::Blocked), 64, 64), ConvStrategy::DepthwiseRows);
        // Forces change nothing without AVX-512.
        assert_eq!(choose(&dw(96, 3, 1), Isa::Avx2, &force(DepthwiseForce::Rows), 64, 64), ConvStrategy::Direct);
        let no_winograd = KernelChoice { dense: Some(DenseForce::Direct), ..KernelChoice::default() };
        assert_eq!(choose(&dense(64, 64, 3), isa, &no_winograd, 64, 128), ConvStrategy::Direct);
    }
}
