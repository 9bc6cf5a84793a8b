//! Depthwise convolution with 16 channels in the vector lanes (AVX-512), for large kernels.
//!
//! Why: in NCHW a depthwise kernel multiplies each loaded vector by one broadcast weight, and
//! on small maps (LitePose's 28x28 stages with 720 channels) the row tiles of `conv` stay near
//! 16-19 GMAC/s, where onnxruntime's channel-blocked (NCHWc) kernels reached 40-48 on the same
//! 7x7 convolutions. Here each task copies 16 channels into a zero-padded buffer of
//! [row][column][16 channels] (16x16 transposes in registers), computes 16 output pixels x 16
//! channels per tile with one weight vector per tap, and transposes the tile back into the
//! NCHW output, so the graph keeps its layout.

#![cfg(target_arch = "x86_64")]

use super::conv::Clamp;
use std::arch::x86_64::*;

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
    /// `None` unless the column stride is 1 or 2.
    pub fn new(channels: usize, kernel: [usize; 2], stride: [usize; 2], dilation: [usize; 2], pad_before: [usize; 2], weights: &[f32]) -> Option<BlockedDw> {
        if !(1..=2).contains(&stride[1]) {
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

    pub fn blocks(&self) -> usize {
        self.channels.div_ceil(16)
    }

    /// Channels 16 b .. 16 b + 16 of one CHW image (h x w in, oh x ow out).
    ///
    /// # Safety
    /// `out` points to `channels x oh x ow` writable floats, and no other thread touches the
    /// planes of this block's channels while it runs (other blocks may run concurrently).
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn run_block(&self, b: usize, input: &[f32], h: usize, w: usize, bias: &[f32], clamp: Clamp, out: *mut f32, oh: usize, ow: usize) {
        assert!(std::arch::is_x86_feature_detected!("avx512f"));
        assert!(input.len() == self.channels * h * w && bias.len() == self.channels && b < self.blocks());
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        // Buffer columns: every tile reads 16 output pixels, the last one past `ow` too.
        let tiles = ow.div_ceil(16);
        let bw = ((tiles * 16 - 1) * sw + (kw - 1) * dw + 1).max(w + self.pad_before[1]);
        let bh = ((oh - 1) * sh + (kh - 1) * dh + 1).max(h + self.pad_before[0]);
        let c0 = b * 16;
        let nc = (self.channels - c0).min(16);
        BLOCK.with(|buf| {
            let mut buf = buf.borrow_mut();
            if buf.len() < bh * bw * 16 + 16 {
                buf.resize(bh * bw * 16 + 16, 0.0);
            }
            // Every pixel vector on a 64-byte line: unaligned ones split each load in two.
            let skip = buf.as_ptr().align_offset(64).min(15);
            let buf = &mut buf[skip..];
            // SAFETY: avx512f checked above; the buffer holds bh x bw x 16 floats; input reads
            // are masked to nc channels and w columns; output writes to nc channels' rows of
            // ow columns, masked, inside `out` (c_out x oh x ow, checked by the caller).
            unsafe {
                self.fill(buf, bh, bw, &input[c0 * h * w..], h, w, nc);
                let bias16 = _mm512_maskz_loadu_ps(lanes(nc), bias.as_ptr().add(c0));
                let wts = self.weights.as_ptr().add(b * kh * kw * 16);
                // The column stride as a constant, so the 16 loads of a tap are fixed offsets
                // from one address (a run-time stride made them one serial chain of adds).
                let tile = if sw == 1 { tile::<1> } else { tile::<2> };
                for oy in 0..oh {
                    for t in 0..tiles {
                        tile(buf, bw, wts, bias16, clamp, [kh, kw], sh, [dh, dw], oy, t * 16, out.add(c0 * oh * ow), oh * ow, ow, nc);
                    }
                }
            }
        });
    }

    /// Copies nc channels (planes of h x w at `src`) into the zero-padded blocked buffer.
    #[target_feature(enable = "avx512f")]
    unsafe fn fill(&self, buf: &mut [f32], bh: usize, bw: usize, src: &[f32], h: usize, w: usize, nc: usize) {
        let [pt, pl] = self.pad_before;
        let zero = _mm512_setzero_ps();
        let p = buf.as_mut_ptr();
        for y in 0..bh {
            let row = p.add(y * bw * 16);
            if y < pt || y >= pt + h {
                for x in 0..bw {
                    _mm512_storeu_ps(row.add(x * 16), zero);
                }
                continue;
            }
            for x in (0..pl).chain(pl + w..bw) {
                _mm512_storeu_ps(row.add(x * 16), zero);
            }
            let iy = y - pt;
            for x0 in (0..w).step_by(16) {
                let n = (w - x0).min(16);
                let mut r = [zero; 16];
                for (c, v) in r.iter_mut().enumerate().take(nc) {
                    *v = _mm512_maskz_loadu_ps(lanes(n), src.as_ptr().add((c * h + iy) * w + x0));
                }
                transpose16(&mut r);
                for (j, v) in r.iter().enumerate().take(n) {
                    _mm512_storeu_ps(row.add((pl + x0 + j) * 16), *v);
                }
            }
        }
    }
}

fn lanes(n: usize) -> u16 {
    ((1u32 << n) - 1) as u16
}

/// 16 output pixels (ox0..) of output row oy, 16 channels, written to the NCHW planes at `out`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const SW: usize>(
    buf: &[f32],
    bw: usize,
    wts: *const f32,
    bias: __m512,
    clamp: Clamp,
    [kh, kw]: [usize; 2],
    sh: usize,
    [dh, dw]: [usize; 2],
    oy: usize,
    ox0: usize,
    out: *mut f32,
    plane: usize,
    ow: usize,
    nc: usize,
) {
    let mut acc = [bias; 16];
    let base = buf.as_ptr();
    for ky in 0..kh {
        let row = base.add((oy * sh + ky * dh) * bw * 16);
        for kx in 0..kw {
            let wv = _mm512_loadu_ps(wts.add((ky * kw + kx) * 16));
            let p = row.add((ox0 * SW + kx * dw) * 16);
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm512_fmadd_ps(_mm512_loadu_ps(p.add(j * SW * 16)), wv, *a);
            }
        }
    }
    if clamp != Clamp::NONE {
        let (lo, hi) = (_mm512_set1_ps(clamp.lo), _mm512_set1_ps(clamp.hi));
        for a in acc.iter_mut() {
            *a = _mm512_min_ps(_mm512_max_ps(*a, lo), hi);
        }
    }
    transpose16(&mut acc);
    let m = lanes((ow - ox0).min(16));
    for (c, a) in acc.iter().enumerate().take(nc) {
        _mm512_mask_storeu_ps(out.add(c * plane + oy * ow + ox0), m, *a);
    }
}

