//! Depthwise convolution with 16 channels in the vector lanes (AVX-512).
//!
//! Why: in NCHW a depthwise kernel multiplies each loaded vector by one broadcast weight and
//! reloads shifted input for every tap column; LitePose's 7x7 layers ran at 17-33 GMAC/s that
//! way, where onnxruntime's channel-blocked (NCHWc) kernels reached 40-48. Here a task takes 16
//! channels and a band of output rows. The input rows it reads are copied, just before their
//! first use, into a ring of zero-padded [column][16 channels] rows (16x16 transposes in
//! registers), so the copy stays in L1/L2 however large the map. A tile is 16 output pixels x 16
//! channels: for kernels up to 7 wide each kernel row's weight vectors stay in registers and
//! every input pixel is loaded once, feeding each output pixel whose window covers it. The tile
//! is transposed back into the NCHW output, so the graph keeps its layout.

#![cfg(target_arch = "x86_64")]

use super::spec::Clamp;
use std::arch::x86_64::*;

/// Repeats a block with `$v` bound to each listed constant.
macro_rules! unroll {
    ($v:ident in [$($n:literal),*] $body:block) => {
        $( { let $v: usize = $n; $body } )*
    };
}

/// One depthwise convolution's geometry and weights, with channels in blocks of 16.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockedDw {
    channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad_before: [usize; 2],
    /// Per block of 16 channels: [tap][16] weights, zero for channels past the end.
    weights: Vec<f32>,
}

