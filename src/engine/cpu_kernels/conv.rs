//! Direct 2D convolution on NCHW f32 (batch 1): dense, grouped and depthwise, any kernel size,
//! stride, dilation and padding, with bias and a clamp (ReLU / ReLU6) fused into the store.
//!
//! Why our own: tract 0.23.9 runs large depthwise kernels (7x7, 11x1) and small-K pointwise
//! convolutions far below the machine's FMA rate (see README, CPU speed). This kernel works in
//! NCHW directly, so it needs no layout change and no im2col:
//!
//! * the input is copied once into a zero-padded buffer whose columns are split into `stride`
//!   phases, so every tap of every output vector is one contiguous (unaligned) load;
//! * a micro-kernel keeps an `R` output channels x `V` output vectors tile in registers and
//!   walks input channels and taps, one broadcast weight per (channel, tap, r);
//! * the `V` vectors of a tile are any output positions (several short rows at once), so narrow
//!   feature maps (16 or 28 wide) still fill the vectors;
//! * tasks (runs of tiles x runs of output blocks, or one channel group each) are spread over
//!   the worker threads of `pool` when `--threads` > 1.

use std::sync::Arc;

/// Activation applied before storing: `min(max(x, lo), hi)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clamp {
    pub lo: f32,
    pub hi: f32,
}

impl Clamp {
    pub const NONE: Clamp = Clamp { lo: f32::NEG_INFINITY, hi: f32::INFINITY };
}

/// Shape-independent description of one convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvSpec {
    pub c_in: usize,
    pub c_out: usize,
    pub group: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// Padding before (top, left) and after (bottom, right).
    pub pad_before: [usize; 2],
    pub pad_after: [usize; 2],
}

impl ConvSpec {
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let dim = |i: usize, n: usize| {
            let padded = n + self.pad_before[i] + self.pad_after[i];
            let span = self.dilation[i] * (self.kernel[i] - 1) + 1;
            (padded >= span).then(|| (padded - span) / self.stride[i] + 1)
        };
        Some((dim(0, h)?, dim(1, w)?))
    }
}

/// Instruction set the kernels run with, picked once at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Isa {
    /// The best kernel set this CPU runs; `None` where tract's own kernels are the better choice
    /// (no AVX2+FMA: e.g. arm64, where tract has tuned NEON code).
    pub fn fast() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Some(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Some(Isa::Avx2);
            }
        }
        None
    }

    /// Every kernel set this CPU can run (for tests).
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                v.push(Isa::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
        }
        v
    }

    fn lanes(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => 16,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 8,
            Isa::Portable => 8,
        }
    }

    /// Output-channel tile heights the micro-kernels exist for, largest first, and the number of
    /// vectors per tile for each (bounded by the register file).
    fn tiles(self) -> &'static [(usize, usize)] {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => &[(8, 3), (4, 5), (2, 8), (1, 8)],
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &[(4, 3), (2, 4), (1, 6)],
            Isa::Portable => &[(4, 2), (2, 2), (1, 4)],
        }
    }
}

/// A convolution with its weights repacked for the micro-kernels.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedConv {
    pub spec: ConvSpec,
    pub clamp: Clamp,
    isa: Isa,
    /// Per group, the output-channel blocks: (first channel within the group, height R).
    blocks: Vec<(usize, usize)>,
    /// Per (group, block): weights as [ci][tap][R], at `block_offsets`.
    weights: Arc<Vec<f32>>,
    block_offsets: Vec<usize>,
    /// Depthwise on AVX-512: the same weights with 16 channels per vector (`dw_blocked`).
    #[cfg(target_arch = "x86_64")]
    blocked: Option<Arc<super::dw_blocked::BlockedDw>>,
    /// Dense 3x3 stride 1 on AVX-512 where it pays for the planned input size
    /// (`for_input`): the weights transformed for F(4x4, 3x3).
    #[cfg(target_arch = "x86_64")]
    winograd: Option<Arc<super::winograd::Winograd>>,
}