/// Transposes 16 vectors of 16 lanes in place: r[i][j] becomes r[j][i].
#[inline]
#[target_feature(enable = "avx512f")]
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
    use crate::engine::cpu_kernels::conv::{reference, ConvSpec};
    use crate::rng::SplitMix64;

    #[test]
    fn transpose16_transposes() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
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
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 here: nothing to test");
            return;
        }
        let mut rng = SplitMix64(41);
        let mut tested = 0;
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
            let Some((oh, ow)) = spec.output_hw(h, w) else { continue };
            let input: Vec<f32> = (0..c * h * w).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
            let weights: Vec<f32> = (0..c * k[0] * k[1]).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
            let bias: Vec<f32> = (0..c).map(|_| rng.unit_f32() - 0.5).collect();
            let clamp = if case % 3 == 0 { Clamp { lo: 0.0, hi: 0.5 } } else { Clamp::NONE };
            let want = reference(&spec, &input, h, w, &weights, &bias, clamp);
            let d = BlockedDw::new(c, k, spec.stride, spec.dilation, spec.pad_before, &weights).expect("strides 1-2");
            let mut got = vec![f32::NAN; c * oh * ow];
            for b in 0..d.blocks() {
                // SAFETY: `got` holds c x oh x ow floats.
                unsafe { d.run_block(b, &input, h, w, &bias, clamp, got.as_mut_ptr(), oh, ow) };
            }
            let tol = 1e-5 * ((k[0] * k[1]) as f32).sqrt();
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= tol, "{spec:?} {h}x{w} at {i}: {a} vs {b}");
            }
            tested += 1;
        }
        assert!(tested > 200, "only {tested} shapes were valid");
    }
}