thread_local! {
    /// The padded channel-blocked input of one task, kept between runs.
    static BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl BlockedDw {
    /// `weights` as [channel][kh][kw].
    /// `None` unless the column stride is 1 or 2 (`supports`).
    pub fn new(channels: usize, kernel: [usize; 2], stride: [usize; 2], dilation: [usize; 2], pad_before: [usize; 2], weights: &[f32]) -> Option<BlockedDw> {
        if !BlockedDw::supports(stride) {
            return None;
        }
        let taps = kernel[0] * kernel[1];
        assert_eq!(weights.len(), channels * taps);
        let blocks = channels.div_ceil(16);
        let mut w = vec![0.0; blocks * taps * 16];
        for c in 0..channels {
            for t in 0..taps {
                w[((c / 16) * taps + t) * 16 + c % 16] = weights[c * taps + t];
            }
        }
        Some(BlockedDw { channels, kernel, stride, dilation, pad_before, weights: w })
    }

    /// Whether `new` takes a convolution of this stride.
    pub fn supports(stride: [usize; 2]) -> bool {
        (1..=2).contains(&stride[1])
    }

    pub fn blocks(&self) -> usize {
        self.channels.div_ceil(16)
    }

    /// How many tasks of `run_task` cover the convolution on `threads` threads: blocks of
    /// channels, each cut into bands of output rows when there are fewer blocks than twice
    /// the threads (16 channels would otherwise leave a thread idle).
    pub fn tasks(&self, oh: usize, threads: usize) -> usize {
        self.blocks() * self.bands(oh, threads)
    }

    fn bands(&self, oh: usize, threads: usize) -> usize {
        if threads <= 1 {
            return 1;
        }
        (2 * threads).div_ceil(self.blocks()).clamp(1, oh.div_ceil(8).max(1))
    }

    /// Task `t` of `tasks(oh, threads)`: channels 16 b .. 16 b + 16 of one CHW image (h x w
    /// in, oh x ow out), over one band of output rows.
    ///
    /// # Safety
    /// `out` points to `channels x oh x ow` writable floats, and no other thread touches this
    /// task's channels x rows of the output while it runs (other tasks may run concurrently).
    #[allow(clippy::too_many_arguments)]
    /// With `expansion`, `input` is the expansion's input (its c_in planes of h x w) and the
    /// depthwise convolution's input rows are computed from it as they are needed.
    pub unsafe fn run_task(&self, t: usize, threads: usize, input: &[f32], expansion: Option<&Expansion>, h: usize, w: usize, bias: &[f32], clamp: Clamp, out: *mut f32, oh: usize, ow: usize) {
        let bands = self.bands(oh, threads);
        let (b, band) = (t / bands, t % bands);
        self.run_rows(b, band * oh / bands..(band + 1) * oh / bands, input, expansion, h, w, bias, clamp, out, oh, ow);
    }

    /// Output rows `out_rows` of block b (see `run_task`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_rows(&self, b: usize, out_rows: std::ops::Range<usize>, input: &[f32], expansion: Option<&Expansion>, h: usize, w: usize, bias: &[f32], clamp: Clamp, out: *mut f32, oh: usize, ow: usize) {
        assert!(std::arch::is_x86_feature_detected!("avx512f"));
        let planes = expansion.map_or(self.channels, |e| e.c_in);
        assert!(input.len() == planes * h * w && bias.len() == self.channels && b < self.blocks() && out_rows.end <= oh);
        assert!(expansion.is_none_or(|e| e.bias.len() == self.blocks() * 16));
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        // Buffer columns: every tile reads 16 output pixels, the last one past `ow` too.
        let tiles = ow.div_ceil(16);
        let bw = ((tiles * 16 - 1) * sw + (kw - 1) * dw + 1).max(w + self.pad_before[1]);
        // Rows of the padded input one output row reads; the buffer is a ring of that many
        // blocked rows, each filled just before its first use, so it stays in L1/L2 however
        // large the map (a whole blocked copy of a 224x224 input is 3.4 MB).
        let span = (kh - 1) * dh + 1;
        let c0 = b * 16;
        let nc = (self.channels - c0).min(16);
        BLOCK.with(|buf| {
            let mut buf = buf.borrow_mut();
            if buf.len() < span * bw * 16 + 16 {
                buf.resize(span * bw * 16 + 16, 0.0);
            }
            // Every pixel vector on a 64-byte line: unaligned ones split each load in two.
            let skip = buf.as_ptr().align_offset(64).min(15);
            let buf = &mut buf[skip..];
            let ring = buf.as_mut_ptr();
            // The block's own planes, or every plane the expansion reads.
            let src = if expansion.is_some() { input } else { &input[c0 * h * w..] };
            // SAFETY: avx512f checked above; the ring holds span x bw x 16 floats and every row
            // index is taken modulo span; input reads are masked to nc channels and w columns;
            // output writes go to nc channels' rows of ow columns, masked, inside `out`
            // (c_out x oh x ow, checked by the caller).
            unsafe {
                let bias16 = _mm512_maskz_loadu_ps(lanes(nc), bias.as_ptr().add(c0));
                let wts = self.weights.as_ptr().add(b * kh * kw * 16);
                // The column stride as a constant, so the 16 loads of a tap are fixed offsets
                // from one address (a run-time stride made them one serial chain of adds).
                let tile = match (sw, if dw == 1 { kw } else { 0 }) {
                    (1, 7) => slide::<1, 7>,
                    (2, 7) => slide::<2, 7>,
                    (1, 5) => slide::<1, 5>,
                    (2, 5) => slide::<2, 5>,
                    (1, 3) => slide::<1, 3>,
                    (2, 3) => slide::<2, 3>,
                    (1, _) => tile::<1>,
                    _ => tile::<2>,
                };
                let rows = Ring { base: ring, stride: bw * 16, span, step: dh, kh };
                let mut filled = 0;
                for oy in out_rows {
                    let y0 = oy * sh;
                    for y in filled.max(y0)..y0 + span {
                        let row = ring.add((y % span) * bw * 16);
                        match expansion {
                            Some(e) => self.fill_row_expanded(e, b, row, bw, src, h, w, y),
                            None => self.fill_row(row, bw, src, h, w, nc, y),
                        }
                    }
                    filled = y0 + span;
                    tile(&rows, y0 % span, wts, bias16, clamp, kw, dw, tiles, out.add(c0 * oh * ow + oy * ow), oh * ow, ow, nc);
                }
            }
        });
    }

    /// `fill_row` for block `b` of the expansion's output: padded row `y` computed from the
    /// expansion's input planes (h x w at `src`). The padding is zeros, as the depthwise
    /// convolution pads what the expansion wrote.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn fill_row_expanded(&self, e: &Expansion, b: usize, row: *mut f32, bw: usize, src: &[f32], h: usize, w: usize, y: usize) {
        let [pt, pl] = self.pad_before;
        let zero = _mm512_setzero_ps();
        let inside = y >= pt && y < pt + h;
        for x in (0..bw).filter(|&x| !inside || x < pl || x >= pl + w) {
            _mm512_storeu_ps(row.add(x * 16), zero);
        }
        if inside {
            e.row(b, src.as_ptr().add((y - pt) * w), h * w, w, row.add(pl * 16));
        }
    }

    /// Fills one blocked row (bw pixels x 16 channels at `row`) with padded input row `y` of
    /// nc channels (planes of h x w at `src`).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn fill_row(&self, row: *mut f32, bw: usize, src: &[f32], h: usize, w: usize, nc: usize, y: usize) {
        let [pt, pl] = self.pad_before;
        let zero = _mm512_setzero_ps();
        if y < pt || y >= pt + h {
            for x in 0..bw {
                _mm512_storeu_ps(row.add(x * 16), zero);
            }
            return;
        }
        for x in (0..pl).chain(pl + w..bw) {
            _mm512_storeu_ps(row.add(x * 16), zero);
        }
        let iy = y - pt;
        let line = src.as_ptr().add(iy * w);
        let mut x0 = 0;
        // Whole 16 x 16 squares with every index a constant, so the square stays in registers.
        if nc == 16 {
            while x0 + 16 <= w {
                let mut r = [zero; 16];
                unroll!(c in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
                    r[c] = _mm512_loadu_ps(line.add(c * h * w + x0));
                });
                transpose16(&mut r);
                let d = row.add((pl + x0) * 16);
                unroll!(j in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
                    _mm512_storeu_ps(d.add(j * 16), r[j]);
                });
                x0 += 16;
            }
        }
        while x0 < w {
            let n = (w - x0).min(16);
            let mut r = [zero; 16];
            for (c, v) in r.iter_mut().enumerate().take(nc) {
                *v = _mm512_maskz_loadu_ps(lanes(n), line.add(c * h * w + x0));
            }
            transpose16(&mut r);
            for (j, v) in r.iter().enumerate().take(n) {
                _mm512_storeu_ps(row.add((pl + x0 + j) * 16), *v);
            }
            x0 += 16;
        }
    }
}