impl PackedConv {
    /// `weights` in OIHW order ([c_out][c_in / group][kh][kw]).
    pub fn new(spec: ConvSpec, weights: &[f32], clamp: Clamp, isa: Isa) -> PackedConv {
        let (g, kh, kw) = (spec.group, spec.kernel[0], spec.kernel[1]);
        let (cig, cog) = (spec.c_in / g, spec.c_out / g);
        assert_eq!(weights.len(), spec.c_out * cig * kh * kw);
        let taps = kh * kw;
        // Tile the group's output channels with the largest heights first (17 = 8 + 8 + 1).
        let mut blocks = Vec::new();
        let mut co = 0;
        for &(r, _) in isa.tiles() {
            while cog - co >= r {
                blocks.push((co, r));
                co += r;
            }
        }
        let mut packed = Vec::with_capacity(weights.len());
        let mut block_offsets = Vec::new();
        for gi in 0..g {
            for &(c0, r) in &blocks {
                block_offsets.push(packed.len());
                for ci in 0..cig {
                    for t in 0..taps {
                        for j in 0..r {
                            let co = gi * cog + c0 + j;
                            packed.push(weights[(co * cig + ci) * taps + t]);
                        }
                    }
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        let blocked = (isa == Isa::Avx512 && g == spec.c_in && g == spec.c_out && g > 1)
            .then_some(())
            .and_then(|()| super::dw_blocked::BlockedDw::new(g, spec.kernel, spec.stride, spec.dilation, spec.pad_before, weights))
            .map(Arc::new);
        PackedConv {
            spec,
            clamp,
            isa,
            blocks,
            weights: Arc::new(packed),
            block_offsets,
            #[cfg(target_arch = "x86_64")]
            blocked,
            #[cfg(target_arch = "x86_64")]
            winograd: None,
        }
    }

    /// Plans for an `h` x `w` input: adds the Winograd form of `weights` (OIHW, as given to
    /// `new`) where it pays at that size. Only then: its 36 matrices are 4x the weights (37 MB
    /// for one of BEVANet-S's 512-channel convolutions, which run direct at 8x16).
    pub fn for_input(self, weights: &[f32], h: usize, w: usize) -> PackedConv {
        #[cfg(target_arch = "x86_64")]
        if super::winograd::Winograd::pays(&self.spec, h, w) {
            let winograd = super::winograd::Winograd::new(&self.spec, weights, self.isa).map(Arc::new);
            return PackedConv { winograd, ..self };
        }
        let _ = (weights, h, w);
        self
    }

    /// Multiply-accumulates for an input of `h` x `w`.
    pub fn macs(&self, h: usize, w: usize) -> usize {
        let (oh, ow) = self.spec.output_hw(h, w).unwrap_or((0, 0));
        let s = &self.spec;
        oh * ow * s.c_out * (s.c_in / s.group) * s.kernel[0] * s.kernel[1]
    }

    /// Runs on one CHW image; `out` receives c_out x oh x ow. `threads` > 1 splits tiles over
    /// `pool` (any closure running a parallel for-each).
    pub fn run(&self, input: &[f32], h: usize, w: usize, bias: &[f32], out: &mut [f32], par: &dyn Fn(usize, &(dyn Fn(usize) + Sync))) {
        let s = &self.spec;
        let (oh, ow) = s.output_hw(h, w).expect("output size checked at load");
        assert_eq!(input.len(), s.c_in * h * w);
        assert_eq!(out.len(), s.c_out * oh * ow);
        assert_eq!(bias.len(), s.c_out);
        #[cfg(target_arch = "x86_64")]
        if let Some(wg) = self.winograd.as_ref().filter(|_| super::winograd::Winograd::pays(s, h, w) && forced_dense() != Some("direct")) {
            wg.run(input, h, w, bias, self.clamp, out, par);
            return;
        }
        let lanes = self.isa.lanes();
        let (kh, kw) = (s.kernel[0], s.kernel[1]);
        let (sh, sw) = (s.stride[0], s.stride[1]);
        let (dh, dw) = (s.dilation[0], s.dilation[1]);
        // A 1x1 stride-1 unpadded convolution is one long row: the whole plane.
        let flat = kh == 1 && kw == 1 && sh == 1 && sw == 1 && s.pad_before == [0, 0] && s.pad_after == [0, 0];
        let (in_h, in_w, out_h, out_w) = if flat { (1, h * w, 1, oh * ow) } else { (h, w, oh, ow) };
        let hp = in_h + s.pad_before[0] + s.pad_after[0];
        let wp = in_w + s.pad_before[1] + s.pad_after[1];
        let chunks = out_w.div_ceil(lanes);
        // Row length of one phase: the valid columns, and what the last (full) vector of a row
        // reads at the widest tap.
        let row = (wp.div_ceil(sw)).max(chunks * lanes + (kw - 1) * dw / sw);
        let phase_len = hp * row;
        let ci_stride = sw * phase_len;
        #[cfg(target_arch = "x86_64")]
        let avx512 = self.isa == Isa::Avx512;
        #[cfg(not(target_arch = "x86_64"))]
        let avx512 = false;
        let geom = Geom { in_h, in_w, hp, row, phase_len, sw, pt: s.pad_before[0], pl: s.pad_before[1], avx512 };
        let taps: Vec<usize> = (0..kh)
            .flat_map(|ky| (0..kw).map(move |kx| ((kx * dw) % sw) * phase_len + ky * dh * row + (kx * dw) / sw))
            .collect();
        // Output positions: (offset of the vector's first input column in a phase, output offset, valid lanes).
        let positions: Vec<(usize, usize, usize)> = (0..out_h)
            .flat_map(|oy| {
                (0..chunks).map(move |c| (oy * sh * row + c * lanes, oy * out_w + c * lanes, (out_w - c * lanes).min(lanes)))
            })
            .collect();
        let (g, cig, cog) = (s.group, s.c_in / s.group, s.c_out / s.group);
        let plane = out_h * out_w;
        let out = SendPtr(out.as_mut_ptr());
        // Runs every block of group `gi` over `pos`, reading the group's padded input at `buf`.
        let all_blocks = 0..self.blocks.len();
        let compute = |buf: *const f32, ci_stride: usize, gi: usize, pos: &[(usize, usize, usize)], br: std::ops::Range<usize>| {
            let ctx = Ctx { buf, ci_stride, cig, taps: &taps, out, plane, clamp: self.clamp };
            // SAFETY: tiles write disjoint output channels x positions; all reads stay within
            // the padded input by construction of `row` and `hp`.
            unsafe { self.run_blocks(&ctx, gi, bias, pos, br, (taps.len() > 1).then_some(32)) }
        };
        // Depthwise on AVX-512: row-group tiles reuse each loaded input vector for
        // several output rows (see `dw_rows_avx512`).
        #[cfg(target_arch = "x86_64")]
        // (Rows of one vector gain nothing: the generic 8-position tiles measured faster there.)
        let depthwise_rows = self.isa == Isa::Avx512 && cig == 1 && cog == 1 && !flat && out_w > 16;
        #[cfg(target_arch = "x86_64")]
        if let Some(bd) = self.blocked.as_ref().filter(|_| self.blocked_depthwise()) {
            // SAFETY: `out` holds c_out x oh x ow floats (asserted above); each task writes
            // only its own block's channels in its own band of rows.
            let threads = super::pool::threads();
            par(bd.tasks(oh, threads), &|t: usize| unsafe { bd.run_task(t, threads, input, h, w, bias, self.clamp, out.get(), oh, ow) });
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if self.isa == Isa::Avx512 && cig == 1 && cog == 1 && self.direct_depthwise() {
            if let Some(d) = super::dw_direct::DirectDw::new(h, w, oh, ow, s.kernel, s.stride, s.dilation, s.pad_before) {
                // Channels in runs of at least 32K multiply-adds per task: one task per channel
                // made 1440 channels of 8x8 slower on two threads than on one (task handoffs).
                let per = (1usize << 15).div_ceil(oh * ow * kh * kw).clamp(1, g);
                par(g.div_ceil(per), &|t: usize| {
                    for c in t * per..((t + 1) * per).min(g) {
                        // SAFETY: each task writes only its own channels' output planes.
                        let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(c * oh * ow), oh * ow) };
                        let wts = &self.weights[self.block_offsets[c]..][..kh * kw];
                        d.run(&input[c * h * w..][..h * w], wts, bias[c], self.clamp, dst);
                    }
                });
                return;
            }
        }
        if g > 1 {
            // Grouped / depthwise: one task per group, which pads its own few channels into a
            // per-thread buffer that stays in cache.
            par(g, &|gi: usize| {
                SCRATCH.with(|scratch| {
                    let mut scratch = scratch.borrow_mut();
                    if scratch.len() < cig * ci_stride {
                        scratch.resize(cig * ci_stride, 0.0);
                    }
                    for ci in 0..cig {
                        let c = gi * cig + ci;
                        geom.fill(&input[c * in_h * in_w..][..in_h * in_w], &mut scratch[ci * ci_stride..][..ci_stride]);
                    }
                    #[cfg(target_arch = "x86_64")]
                    if depthwise_rows {
                        // SAFETY: as for `tile`; full row groups only, so every row read exists.
                        let rest = unsafe { self.depthwise_rows(scratch.as_ptr(), row, phase_len, out_h, out_w, gi, bias[gi], out.get()) };
                        compute(scratch.as_ptr(), ci_stride, gi, &positions[rest * chunks..], all_blocks.clone());
                        return;
                    }
                    compute(scratch.as_ptr(), ci_stride, gi, &positions, all_blocks.clone());
                })
            });
            return;
        }
        // Dense: the whole input padded once (or used in place), then runs of positions across
        // all output blocks, so a run's input slice stays in L1 while every block reads it.
        // Input channels `ci_stride` apart in memory: a multiple of 4 KiB (plane sizes like 16x32
        // or 64x64 are) puts the same column of every channel in the same L1 sets, and a tile
        // reading hundreds of channels then misses on most loads. The padded copy gets a
        // stride that avoids it; the in-place input is copied for that only where the copy is
        // cheap next to the work (measured: 1024 -> 256 channels on 16x32 1.6x faster, 96 -> 16
        // on 112x112 1.7x slower with the copy).
        let aliased = unaliased(in_w) != in_w && s.c_in >= 256 && s.c_out >= 64;
        let in_place = flat && in_w % lanes == 0 && !aliased;
        let ci_stride = unaliased(ci_stride);
        let mut scratch = if in_place { Vec::new() } else { SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut())) };
        if !in_place {
            if scratch.len() < s.c_in * ci_stride {
                scratch.resize(s.c_in * ci_stride, 0.0);
            }
            // Padding is a copy of the whole input: split by channels like the convolution.
            let dst = SendPtr(scratch.as_mut_ptr());
            let per = s.c_in.div_ceil(s.c_in.min(16));
            par(s.c_in.div_ceil(per), &|t: usize| {
                for ci in t * per..((t + 1) * per).min(s.c_in) {
                    // SAFETY: each task writes its own channels' disjoint ci_stride slices.
                    let d = unsafe { std::slice::from_raw_parts_mut(dst.get().add(ci * ci_stride), ci_stride) };
                    geom.fill(&input[ci * in_h * in_w..][..in_h * in_w], d);
                }
            });
        }
        let (buf, ci_stride) = if in_place { (SendConstPtr(input.as_ptr()), in_w) } else { (SendConstPtr(scratch.as_ptr()), ci_stride) };
        let v_main = self.blocks.first().map_or(1, |b| self.isa.tiles().iter().find(|t| t.0 == b.1).unwrap().1);
        // Tasks: runs of positions (whole tiles) x runs of output blocks, about one per MTASK
        // multiply-adds so both threads get work even on small late-stage maps, where a split
        // by positions alone gave one task. Every output sees the same arithmetic in any split.
        const MTASK: usize = 1 << 18;
        let want = (self.macs(h, w) / MTASK).clamp(1, 64);
        let tiles = positions.len().div_ceil(v_main);
        // A pointwise expansion (more outputs than inputs; a depthwise convolution, split by
        // channels, usually reads it next) is split by output channels only: each task writes
        // whole planes, and at 2 threads each thread's planes are the ones its next op reads.
        // Measured (alternating runs in one process, p50): LitePose-XS, MoveNet, selfie and
        // LitePose-S 5-9% faster at 2 threads and LitePose-XS, MoveNet 4-8% at 1; splitting the
        // other pointwise convolutions that way too was 6-9% slower at 2 threads.
        let by_channels = flat && s.c_out > s.c_in && self.blocks.len() >= 2;
        let n_pos = if by_channels { 1 } else { want.min(tiles) };
        let n_blk = if by_channels { want.clamp(2, self.blocks.len()) } else { (want / n_pos).clamp(1, self.blocks.len().max(1)) };
        let nb = self.blocks.len();
        par(n_pos * n_blk, &|t: usize| {
            let buf = buf;
            let (tp, tb) = (t / n_blk, t % n_blk);
            let (p0, p1) = (tp * tiles / n_pos * v_main, ((tp + 1) * tiles / n_pos * v_main).min(positions.len()));
            compute(buf.0, ci_stride, 0, &positions[p0..p1], tb * nb / n_blk..(tb + 1) * nb / n_blk)
        });
        if !in_place {
            SCRATCH.with(|s| *s.borrow_mut() = scratch);
        }
    }
}

