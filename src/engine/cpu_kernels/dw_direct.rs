//! Depthwise convolution read straight from the unpadded input plane (AVX-512), for strides 1
//! and 2: borders are masked lanes of each load instead of a padded copy.
//!
//! Why: with 9 or 25 taps per output, the padded (and, at stride 2, phase-split) copy that
//! `conv` makes of every channel costs as much as the multiply-adds; MoveNet's and selfie's
//! 3x3 depthwise convolutions ran at 3-5 GMAC/s that way. Masked loads never touch the lanes
//! they mask off, so a vector may start before the row or run past it.

#![cfg(target_arch = "x86_64")]

use super::spec::Clamp;
use std::arch::x86_64::*;

/// One depthwise convolution's geometry, the same for every channel.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectDw {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    dh: usize,
    pt: usize,
    s2: bool,
    /// Per (output vector, kx): first input column the vector reads and the load masks (the
    /// second is for the upper 16 columns at stride 2).
    taps: Vec<(isize, u16, u16)>,
}

impl DirectDw {
    /// `None` unless the horizontal stride is 1 or 2 and the output is not empty (`supports`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(h: usize, w: usize, oh: usize, ow: usize, kernel: [usize; 2], stride: [usize; 2], dilation: [usize; 2], pad_before: [usize; 2]) -> Option<DirectDw> {
        if !DirectDw::supports(oh, ow, stride) {
            return None;
        }
        let s2 = stride[1] == 2;
        let mask = |first: isize| -> u16 {
            (0..16).filter(|&j| first + j >= 0 && first + j < w as isize).fold(0u16, |m, j| m | (1 << j))
        };
        let mut taps = Vec::new();
        for c in 0..ow.div_ceil(16) {
            for kx in 0..kernel[1] {
                let first = (c * 16 * stride[1] + kx * dilation[1]) as isize - pad_before[1] as isize;
                taps.push((first, mask(first), if s2 { mask(first + 16) } else { 0 }));
            }
        }
        Some(DirectDw {
            h,
            w,
            oh,
            ow,
            kh: kernel[0],
            kw: kernel[1],
            sh: stride[0],
            dh: dilation[0],
            pt: pad_before[0],
            s2,
            taps,
        })
    }

    /// Whether `new` takes a convolution of this output size and stride.
    pub fn supports(oh: usize, ow: usize, stride: [usize; 2]) -> bool {
        (1..=2).contains(&stride[1]) && ow > 0 && oh > 0
    }

    /// One channel: `src` is its h x w plane, `wts` its kh x kw kernel, `dst` its oh x ow plane.
    pub fn run(&self, src: &[f32], wts: &[f32], bias: f32, clamp: Clamp, dst: &mut [f32]) {
        assert!(src.len() == self.h * self.w && wts.len() == self.kh * self.kw && dst.len() == self.oh * self.ow);
        assert!(std::arch::is_x86_feature_detected!("avx512f"));
        let chunks = self.ow.div_ceil(16);
        // Tiles of R rows x V vectors: 8 accumulators or more to cover the FMA latency.
        // SAFETY: avx512f checked above; every load is masked to columns inside the row and
        // rows are checked against h; stores stay inside dst (masked at the row end).
        unsafe {
            match chunks {
                1 => self.rows::<8, 1>(src, wts, bias, clamp, dst),
                2 => self.rows::<4, 2>(src, wts, bias, clamp, dst),
                3 => self.rows::<3, 3>(src, wts, bias, clamp, dst),
                _ => self.rows::<2, 4>(src, wts, bias, clamp, dst),
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn rows<const R: usize, const V: usize>(&self, src: &[f32], wts: &[f32], bias: f32, clamp: Clamp, dst: &mut [f32]) {
        let chunks = self.ow.div_ceil(16);
        let full_v = chunks / V * V;
        let mut oy = 0;
        while oy + R <= self.oh {
            let mut c = 0;
            while c < full_v {
                self.tile::<R, V>(src, wts, bias, clamp, dst, oy, c);
                c += V;
            }
            while c < chunks {
                self.tile::<R, 1>(src, wts, bias, clamp, dst, oy, c);
                c += 1;
            }
            oy += R;
        }
        while oy < self.oh {
            let mut c = 0;
            while c < full_v {
                self.tile::<1, V>(src, wts, bias, clamp, dst, oy, c);
                c += V;
            }
            while c < chunks {
                self.tile::<1, 1>(src, wts, bias, clamp, dst, oy, c);
                c += 1;
            }
            oy += 1;
        }
    }

    /// Output rows oy0..oy0+R, vectors c0..c0+V.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const R: usize, const V: usize>(&self, src: &[f32], wts: &[f32], bias: f32, clamp: Clamp, dst: &mut [f32], oy0: usize, c0: usize) {
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let mut acc = [[_mm512_set1_ps(bias); V]; R];
        let base = src.as_ptr();
        for ky in 0..self.kh {
            // The input row each output row reads at this kernel row, if inside the image.
            let mut rows = [std::ptr::null::<f32>(); R];
            for (r, p) in rows.iter_mut().enumerate() {
                let iy = ((oy0 + r) * self.sh + ky * self.dh) as isize - self.pt as isize;
                if iy >= 0 && (iy as usize) < self.h {
                    *p = base.add(iy as usize * self.w);
                }
            }
            for kx in 0..self.kw {
                let wv = _mm512_set1_ps(*wts.get_unchecked(ky * self.kw + kx));
                for r in 0..R {
                    if rows[r].is_null() {
                        continue;
                    }
                    for v in 0..V {
                        let &(first, m0, m1) = self.taps.get_unchecked((c0 + v) * self.kw + kx);
                        let p = rows[r].wrapping_offset(first);
                        let x = if self.s2 {
                            let a = _mm512_maskz_loadu_ps(m0, p);
                            let b = _mm512_maskz_loadu_ps(m1, p.wrapping_add(16));
                            _mm512_permutex2var_ps(a, evens, b)
                        } else {
                            _mm512_maskz_loadu_ps(m0, p)
                        };
                        acc[r][v] = _mm512_fmadd_ps(x, wv, acc[r][v]);
                    }
                }
            }
        }
        let (lo, hi) = (_mm512_set1_ps(clamp.lo), _mm512_set1_ps(clamp.hi));
        let clamped = clamp != Clamp::NONE;
        for (r, acc_r) in acc.iter().enumerate() {
            let out = dst.as_mut_ptr().add((oy0 + r) * self.ow);
            for (v, &a) in acc_r.iter().enumerate() {
                let x0 = (c0 + v) * 16;
                let y = if clamped { _mm512_min_ps(_mm512_max_ps(a, lo), hi) } else { a };
                let n = (self.ow - x0).min(16);
                _mm512_mask_storeu_ps(out.add(x0), ((1u32 << n) - 1) as u16, y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu_kernels::choice::avx512_or_skip;
    use crate::engine::cpu_kernels::spec::{reference, ConvSpec};
    use crate::rng::SplitMix64;

    /// Every kernel size (not only the 3x3 the engine picks it for), strides 1-2 per axis,
    /// dilations, uneven padding, maps narrower and wider than a vector.
    #[test]
    fn matches_reference_over_random_shapes() {
        if !avx512_or_skip("dw_direct::matches_reference_over_random_shapes") {
            return;
        }
        let mut rng = SplitMix64(29);
        let mut tested = 0;
        for case in 0..400 {
            let k = [1 + rng.below(if case % 9 == 0 { 13 } else { 5 }), 1 + rng.below(if case % 7 == 0 { 13 } else { 5 })];
            let spec = ConvSpec {
                c_in: 1 + rng.below(5),
                c_out: 0,
                group: 0,
                kernel: k,
                stride: [1 + rng.below(3), 1 + rng.below(2)],
                dilation: [1 + rng.below(3), 1 + rng.below(3)],
                pad_before: [rng.below(k[0] + 1), rng.below(k[1] + 1)],
                pad_after: [rng.below(k[0] + 1), rng.below(k[1] + 1)],
            };
            let spec = ConvSpec { c_out: spec.c_in, group: spec.c_in, ..spec };
            let (h, w) = (1 + rng.below(30), 1 + rng.below(if case % 2 == 0 { 20 } else { 70 }));
            let Some((oh, ow)) = spec.output_hw(h, w) else { continue };
            let n = spec.c_in;
            let input: Vec<f32> = (0..n * h * w).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
            let weights: Vec<f32> = (0..n * k[0] * k[1]).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.unit_f32() - 0.5).collect();
            let clamp = if case % 3 == 0 { Clamp { lo: 0.0, hi: 0.5 } } else { Clamp::NONE };
            let want = reference(&spec, &input, h, w, &weights, &bias, clamp);
            let d = DirectDw::new(h, w, oh, ow, k, spec.stride, spec.dilation, spec.pad_before).expect("strides 1-2");
            let mut got = vec![f32::NAN; n * oh * ow];
            for c in 0..n {
                let taps = k[0] * k[1];
                d.run(&input[c * h * w..][..h * w], &weights[c * taps..][..taps], bias[c], clamp, &mut got[c * oh * ow..][..oh * ow]);
            }
            let tol = 1e-5 * ((k[0] * k[1]) as f32).sqrt();
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= tol, "{spec:?} {h}x{w} at {i}: {a} vs {b}");
            }
            tested += 1;
        }
        assert!(tested > 300, "only {tested} shapes were valid");
    }
}