/// A pointwise convolution (c_in planes -> the depthwise convolution's channels, with bias and
/// clamp) whose output only the depthwise convolution reads: its rows are computed straight
/// into the ring as they are needed instead of being written out and read back (LitePose's and
/// MoveNet's expansions over their largest maps wrote 9-19 MB that the next op read again).
/// Each output is the pointwise kernel's arithmetic in its order (bias, then one fused
/// multiply-add per input channel in turn, then max and min), so the result is bitwise the
/// unfused pair's.
#[derive(Debug, Clone, PartialEq)]
pub struct Expansion {
    c_in: usize,
    /// Per block of 16 channels: [ci][16] weights, zero past the last channel.
    weights: Vec<f32>,
    /// Per block: 16 biases, zero past the last channel.
    bias: Vec<f32>,
    clamp: Clamp,
}

impl Expansion {
    /// `weights` as [channel][c_in] (a 1x1 convolution's OIHW), one bias per channel.
    pub fn new(c_in: usize, channels: usize, weights: &[f32], bias: &[f32], clamp: Clamp) -> Expansion {
        assert_eq!(weights.len(), channels * c_in);
        assert_eq!(bias.len(), channels);
        let blocks = channels.div_ceil(16);
        let mut w = vec![0.0; blocks * c_in * 16];
        let mut b = vec![0.0; blocks * 16];
        for c in 0..channels {
            b[c] = bias[c];
            for ci in 0..c_in {
                w[((c / 16) * c_in + ci) * 16 + c % 16] = weights[c * c_in + ci];
            }
        }
        Expansion { c_in, weights: w, bias: b, clamp }
    }

    pub fn c_in(&self) -> usize {
        self.c_in
    }