impl PackedConv {
    /// Runs output blocks `br` of group `gi` over the output positions `pos`, reading input
    /// through `ctx`. Tile-major (`kc` = Some(input channels per chunk)): a tile's input for
    /// one chunk is read by every block from L1. Block-major (`None`): each output plane is
    /// written in long sequential streams, which pointwise runs over long planes want.
    ///
    /// SAFETY: every position's reads (at each tap, for each input channel) lie within the
    /// buffer at `ctx.buf`, and no other thread writes the blocks x positions this call stores.
    pub(super) unsafe fn run_blocks(&self, ctx: &Ctx, gi: usize, bias: &[f32], pos: &[(usize, usize, usize)], br: std::ops::Range<usize>, kc: Option<usize>) {
        let cog = self.spec.c_out / self.spec.group;
        let v_of = |r: usize| self.isa.tiles().iter().find(|t| t.0 == r).unwrap().1;
        let v_main = v_of(self.blocks[0].1);
        // Blocks of the main height: tile-major, so a tile's input is read from L1 by every
        // block; the few tail blocks after.
        let main = self.blocks.iter().take_while(|b| b.1 == self.blocks[0].1).count();
        let tile_major = kc.is_some();
        if let Some(kc) = kc {
            // Input channels in chunks, so a tile's input for one chunk stays in L1 while every
            // block reads it (partial sums go through the output).
            for (tile, v) in split_tiles(pos, v_main).flat_map(|(g, v)| g.chunks(v).map(move |t| (t, v))) {
                for ci0 in (0..ctx.cig).step_by(kc) {
                    let n_ci = kc.min(ctx.cig - ci0);
                    for (bi, &(c0, r)) in self.blocks[..main].iter().enumerate() {
                        if !br.contains(&bi) {
                            continue;
                        }
                        let co = gi * cog + c0;
                        let w = &self.weights[self.block_offsets[gi * self.blocks.len() + bi]..];
                        // A chunk after the first reads back what the previous one stored.
                        ctx.tile_chunk(self.isa, r, v, co, w, &bias[co..co + r], tile, ci0, n_ci, ci0 > 0, ci0 + n_ci == ctx.cig);
                    }
                }
            }
        }
        for (bi, &(c0, r)) in self.blocks.iter().enumerate() {
            if (bi < main && tile_major) || !br.contains(&bi) {
                continue;
            }
            let v = v_of(r);
            let co = gi * cog + c0;
            let w = &self.weights[self.block_offsets[gi * self.blocks.len() + bi]..];
            for (tiles, v) in split_tiles(pos, v) {
                ctx.tiles(self.isa, r, v, co, w, &bias[co..co + r], tiles);
            }
        }
    }

