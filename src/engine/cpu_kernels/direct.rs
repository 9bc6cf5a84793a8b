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
//!
//! `DirectConv` is this kernel alone; `conv::PackedConv` chooses between it and the other
//! kernels (`strategy`).

#[cfg(target_arch = "x86_64")]
use super::simd::{avx2, avx512};
use super::simd::portable;
use super::spec::{unaliased, Clamp, ConvSpec, Isa, SendConstPtr, SendPtr};
use std::sync::Arc;

/// A convolution with its weights repacked for the micro-kernels.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectConv {
    pub spec: ConvSpec,
    isa: Isa,
    /// Per group, the output-channel blocks: (first channel within the group, height R).
    blocks: Vec<(usize, usize)>,
    /// Per (group, block): weights as [ci][tap][R], at `block_offsets`.
    weights: Arc<Vec<f32>>,
    block_offsets: Vec<usize>,
}

impl DirectConv {
    /// `weights` in OIHW order ([c_out][c_in / group][kh][kw]).
    pub fn new(spec: ConvSpec, weights: &[f32], isa: Isa) -> DirectConv {
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
        DirectConv { spec, isa, blocks, weights: Arc::new(packed), block_offsets }
    }

    /// The kh x kw weights of output channel `c` of a depthwise convolution (one block of
    /// height 1 per group, so they are the channel's OIHW weights in order).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // the row tiles are AVX-512 only
    pub(super) fn channel_weights(&self, c: usize) -> &[f32] {
        &self.weights[self.block_offsets[c]..][..self.spec.kernel[0] * self.spec.kernel[1]]
    }

    /// The weights in OIHW order ([c_out][c_in / group][kh][kw]), as `new` took them.
    pub fn oihw(&self) -> Vec<f32> {
        let s = &self.spec;
        let (g, taps) = (s.group, s.kernel[0] * s.kernel[1]);
        let (cig, cog) = (s.c_in / g, s.c_out / g);
        let mut out = vec![0.0; s.c_out * cig * taps];
        for gi in 0..g {
            for (bi, &(c0, r)) in self.blocks.iter().enumerate() {
                let packed = &self.weights[self.block_offsets[gi * self.blocks.len() + bi]..];
                for ci in 0..cig {
                    for t in 0..taps {
                        for j in 0..r {
                            let co = gi * cog + c0 + j;
                            out[(co * cig + ci) * taps + t] = packed[(ci * taps + t) * r + j];
                        }
                    }
                }
            }
        }
        out
    }

    /// Multiply-accumulates for an input of `h` x `w`.
    pub fn macs(&self, h: usize, w: usize) -> usize {
        let (oh, ow) = self.spec.output_hw(h, w).unwrap_or((0, 0));
        let s = &self.spec;
        oh * ow * s.c_out * (s.c_in / s.group) * s.kernel[0] * s.kernel[1]
    }

    /// Runs on one CHW image; `out` receives c_out x oh x ow, clamped by `clamp`. `par` runs
    /// the tasks (any closure running a parallel for-each: `pool::parallel`, or `serial`).
    /// `rows` (AVX-512, depthwise, not 1x1 flat): each channel's full groups of output rows by
    /// `dw_rows`, the rest by the generic tiles.
    #[allow(clippy::too_many_arguments)]
    pub fn run(&self, input: &[f32], h: usize, w: usize, bias: &[f32], clamp: Clamp, out: &mut [f32], par: &dyn Fn(usize, &(dyn Fn(usize) + Sync)), rows: bool) {
        let s = &self.spec;
        let (oh, ow) = s.output_hw(h, w).expect("output size checked at load");
        assert_eq!(input.len(), s.c_in * h * w);
        assert_eq!(out.len(), s.c_out * oh * ow);
        assert_eq!(bias.len(), s.c_out);
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
        // A small map under large weights (BEVANet-S's 512 channels at 8x16: 368 KB of input,
        // 9.4 MB of weights): block-major over every tile, so each block's weights come from
        // memory once and from L2 for the other tiles, instead of once per tile.
        let weight_bound = g == 1 && taps.len() > 1 && {
            let input_bytes = s.c_in * ci_stride * 4;
            input_bytes <= 1 << 20 && self.weights.len() * 4 > 4 * input_bytes
        };
        let chunked = (taps.len() > 1 && !weight_bound).then_some(32);
        let compute = |buf: *const f32, ci_stride: usize, gi: usize, pos: &[(usize, usize, usize)], br: std::ops::Range<usize>| {
            let ctx = Ctx { buf, ci_stride, cig, taps: &taps, out, plane, clamp };
            // SAFETY: tiles write disjoint output channels x positions; all reads stay within
            // the padded input by construction of `row` and `hp`.
            unsafe { self.run_blocks(&ctx, gi, bias, pos, br, chunked) }
        };
        // Row tiles only where `dw_rows` can run them: AVX-512, one channel per group, rows.
        #[cfg(target_arch = "x86_64")]
        assert!(!rows || (self.isa == Isa::Avx512 && g > 1 && cig == 1 && cog == 1 && !flat), "no row tiles for {s:?}");
        #[cfg(not(target_arch = "x86_64"))]
        let _ = cog;
        #[cfg(not(target_arch = "x86_64"))]
        assert!(!rows, "row tiles need AVX-512");
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
                    if rows {
                        // SAFETY: AVX-512 and a depthwise, non-flat convolution asserted above;
                        // full row groups only, so every row read exists.
                        let rest = unsafe {
                            super::dw_rows::depthwise_rows(s, self.channel_weights(gi), clamp, scratch.as_ptr(), row, phase_len, out_h, out_w, bias[gi], out.get().add(gi * out_h * out_w))
                        };
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
        // Weight-bound maps too: a task per run of blocks over every tile reads its weights once.
        let by_blocks = by_channels || weight_bound;
        let n_pos = if by_blocks { 1 } else { want.min(tiles) };
        let n_blk = if by_blocks { want.clamp(2, self.blocks.len()) } else { (want / n_pos).clamp(1, self.blocks.len().max(1)) };
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
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // Winograd's split is x86 only
    pub(super) fn n_blocks(&self) -> usize {
        self.blocks.len()
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
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // the AVX-512 fill is x86 only
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
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize, const V: usize>(a: &mut Args, pos: &[(usize, usize, usize)]) {
    use avx2::*;
    for tile in pos.chunks(V) {
        a.set_tile(tile, V);
        let a: &Args = a;
        micro_kernel!(a, R, V, avx2::V, zero(), splat, load, fma, max, min, store, load_out)
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