    /// Block `b`'s 16 channels of `n` pixels of one row (the row's pixels in each input plane
    /// at `src`, planes `plane` apart) into `dst` as [pixel][16].
    #[target_feature(enable = "avx512f")]
    unsafe fn row(&self, b: usize, src: *const f32, plane: usize, n: usize, dst: *mut f32) {
        let w = self.weights.as_ptr().add(b * self.c_in * 16);
        let bias = _mm512_loadu_ps(self.bias.as_ptr().add(b * 16));
        let clamp = self.clamp != Clamp::NONE;
        let (lo, hi) = (_mm512_set1_ps(self.clamp.lo), _mm512_set1_ps(self.clamp.hi));
        let store = |x: usize, v: __m512| {
            let v = if clamp { _mm512_min_ps(_mm512_max_ps(v, lo), hi) } else { v };
            _mm512_storeu_ps(dst.add(x * 16), v);
        };
        let mut x = 0;
        // Sixteen pixels at a time: each weight vector loaded once feeds sixteen accumulators.
        while x + 16 <= n {
            let mut acc = [bias; 16];
            for ci in 0..self.c_in {
                let wv = _mm512_loadu_ps(w.add(ci * 16));
                let p = src.add(ci * plane + x);
                unroll!(j in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
                    acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(*p.add(j)), wv, acc[j]);
                });
            }
            unroll!(j in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
                store(x + j, acc[j]);
            });
            x += 16;
        }
        while x + 8 <= n {
            let mut acc = [bias; 8];
            for ci in 0..self.c_in {
                let wv = _mm512_loadu_ps(w.add(ci * 16));
                let p = src.add(ci * plane + x);
                unroll!(j in [0, 1, 2, 3, 4, 5, 6, 7] {
                    acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(*p.add(j)), wv, acc[j]);
                });
            }
            unroll!(j in [0, 1, 2, 3, 4, 5, 6, 7] {
                store(x + j, acc[j]);
            });
            x += 8;
        }
        // The last few as a group of eight too (the last pixel repeated): one pixel at a time
        // is one chain of dependent multiply-adds, which took longer than the rest of a
        // 28-pixel row.
        if x < n {
            let last = n - 1;
            let mut acc = [bias; 8];
            for ci in 0..self.c_in {
                let wv = _mm512_loadu_ps(w.add(ci * 16));
                let p = src.add(ci * plane);
                unroll!(j in [0, 1, 2, 3, 4, 5, 6, 7] {
                    acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(*p.add((x + j).min(last))), wv, acc[j]);
                });
            }
            unroll!(j in [0, 1, 2, 3, 4, 5, 6, 7] {
                if x + j < n {
                    store(x + j, acc[j]);
                }
            });
        }
    }
}

/// The ring of blocked input rows one output row reads: kernel row ky is ring slot
/// (first + ky * step) mod span.
struct Ring {
    base: *mut f32,
    stride: usize,
    span: usize,
    step: usize,
    kh: usize,
}

impl Ring {
    /// The row kernel row `ky` reads, `first` being the slot of kernel row 0.
    #[inline(always)]
    fn row(&self, first: usize, ky: usize) -> *const f32 {
        // ky * step < span, so one wrap at most.
        let mut slot = first + ky * self.step;
        if slot >= self.span {
            slot -= self.span;
        }
        self.base.wrapping_add(slot * self.stride)
    }
}

fn lanes(n: usize) -> u16 {
    ((1u32 << n) - 1) as u16
}

/// A finished tile (`acc[j]` = 16 channels of pixel j): clamped, transposed, stored. A macro,
/// not a function: an out-of-line call took the accumulators through memory (2x slower).
macro_rules! finish_tile {
    ($acc:ident, $clamp:expr, $out:expr, $plane:expr, $n:expr, $nc:expr) => {
        if $clamp != Clamp::NONE {
            let (lo, hi) = (_mm512_set1_ps($clamp.lo), _mm512_set1_ps($clamp.hi));
            for a in $acc.iter_mut() {
                *a = _mm512_min_ps(_mm512_max_ps(*a, lo), hi);
            }
        }
        transpose16(&mut $acc);
        store16(&$acc, $out, $plane, $n, $nc);
    };
}

/// 16 output pixels (ox0..) of output row oy, 16 channels, written to the NCHW planes at `out`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const SW: usize>(
    rows: &Ring,
    first: usize,
    wts: *const f32,
    bias: __m512,
    clamp: Clamp,
    kw: usize,
    dw: usize,
    tiles: usize,
    out: *mut f32,
    plane: usize,
    ow: usize,
    nc: usize,
) {
    for t in 0..tiles {
        let ox0 = t * 16;
        let mut acc = [bias; 16];
        for ky in 0..rows.kh {
            let row = rows.row(first, ky);
            for kx in 0..kw {
                let wv = _mm512_loadu_ps(wts.add((ky * kw + kx) * 16));
                let p = row.add((ox0 * SW + kx * dw) * 16);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_loadu_ps(p.add(j * SW * 16)), wv, *a);
                }
            }
        }
        finish_tile!(acc, clamp, out.add(ox0), plane, (ow - ox0).min(16), nc);
    }
}