    /// Output blocks of this convolution (for splitting work).
    pub(super) fn n_blocks(&self) -> usize {
        self.blocks.len()
    }
}

#[cfg(target_arch = "x86_64")]
impl PackedConv {
    /// Whether a depthwise convolution that `blocked_depthwise` leaves reads its input unpadded
    /// (`dw_direct`) rather than through the padded copy and row tiles: for 3x3 and smaller,
    /// where the copy costs as much as the taps (measured 1.2-3x faster, `examples/conv_shapes`).
    /// `EDGESIGHT_DW=direct|rows|blocked` forces one for comparisons.
    fn direct_depthwise(&self) -> bool {
        match forced_depthwise() {
            Some("direct") => true,
            Some("rows") | Some("blocked") => false,
            _ => self.spec.kernel[0] * self.spec.kernel[1] <= 9,
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
    fn blocked_depthwise(&self) -> bool {
        match forced_depthwise() {
            Some("blocked") => true,
            Some("direct") | Some("rows") => false,
            _ => {
                let taps = self.spec.kernel[0] * self.spec.kernel[1];
                let c = self.spec.c_out;
                taps >= 9 && 5 * (c.div_ceil(16) * 16 - c) <= c
            }
        }
    }
}

/// `EDGESIGHT_DW`, read once: it is consulted for every depthwise convolution of every frame.
#[cfg(target_arch = "x86_64")]
fn forced_depthwise() -> Option<&'static str> {
    static FORCED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FORCED.get_or_init(|| std::env::var("EDGESIGHT_DW").ok()).as_deref()
}

/// `EDGESIGHT_DENSE=direct` turns Winograd off (for comparisons), read once.
#[cfg(target_arch = "x86_64")]
fn forced_dense() -> Option<&'static str> {
    static FORCED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FORCED.get_or_init(|| std::env::var("EDGESIGHT_DENSE").ok()).as_deref()
}

#[cfg(target_arch = "x86_64")]
impl PackedConv {

    /// Depthwise stride 1 over channel `c`: every full group of output rows with the row-tile
    /// kernel; returns the first output row left for the generic tiles.
    #[allow(clippy::too_many_arguments)]
    unsafe fn depthwise_rows(&self, buf: *const f32, row: usize, phase_len: usize, out_h: usize, out_w: usize, c: usize, bias: f32, out: *mut f32) -> usize {
        let chunks = out_w.div_ceil(16);
        // Rows x vectors per tile by row width: 4 x 4 for wide rows, taller tiles for narrow ones.
        let (rb, vb) = match chunks {
            1..=3 => (8, 2),
            _ => (4, 4),
        };
        let s = &self.spec;
        let sw = s.stride[1];
        // Where tap column kx starts in the phase-split row.
        let colofs: Vec<usize> = (0..s.kernel[1]).map(|kx| ((kx * s.dilation[1]) % sw) * phase_len + (kx * s.dilation[1]) / sw).collect();
        let a = DwArgs {
            buf,
            row,
            sh: s.stride[0],
            colofs: &colofs,
            kh: s.kernel[0],
            kw: s.kernel[1],
            dh: s.dilation[0],
            w: self.weights[self.block_offsets[c]..].as_ptr(),
            bias,
            out: out.add(c * out_h * out_w),
            out_w,
            clamp: self.clamp,
        };
        let groups = out_h / rb;
        for gy in 0..groups {
            for c0 in (0..chunks).step_by(vb) {
                let mut cols = [0usize; 4];
                let mut valid = [0usize; 4];
                for v in 0..vb {
                    let ch = c0 + v;
                    if ch < chunks {
                        cols[v] = ch * 16;
                        valid[v] = (out_w - ch * 16).min(16);
                    } else {
                        cols[v] = c0 * 16;
                    }
                }
                let unit = a.sh == 1 && a.dh == 1 && s.stride[1] == 1 && s.dilation[1] == 1 && a.kh == a.kw;
                match (rb, vb, if unit { a.kh } else { 0 }) {
                    (8, 2, 5) => dw_rows_unit::<5, 8, 2>(&a, gy * rb, &cols, &valid),
                    (4, 4, 5) => dw_rows_unit::<5, 4, 4>(&a, gy * rb, &cols, &valid),
                    (8, 2, _) => dw_rows_avx512::<8, 2>(&a, gy * rb, &cols, &valid),
                    _ => dw_rows_avx512::<4, 4>(&a, gy * rb, &cols, &valid),
                }
            }
        }
        groups * rb
    }
}

#[cfg(target_arch = "x86_64")]
struct DwArgs<'a> {
    buf: *const f32,
    row: usize,
    sh: usize,
    colofs: &'a [usize],
    kh: usize,
    kw: usize,
    dh: usize,
    w: *const f32,
    bias: f32,
    out: *mut f32,
    out_w: usize,
    clamp: Clamp,
}