/// `tile` for kernels KW wide at column dilation 1: each kernel row's KW weight vectors stay
/// in registers and each input pixel is loaded once, feeding every output pixel whose window
/// covers it (up to KW multiply-adds per load instead of one).
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn slide<const SW: usize, const KW: usize>(
    rows: &Ring,
    first: usize,
    wts: *const f32,
    bias: __m512,
    clamp: Clamp,
    _kw: usize,
    _dw: usize,
    tiles: usize,
    out: *mut f32,
    plane: usize,
    ow: usize,
    nc: usize,
) {
    for t in 0..tiles {
        let ox0 = t * 16;
        let mut acc = [bias; 16];
        for ky in 0..rows.kh {
            let p = rows.row(first, ky).add(ox0 * SW * 16);
            let mut wv = [_mm512_setzero_ps(); KW];
            for (kx, w) in wv.iter_mut().enumerate() {
                *w = _mm512_loadu_ps(wts.add((ky * KW + kx) * 16));
            }
            // Input pixel q feeds output pixel j = (q - kx) / SW at tap kx. Unrolled by hand so
            // every accumulator index is a constant (a loop left `acc` in memory).
            unroll!(q in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36] {
                if q < 15 * SW + KW {
                    let x = _mm512_loadu_ps(p.add(q * 16));
                    unroll!(kx in [0, 1, 2, 3, 4, 5, 6] {
                        if kx < KW && q >= kx && (q - kx) % SW == 0 && (q - kx) / SW < 16 {
                            let j = (q - kx) / SW;
                            acc[j] = _mm512_fmadd_ps(x, wv[kx], acc[j]);
                        }
                    });
                }
            });
        }
        finish_tile!(acc, clamp, out.add(ox0), plane, (ow - ox0).min(16), nc);
    }
}

/// A transposed tile (`acc[c]` = 16 pixels of channel c) into nc planes `plane` apart, n pixels
/// each; full tiles unrolled, so the tile stays in registers.
///
/// This and `transpose16` take the caller's accumulators by reference, so they must be inlined
/// into it or the accumulators live in memory through the whole tile (a build where LLVM left
/// them out of line stored every accumulator after each multiply-add: the 7x7 stride-1 layers
/// ran 2x slower, LitePose-XS 14.5 -> 18.3 ms, after an unrelated change elsewhere in the
/// crate). `#[inline(always)]` cannot go with `#[target_feature]`, so they have none: inlined,
/// they take the caller's AVX-512.
#[inline(always)]
unsafe fn store16(acc: &[__m512; 16], out: *mut f32, plane: usize, n: usize, nc: usize) {
    if n == 16 && nc == 16 {
        unroll!(c in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
            _mm512_storeu_ps(out.add(c * plane), acc[c]);
        });
        return;
    }
    // A copy, so the caller's accumulators never have their address taken: that alone kept
    // them in memory through the whole tile (measured 2x slower).
    let copy = *acc;
    store_part(&copy, out, plane, n, nc);
}

/// `store16` for partial tiles (row ends, the last block's channels).
#[inline(never)]
#[target_feature(enable = "avx512f")]
unsafe fn store_part(acc: &[__m512; 16], out: *mut f32, plane: usize, n: usize, nc: usize) {
    let m = lanes(n);
    for (c, a) in acc.iter().enumerate().take(nc) {
        _mm512_mask_storeu_ps(out.add(c * plane), m, *a);
    }
}

/// Transposes 16 vectors of 16 lanes in place: r[i][j] becomes r[j][i]. Always inlined (see
/// `store16`); callers have AVX-512.
#[inline(always)]
unsafe fn transpose16(r: &mut [__m512; 16]) {
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for i in 0..4 {
        let (a, b) = (t[4 * i], t[4 * i + 2]);
        let (c, d) = (t[4 * i + 1], t[4 * i + 3]);
        r[4 * i] = _mm512_shuffle_ps::<0x44>(a, b);
        r[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(a, b);
        r[4 * i + 2] = _mm512_shuffle_ps::<0x44>(c, d);
        r[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(c, d);
    }
    for i in 0..4 {
        t[i] = _mm512_shuffle_f32x4::<0x88>(r[i], r[i + 4]);
        t[i + 4] = _mm512_shuffle_f32x4::<0xDD>(r[i], r[i + 4]);
        t[i + 8] = _mm512_shuffle_f32x4::<0x88>(r[i + 8], r[i + 12]);
        t[i + 12] = _mm512_shuffle_f32x4::<0xDD>(r[i + 8], r[i + 12]);
    }
    for i in 0..8 {
        r[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[i + 8]);
        r[i + 8] = _mm512_shuffle_f32x4::<0xDD>(t[i], t[i + 8]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu_kernels::choice::avx512_or_skip;
    use crate::engine::cpu_kernels::spec::{reference, ConvSpec};
    use crate::rng::SplitMix64;

    #[test]
    fn transpose16_transposes() {
        if !avx512_or_skip("dw_blocked::transpose16_transposes") {
            return;
        }
        let m: Vec<f32> = (0..256).map(|i| i as f32).collect();
        let mut got = [0f32; 256];
        // SAFETY: avx512f checked; 256 floats in and out.
        unsafe {
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, v) in r.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(m.as_ptr().add(16 * i));
            }
            transpose16(&mut r);
            for (i, v) in r.iter().enumerate() {
                _mm512_storeu_ps(got.as_mut_ptr().add(16 * i), *v);
            }
        }
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(got[16 * i + j], m[16 * j + i], "({i}, {j})");
            }
        }
    }

    /// Channel counts around the block size, kernels 1-9 (and strips), strides 1-2,
    /// dilations, uneven padding, narrow and wide maps.
    #[test]
    fn matches_reference_over_random_shapes() {
        if !avx512_or_skip("dw_blocked::matches_reference_over_random_shapes") {
            return;
        }
        let mut rng = SplitMix64(41);
        let mut tested = 0;
        let mut banded = 0;
        for case in 0..300 {
            let k = [1 + rng.below(if case % 5 == 0 { 11 } else { 7 }), 1 + rng.below(if case % 4 == 0 { 11 } else { 7 })];
            let c = [1, 15, 16, 17, 33][case % 5] + rng.below(3);
            let spec = ConvSpec {
                c_in: c,
                c_out: c,
                group: c,
                kernel: k,
                stride: [1 + rng.below(2), 1 + rng.below(2)],
                dilation: [1 + rng.below(3), 1 + rng.below(3)],
                pad_before: [rng.below(k[0] + 1), rng.below(k[1] + 1)],
                pad_after: [rng.below(k[0] + 1), rng.below(k[1] + 1)],
            };
            let (h, w) = (1 + rng.below(30), 1 + rng.below(if case % 2 == 0 { 20 } else { 60 }));
            banded += usize::from(c <= 17 && h >= 9 && case % 4 > 0);
            let Some((oh, ow)) = spec.output_hw(h, w) else { continue };
            let input: Vec<f32> = (0..c * h * w).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
            let weights: Vec<f32> = (0..c * k[0] * k[1]).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
            let bias: Vec<f32> = (0..c).map(|_| rng.unit_f32() - 0.5).collect();
            let clamp = if case % 3 == 0 { Clamp { lo: 0.0, hi: 0.5 } } else { Clamp::NONE };
            let want = reference(&spec, &input, h, w, &weights, &bias, clamp);
            let d = BlockedDw::new(c, k, spec.stride, spec.dilation, spec.pad_before, &weights).expect("strides 1-2");
            let mut got = vec![f32::NAN; c * oh * ow];
            // Whole blocks, or blocks cut into bands of rows as 2-4 threads would run them.
            let threads = 1 + case % 4;
            for t in 0..d.tasks(oh, threads) {
                // SAFETY: `got` holds c x oh x ow floats.
                unsafe { d.run_task(t, threads, &input, None, h, w, &bias, clamp, got.as_mut_ptr(), oh, ow) };
            }
            let tol = 1e-5 * ((k[0] * k[1]) as f32).sqrt();
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= tol, "{spec:?} {h}x{w} at {i}: {a} vs {b}");
            }
            tested += 1;
        }
        assert!(tested > 200, "only {tested} shapes were valid");
        assert!(banded > 30, "only {banded} shapes were cut into bands");
    }
}