/// RB output rows x VB vectors of one depthwise channel: each input row of the
/// window is loaded once per tap column and feeds every output row it belongs to, so a load
/// serves up to min(RB, kh) multiply-adds instead of one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dw_rows_avx512<const RB: usize, const VB: usize>(a: &DwArgs, oy0: usize, cols: &[usize; 4], valid: &[usize; 4]) {
    use avx512::*;
    let mut acc = [[splat(a.bias); VB]; RB];
    let span = a.sh * (RB - 1) + (a.kh - 1) * a.dh + 1;
    for t in 0..span {
        let src = a.buf.add((a.sh * oy0 + t) * a.row);
        // Kernel row for each output row of the tile fed by input row t, if any.
        let mut ky = [usize::MAX; RB];
        for (i, k) in ky.iter_mut().enumerate() {
            let top = a.sh * i;
            if t >= top && (t - top) % a.dh == 0 && (t - top) / a.dh < a.kh {
                *k = (t - top) / a.dh;
            }
        }
        for kx in 0..a.kw {
            let mut x = [zero(); VB];
            let off = *a.colofs.get_unchecked(kx);
            for v in 0..VB {
                x[v] = load(src.add(cols[v] + off));
            }
            for i in 0..RB {
                if ky[i] != usize::MAX {
                    let wv = splat(*a.w.add(ky[i] * a.kw + kx));
                    for v in 0..VB {
                        acc[i][v] = fma(x[v], wv, acc[i][v]);
                    }
                }
            }
        }
    }
    store_rows(a, oy0, cols, valid, &acc);
}

/// `dw_rows_avx512` for a K x K kernel at stride 1 and dilation 1, with every bound known at
/// compile time, so which output rows an input row feeds is decided when unrolling, not per
/// tap: 5x5 (LitePose's 224x224 layers) ran 1.3x faster; 7x7 ran 1.3-1.6x slower this way, so
/// it keeps the generic kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dw_rows_unit<const K: usize, const RB: usize, const VB: usize>(a: &DwArgs, oy0: usize, cols: &[usize; 4], valid: &[usize; 4]) {
    use avx512::*;
    let mut acc = [[splat(a.bias); VB]; RB];
    for t in 0..RB + K - 1 {
        let src = a.buf.add((oy0 + t) * a.row);
        for kx in 0..K {
            let mut x = [zero(); VB];
            for v in 0..VB {
                x[v] = load(src.add(cols[v] + kx));
            }
            for i in 0..RB {
                // Output row i reads input row t with kernel row t - i.
                if t >= i && t - i < K {
                    let wv = splat(*a.w.add((t - i) * K + kx));
                    for v in 0..VB {
                        acc[i][v] = fma(x[v], wv, acc[i][v]);
                    }
                }
            }
        }
    }
    store_rows(a, oy0, cols, valid, &acc);
}

/// The clamped RB x VB tile of a depthwise row kernel into its output rows.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_rows<const RB: usize, const VB: usize>(a: &DwArgs, oy0: usize, cols: &[usize; 4], valid: &[usize; 4], acc: &[[avx512::V; VB]; RB]) {
    use avx512::*;
    let clamp = a.clamp != Clamp::NONE;
    let (lo, hi) = (splat(a.clamp.lo), splat(a.clamp.hi));
    for i in 0..RB {
        for v in 0..VB {
            let y = if clamp { min(max(acc[i][v], lo), hi) } else { acc[i][v] };
            store(a.out.add((oy0 + i) * a.out_w + cols[v]), valid[v], y);
        }
    }
}

/// Where one channel's input goes in the padded, phase-split buffer.
#[derive(Clone, Copy)]
struct Geom {
    in_h: usize,
    in_w: usize,
    hp: usize,
    row: usize,
    phase_len: usize,
    sw: usize,
    pt: usize,
    pl: usize,
    avx512: bool,
}

/// `dst[j] = src[2 j]` (`src` holds at least `2 dst.len() - 1` values).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn evens_avx512(src: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!(src.len() + 1 >= 2 * dst.len());
    let idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mut j = 0;
    while 2 * j + 32 <= src.len() && j + 16 <= dst.len() {
        let a = _mm512_loadu_ps(src.as_ptr().add(2 * j));
        let b = _mm512_loadu_ps(src.as_ptr().add(2 * j + 16));
        _mm512_storeu_ps(dst.as_mut_ptr().add(j), _mm512_permutex2var_ps(a, idx, b));
        j += 16;
    }
    for (k, d) in dst.iter_mut().enumerate().skip(j) {
        *d = src[2 * k];
    }
}

/// `ev[k] = src[2 k]`, `od[k] = src[2 k + 1]` (as far as `src` reaches).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn split2_avx512(src: &[f32], ev: &mut [f32], od: &mut [f32]) {
    use std::arch::x86_64::*;
    let ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let n = ev.len().min(od.len());
    let mut k = 0;
    while 2 * k + 32 <= src.len() && k + 16 <= n {
        let a = _mm512_loadu_ps(src.as_ptr().add(2 * k));
        let b = _mm512_loadu_ps(src.as_ptr().add(2 * k + 16));
        _mm512_storeu_ps(ev.as_mut_ptr().add(k), _mm512_permutex2var_ps(a, ie, b));
        _mm512_storeu_ps(od.as_mut_ptr().add(k), _mm512_permutex2var_ps(a, io, b));
        k += 16;
    }
    for (i, d) in ev.iter_mut().enumerate().skip(k) {
        *d = src[2 * i];
    }
    for (i, d) in od.iter_mut().enumerate().skip(k) {
        *d = src[2 * i + 1];
    }
}

impl Geom {
    /// `fill` for stride 2: both phases of a row in one pass. Phase r column j holds input
    /// column 2 j + r - pl; the phase whose first present column is even gets the even input
    /// columns, the other the odd ones.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn fill_s2_avx512(&self, src: &[f32], dst: &mut [f32]) {
        let Geom { in_h, in_w, hp, row, phase_len, pt, pl, .. } = *self;
        let range = |r: usize| {
            let j_lo = if pl > r { (pl - r).div_ceil(2) } else { 0 }.min(row);
            let j_hi = (in_w + pl).saturating_sub(r).div_ceil(2).clamp(j_lo, row);
            (j_lo, j_hi, (j_lo * 2 + r).saturating_sub(pl))
        };
        let (r0, r1) = (range(0), range(1));
        // (range of the even-column phase, of the odd-column phase, which phase is even).
        let (even, odd, even_phase) = if r0.2 % 2 == 0 { (r0, r1, 0) } else { (r1, r0, 1) };
        let (p0, p1) = dst[..2 * phase_len].split_at_mut(phase_len);
        let (pe, po) = if even_phase == 0 { (p0, p1) } else { (p1, p0) };
        for yy in 0..hp {
            let de = &mut pe[yy * row..][..row];
            let dodd = &mut po[yy * row..][..row];
            if yy < pt || yy >= pt + in_h || even.1 == even.0 && odd.1 == odd.0 {
                de.fill(0.0);
                dodd.fill(0.0);
                continue;
            }
            let s = &src[(yy - pt) * in_w..][..in_w];
            de[..even.0].fill(0.0);
            de[even.1..].fill(0.0);
            dodd[..odd.0].fill(0.0);
            dodd[odd.1..].fill(0.0);
            // Even phase starts at input column even.2 (even), odd phase at odd.2 = even.2 +- 1.
            let base = even.2.min(odd.2.saturating_sub(1));
            let (ek, ok) = ((even.2 - base) / 2, (odd.2 - 1 - base) / 2);
            let (ne, no) = (even.1 - even.0, odd.1 - odd.0);
            if ek == 0 && ok == 0 {
                split2_avx512(&s[base..], &mut de[even.0..even.1], &mut dodd[odd.0..odd.1]);
            } else {
                for j in 0..ne {
                    de[even.0 + j] = s[even.2 + 2 * j];
                }
                for j in 0..no {
                    dodd[odd.0 + j] = s[odd.2 + 2 * j];
                }
            }
        }
    }

    /// Pads one channel (`in_h` x `in_w`) into `dst` (`sw` phases of `hp` x `row`): phase `r`
    /// column `j` holds padded column `j * sw + r`. Every element of `dst` is written.
    fn fill(&self, src: &[f32], dst: &mut [f32]) {
        let Geom { in_h, in_w, hp, row, phase_len, sw, pt, pl, .. } = *self;
        #[cfg(target_arch = "x86_64")]
        if sw == 2 && self.avx512 {
            // SAFETY: AVX-512 checked at load (`Isa::Avx512`).
            unsafe { self.fill_s2_avx512(src, dst) };
            return;
        }
        for r in 0..sw {
            let phase = &mut dst[r * phase_len..][..phase_len];
            // Input column j * sw + r - pl is present for j in j_lo..j_hi.
            let j_lo = if pl > r { (pl - r).div_ceil(sw) } else { 0 }.min(row);
            let j_hi = (in_w + pl).saturating_sub(r).div_ceil(sw).clamp(j_lo, row);
            for (yy, d) in phase.chunks_exact_mut(row).enumerate().take(hp) {
                if yy < pt || yy >= pt + in_h {
                    d.fill(0.0);
                    continue;
                }
                let s = &src[(yy - pt) * in_w..][..in_w];
                d[..j_lo].fill(0.0);
                d[j_hi..].fill(0.0);
                if j_hi == j_lo {
                    continue;
                }
                let x0 = j_lo * sw + r - pl;
                if sw == 1 {
                    d[j_lo..j_hi].copy_from_slice(&s[x0..x0 + (j_hi - j_lo)]);
                } else if sw == 2 {
                    // Stride-2 convolutions spent more time here than in their multiply-adds.
                    let n = j_hi - j_lo;
                    #[cfg(target_arch = "x86_64")]
                    if self.avx512 {
                        // SAFETY: AVX-512 checked at load (`Isa::Avx512`).
                        unsafe { evens_avx512(&s[x0..], &mut d[j_lo..j_hi]) };
                        continue;
                    }
                    let (body, tail) = (n.min((s.len() - x0) / 2), n);
                    for (d, pair) in d[j_lo..j_lo + body].iter_mut().zip(s[x0..x0 + 2 * body].chunks_exact(2)) {
                        *d = pair[0];
                    }
                    if body < tail {
                        d[j_lo + body] = s[x0 + 2 * body];
                    }
                } else {
                    for (d, s) in d[j_lo..j_hi].iter_mut().zip(s[x0..].iter().step_by(sw)) {
                        *d = *s;
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
struct SendConstPtr(*const f32);
unsafe impl Send for SendConstPtr {}
unsafe impl Sync for SendConstPtr {}

thread_local! {
    /// The padded input buffer, kept between runs (one per calling thread).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `pos` in runs of tiles of `v` vectors, each with the tile width to run it at. Three-vector tiles
/// (8 channels on AVX-512) end in tiles of two rather than one padded tile: an 8x8 map (4
/// vectors) ran 3 + 1 padded to 3, a third of its multiply-adds wasted.
fn split_tiles(pos: &[(usize, usize, usize)], v: usize) -> impl Iterator<Item = (&[(usize, usize, usize)], usize)> {
    let n = pos.len();
    // Positions covered by three-vector tiles; the rest in tiles of two.
    let threes = match (v, n % 3) {
        (3, _) if n <= 2 => 0,
        (3, 1) => n - 4,
        (3, 2) => n - 2,
        _ => n,
    };
    let (head, tail) = pos.split_at(threes);
    [(head, v), (tail, 2)].into_iter().filter(|(p, _)| !p.is_empty())
}

#[derive(Clone, Copy)]
pub(super) struct SendPtr(pub(super) *mut f32);
impl SendPtr {
    // A method, so closures capture the whole (Sync) wrapper, not its raw-pointer field.
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

pub(super) struct Ctx<'a> {
    pub(super) buf: *const f32,
    pub(super) ci_stride: usize,
    pub(super) cig: usize,
    pub(super) taps: &'a [usize],
    pub(super) out: SendPtr,
    pub(super) plane: usize,
    pub(super) clamp: Clamp,
}
const MAXV: usize = 8;

impl Ctx<'_> {
    #[allow(clippy::too_many_arguments)]
    /// Input channels `ci0..ci0 + n_ci` of the group into the tile; `accumulate` adds to what
    /// the output holds (later channel chunks), `last` applies the clamp. `tiles` holds any
    /// number of positions, run `v` at a time in one call (a call per tile cost up to a tenth
    /// of MoveNet's time in the argument setup).
    unsafe fn tiles(&self, isa: Isa, r: usize, v: usize, co: usize, w: &[f32], bias: &[f32], tiles: &[(usize, usize, usize)]) {
        self.tile_chunk(isa, r, v, co, w, bias, tiles, 0, self.cig, false, true)
    }

    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_chunk(
        &self,
        isa: Isa,
        r: usize,
        v: usize,
        co: usize,
        w: &[f32],
        bias: &[f32],
        tiles: &[(usize, usize, usize)],
        ci0: usize,
        n_ci: usize,
        accumulate: bool,
        last: bool,
    ) {
        let base = self.buf.add(ci0 * self.ci_stride);
        let out = self.out.0.add(co * self.plane);
        let w = w.as_ptr().add(ci0 * self.taps.len() * r);
        let clamp = if last { self.clamp } else { Clamp::NONE };
        let mut a = Args {
            base,
            ci_stride: self.ci_stride,
            n_ci,
            taps: self.taps,
            w,
            bias: bias.as_ptr(),
            out,
            plane: self.plane,
            inp: [0; MAXV],
            outp: [0; MAXV],
            valid: [0; MAXV],
            clamp,
            accumulate,
        };
        macro_rules! dispatch {
            ($f:ident, $($r:literal x $v:literal),*) => {
                match (r, v) {
                    $(($r, $v) => $f::<$r, $v>(&mut a, tiles),)*
                    _ => unreachable!("no {r}x{v} tile"),
                }
            };
        }
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => dispatch!(tile_avx512, 8 x 3, 8 x 2, 4 x 5, 2 x 8, 1 x 8),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => dispatch!(tile_avx2, 4 x 3, 4 x 2, 2 x 4, 1 x 6),
            Isa::Portable => dispatch!(tile_portable, 4 x 2, 2 x 2, 1 x 4),
        }
    }
}

struct Args<'a> {
    base: *const f32,
    ci_stride: usize,
    n_ci: usize,
    taps: &'a [usize],
    w: *const f32,
    bias: *const f32,
    out: *mut f32,
    plane: usize,
    inp: [usize; MAXV],
    outp: [usize; MAXV],
    valid: [usize; MAXV],
    clamp: Clamp,
    accumulate: bool,
}

impl Args<'_> {
    /// The positions of one tile; a short tile is padded by repeating its first position,
    /// with nothing stored for it.
    fn set_tile(&mut self, tile: &[(usize, usize, usize)], v: usize) {
        for j in 0..v {
            let p = tile.get(j).copied().unwrap_or((tile[0].0, tile[0].1, 0));
            self.inp[j] = p.0;
            self.outp[j] = p.1;
            self.valid[j] = p.2;
        }
    }
}

/// The micro-kernel, written once over a vector type's operations.
macro_rules! micro_kernel {
    ($a:ident, $R:ident, $V:ident, $vec:ty, $zero:expr, $splat:expr, $load:expr, $fma:expr, $max:expr, $min:expr, $store:expr, $load_out:expr) => {{
        let a = $a;
        let mut acc: [[$vec; $V]; $R] = [[$zero; $V]; $R];
        for r in 0..$R {
            let b = $splat(*a.bias.add(r));
            for v in 0..$V {
                acc[r][v] = if a.accumulate { $load_out(a.out.add(r * a.plane + a.outp[v]), a.valid[v]) } else { b };
            }
        }
        let ntaps = a.taps.len();
        let mut w = a.w;
        if ntaps == 1 {
            // Pointwise: one tight loop over input channels, without the tap loop's setup per
            // channel (1x1 shapes of BEVANet measured up to 1.15x faster).
            let mut p = [a.base; $V];
            for v in 0..$V {
                p[v] = a.base.add(a.inp[v] + *a.taps.get_unchecked(0));
            }
            for _ in 0..a.n_ci {
                let mut x = [$zero; $V];
                for v in 0..$V {
                    x[v] = $load(p[v]);
                    p[v] = p[v].add(a.ci_stride);
                }
                for r in 0..$R {
                    let wv = $splat(*w.add(r));
                    for v in 0..$V {
                        acc[r][v] = $fma(x[v], wv, acc[r][v]);
                    }
                }
                w = w.add($R);
            }
        }
        for ci in 0..if ntaps == 1 { 0 } else { a.n_ci } {
            let base = a.base.add(ci * a.ci_stride);
            let mut p = [base; $V];
            for v in 0..$V {
                p[v] = base.add(a.inp[v]);
            }
            for t in 0..ntaps {
                let off = *a.taps.get_unchecked(t);
                let mut x = [$zero; $V];
                for v in 0..$V {
                    x[v] = $load(p[v].add(off));
                }
                for r in 0..$R {
                    let wv = $splat(*w.add(r));
                    for v in 0..$V {
                        acc[r][v] = $fma(x[v], wv, acc[r][v]);
                    }
                }
                w = w.add($R);
            }
        }
        // No clamp at all without one: max(NaN, -inf) would turn a NaN into -inf.
        let clamp = a.clamp != Clamp::NONE;
        let lo = $splat(a.clamp.lo);
        let hi = $splat(a.clamp.hi);
        for r in 0..$R {
            for v in 0..$V {
                let y = if clamp { $min($max(acc[r][v], lo), hi) } else { acc[r][v] };
                $store(a.out.add(r * a.plane + a.outp[v]), a.valid[v], y);
            }
        }
    }};
}

// The vector operations as functions (not closures) so they carry the ISA's target features
// and inline into the micro-kernel.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    pub type V = __m512;
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn zero() -> V {
        _mm512_setzero_ps()
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn splat(x: f32) -> V {
        _mm512_set1_ps(x)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn load(p: *const f32) -> V {
        _mm512_loadu_ps(p)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma(x: V, w: V, c: V) -> V {
        _mm512_fmadd_ps(x, w, c)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn max(x: V, y: V) -> V {
        _mm512_max_ps(x, y)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn min(x: V, y: V) -> V {
        _mm512_min_ps(x, y)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn load_out(p: *const f32, n: usize) -> V {
        if n == 16 {
            _mm512_loadu_ps(p)
        } else {
            _mm512_maskz_loadu_ps(((1u32 << n) - 1) as u16, p)
        }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn store(p: *mut f32, n: usize, y: V) {
        if n == 16 {
            _mm512_storeu_ps(p, y)
        } else if n > 0 {
            _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as u16, y)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512<const R: usize, const V: usize>(a: &mut Args, pos: &[(usize, usize, usize)]) {
    use avx512::*;
    for tile in pos.chunks(V) {
        a.set_tile(tile, V);
        let a: &Args = a;
        micro_kernel!(a, R, V, avx512::V, zero(), splat, load, fma, max, min, store, load_out)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    pub type V = __m256;
    const MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn zero() -> V {
        _mm256_setzero_ps()
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn splat(x: f32) -> V {
        _mm256_set1_ps(x)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn load(p: *const f32) -> V {
        _mm256_loadu_ps(p)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma(x: V, w: V, c: V) -> V {
        _mm256_fmadd_ps(x, w, c)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn max(x: V, y: V) -> V {
        _mm256_max_ps(x, y)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn min(x: V, y: V) -> V {
        _mm256_min_ps(x, y)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn load_out(p: *const f32, n: usize) -> V {
        if n == 8 {
            _mm256_loadu_ps(p)
        } else {
            _mm256_maskload_ps(p, _mm256_loadu_si256(MASKS.as_ptr().add(8 - n) as *const __m256i))
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn store(p: *mut f32, n: usize, y: V) {
        if n == 8 {
            _mm256_storeu_ps(p, y)
        } else if n > 0 {
            _mm256_maskstore_ps(p, _mm256_loadu_si256(MASKS.as_ptr().add(8 - n) as *const __m256i), y)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize, const V: usize>(a: &mut Args, pos: &[(usize, usize, usize)]) {
    use avx2::*;
    for tile in pos.chunks(V) {
        a.set_tile(tile, V);
        let a: &Args = a;
        micro_kernel!(a, R, V, avx2::V, zero(), splat, load, fma, max, min, store, load_out)
    }
}

/// Plain Rust with the same blocking, for CPUs without AVX2 (and as the tests' second opinion).
mod portable {
    pub type V = [f32; 8];
    #[inline(always)]
    pub unsafe fn zero() -> V {
        [0.0; 8]
    }
    #[inline(always)]
    pub unsafe fn splat(x: f32) -> V {
        [x; 8]
    }
    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> V {
        *(p as *const V)
    }
    #[inline(always)]
    pub unsafe fn fma(x: V, w: V, c: V) -> V {
        std::array::from_fn(|i| x[i].mul_add(w[i], c[i]))
    }
    #[inline(always)]
    pub unsafe fn max(x: V, y: V) -> V {
        std::array::from_fn(|i| x[i].max(y[i]))
    }
    #[inline(always)]
    pub unsafe fn min(x: V, y: V) -> V {
        std::array::from_fn(|i| x[i].min(y[i]))
    }
    #[inline(always)]
    pub unsafe fn load_out(p: *const f32, n: usize) -> V {
        std::array::from_fn(|i| if i < n { *p.add(i) } else { 0.0 })
    }
    #[inline(always)]
    pub unsafe fn store(p: *mut f32, n: usize, y: V) {
        for (i, v) in y.iter().enumerate().take(n) {
            *p.add(i) = *v;
        }
    }
}

unsafe fn tile_portable<const R: usize, const V: usize>(a: &mut Args, pos: &[(usize, usize, usize)]) {
    use portable::*;
    for tile in pos.chunks(V) {
        a.set_tile(tile, V);
        let a: &Args = a;
        micro_kernel!(a, R, V, portable::V, zero(), splat, load, fma, max, min, store, load_out)
    }
}

/// Plain reference convolution (tests).
pub fn reference(spec: &ConvSpec, input: &[f32], h: usize, w: usize, weights: &[f32], bias: &[f32], clamp: Clamp) -> Vec<f32> {
    let (oh, ow) = spec.output_hw(h, w).unwrap();
    let (g, kh, kw) = (spec.group, spec.kernel[0], spec.kernel[1]);
    let (cig, cog) = (spec.c_in / g, spec.c_out / g);
    let mut out = vec![0f32; spec.c_out * oh * ow];
    for co in 0..spec.c_out {
        let gi = co / cog;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = bias[co] as f64;
                for ci in 0..cig {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let y = (oy * spec.stride[0] + ky * spec.dilation[0]) as isize - spec.pad_before[0] as isize;
                            let x = (ox * spec.stride[1] + kx * spec.dilation[1]) as isize - spec.pad_before[1] as isize;
                            if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                                continue;
                            }
                            let i = input[((gi * cig + ci) * h + y as usize) * w + x as usize] as f64;
                            acc += i * weights[((co * cig + ci) * kh + ky) * kw + kx] as f64;
                        }
                    }
                }
                out[(co * oh + oy) * ow + ox] = (acc as f32).max(clamp.lo).min(clamp.hi);
            }
        }
    }
    out
}

/// The smallest channel stride (in floats) >= `stride` that is an odd multiple of 16 floats
/// (64 bytes): consecutive channels then start on different L1 sets, whatever the plane size.
pub(super) fn unaliased(stride: usize) -> usize {
    let s = stride.div_ceil(16) * 16;
    if (s / 16) % 2 == 0 {
        s + 16
    } else {
        s
    }
}

/// Runs `f(0..n)` on the calling thread.
pub fn serial(n: usize, f: &(dyn Fn(usize) + Sync)) {
    (0..n).for_each(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn check(spec: ConvSpec, h: usize, w: usize, clamp: Clamp, rng: &mut SplitMix64) {
        let cig = spec.c_in / spec.group;
        let n_w = spec.c_out * cig * spec.kernel[0] * spec.kernel[1];
        let input: Vec<f32> = (0..spec.c_in * h * w).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
        let weights: Vec<f32> = (0..n_w).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
        let bias: Vec<f32> = (0..spec.c_out).map(|_| rng.unit_f32() - 0.5).collect();
        let want = reference(&spec, &input, h, w, &weights, &bias, clamp);
        let scale = (cig * spec.kernel[0] * spec.kernel[1]) as f32;
        for isa in Isa::available() {
            let packed = PackedConv::new(spec.clone(), &weights, clamp, isa);
            let (oh, ow) = spec.output_hw(h, w).unwrap();
            let mut got = vec![f32::NAN; spec.c_out * oh * ow];
            packed.run(&input, h, w, &bias, &mut got, &serial);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= 1e-5 * scale.sqrt() + 1e-6 * scale, "{isa:?} {spec:?} {h}x{w} at {i}: {a} vs {b}");
            }
            // Tasks spread over threads (as with --threads N) give the same bits.
            let mut par_got = vec![f32::NAN; spec.c_out * oh * ow];
            packed.run(&input, h, w, &bias, &mut par_got, &three_threads);
            assert!(got.iter().zip(&par_got).all(|(a, b)| a.to_bits() == b.to_bits()), "{isa:?} {spec:?} threaded");
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

    // CPU time of this thread: the machine is shared, and wall time counts other processes.
    use crate::engine::tract_cpu::thread_cpu_seconds;

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
            let packed = PackedConv::new(spec.clone(), &weights, Clamp::NONE, Isa::fast().unwrap_or(Isa::Portable));
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
