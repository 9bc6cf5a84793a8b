//! Separable resize of the last two axes (bilinear, cubic or nearest, from tract's own per-axis
//! plans), one output row at a time. tract 0.23.9 resamples one axis per pass and walks the
//! last axis one element at a time; this does the row pass as whole-row multiply-adds (which
//! vectorise) and the column pass as a gather per output (AVX-512 gathers when every column
//! has the same number of taps), in the same order of additions as tract, so results are
//! bitwise equal.

/// Taps of one axis: `window` (index, weight) pairs per output position.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisTaps {
    pub window: usize,
    pub indices: Vec<usize>,
    pub weights: Vec<f32>,
}

impl AxisTaps {
    pub fn len_out(&self) -> usize {
        self.indices.len() / self.window.max(1)
    }
}

/// Resizes `planes` planes of `h` x `w` into `planes` x rows.len_out() x cols.len_out().
pub fn resize_planes(input: &[f32], planes: usize, h: usize, w: usize, rows: &AxisTaps, cols: &AxisTaps, out: &mut [f32]) {
    let (oh, ow) = (rows.len_out(), cols.len_out());
    assert_eq!(input.len(), planes * h * w);
    assert_eq!(out.len(), planes * oh * ow);
    // Column taps without the zero weights (tract skips them too), so the inner loop has no
    // branch; indices checked once here.
    let (mut col_idx, mut col_w, mut col_taps) = (Vec::new(), Vec::new(), Vec::with_capacity(ow));
    for x in 0..ow {
        let first = col_idx.len();
        for k in 0..cols.window {
            let (i, wgt) = (cols.indices[x * cols.window + k], cols.weights[x * cols.window + k]);
            if wgt != 0.0 {
                assert!(i < w);
                col_idx.push(i);
                col_w.push(wgt);
            }
        }
        col_taps.push((first, col_idx.len() - first));
    }
    // Same number of taps at every column (bilinear, cubic): tap-major copies for the AVX-512
    // gather path.
    #[cfg(target_arch = "x86_64")]
    let uniform = {
        let k = col_taps.first().map_or(0, |t| t.1);
        (k > 0 && col_taps.iter().all(|t| t.1 == k) && std::arch::is_x86_feature_detected!("avx512f")).then(|| {
            let idx: Vec<i32> = (0..k).flat_map(|t| col_taps.iter().map(move |c| c.0 + t)).map(|j| col_idx[j] as i32).collect();
            let wts: Vec<f32> = (0..k).flat_map(|t| col_taps.iter().map(move |c| c.0 + t)).map(|j| col_w[j]).collect();
            (k, idx, wts)
        })
    };
    #[cfg(not(target_arch = "x86_64"))]
    let uniform: Option<(usize, Vec<i32>, Vec<f32>)> = None;
    if out.is_empty() {
        return;
    }
    // Planes split over the worker pool (in whole planes, so the arithmetic is the same).
    super::pool::split_out(out, oh * ow, &|start, part: &mut [f32]| {
        let p0 = start / (oh * ow);
        let mut row = vec![0f32; w];
        for (src, dst) in input[p0 * h * w..].chunks_exact(h * w).zip(part.chunks_exact_mut(oh * ow)) {
            resize_plane(src, w, rows, &col_taps, &col_idx, &col_w, uniform.as_ref(), &mut row, dst);
        }
    });
}

/// One plane: rows blended into `row`, then columns gathered into each output row.
#[allow(clippy::too_many_arguments)]
fn resize_plane(
    src: &[f32],
    w: usize,
    rows: &AxisTaps,
    col_taps: &[(usize, usize)],
    col_idx: &[usize],
    col_w: &[f32],
    uniform: Option<&(usize, Vec<i32>, Vec<f32>)>,
    row: &mut [f32],
    dst: &mut [f32],
) {
    let ow = col_taps.len();
    #[cfg(not(target_arch = "x86_64"))]
    let _ = uniform;
    {
        for (y, drow) in dst.chunks_exact_mut(ow).enumerate() {
            row.fill(0.0);
            for k in 0..rows.window {
                let wgt = rows.weights[y * rows.window + k];
                if wgt == 0.0 {
                    continue;
                }
                let s = &src[rows.indices[y * rows.window + k] * w..][..w];
                for (d, s) in row.iter_mut().zip(s) {
                    *d += wgt * s;
                }
            }
            #[cfg(target_arch = "x86_64")]
            if let Some((k, idx, wts)) = uniform {
                // SAFETY: AVX-512 detected by the caller; indices were checked against `w`.
                unsafe { gather_row_avx512(row, *k, idx, wts, drow) };
                continue;
            }
            for (x, d) in drow.iter_mut().enumerate() {
                let (first, n) = col_taps[x];
                let mut acc = 0f32;
                for (&i, &wgt) in col_idx[first..first + n].iter().zip(&col_w[first..first + n]) {
                    acc += wgt * row[i];
                }
                *d = acc;
            }
        }
    }
}

/// `out[x] = sum over t of w[t][x] * row[idx[t][x]]`, added in tap order from 0 with separate
/// multiply and add (no FMA), exactly as the scalar loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gather_row_avx512(row: &[f32], k: usize, idx: &[i32], w: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let ow = out.len();
    let mut x = 0;
    while x < ow {
        let n = (ow - x).min(16);
        let m = ((1u32 << n) - 1) as u16;
        let mut acc = _mm512_setzero_ps();
        for t in 0..k {
            let i = _mm512_maskz_loadu_epi32(m, idx.as_ptr().add(t * ow + x));
            let wv = _mm512_maskz_loadu_ps(m, w.as_ptr().add(t * ow + x));
            let g = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m, i, row.as_ptr());
            acc = _mm512_add_ps(acc, _mm512_mul_ps(wv, g));
        }
        _mm512_mask_storeu_ps(out.as_mut_ptr().add(x), m, acc);
        x += 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Two separate passes, rows then columns, as tract runs them.
    fn reference(input: &[f32], planes: usize, h: usize, w: usize, rows: &AxisTaps, cols: &AxisTaps) -> Vec<f32> {
        let (oh, ow) = (rows.len_out(), cols.len_out());
        let mut mid = vec![0f32; planes * oh * w];
        for p in 0..planes {
            for y in 0..oh {
                for x in 0..w {
                    let mut acc = 0f32;
                    for k in 0..rows.window {
                        let wgt = rows.weights[y * rows.window + k];
                        if wgt != 0.0 {
                            acc += wgt * input[(p * h + rows.indices[y * rows.window + k]) * w + x];
                        }
                    }
                    mid[(p * oh + y) * w + x] = acc;
                }
            }
        }
        let mut out = vec![0f32; planes * oh * ow];
        for p in 0..planes {
            for y in 0..oh {
                for x in 0..ow {
                    let mut acc = 0f32;
                    for k in 0..cols.window {
                        let wgt = cols.weights[x * cols.window + k];
                        if wgt != 0.0 {
                            acc += wgt * mid[(p * oh + y) * w + cols.indices[x * cols.window + k]];
                        }
                    }
                    out[(p * oh + y) * ow + x] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn equals_two_pass_resampling_bitwise() {
        let mut rng = SplitMix64(9);
        for case in 0..140 {
            // The last cases on the worker pool, as `--threads 2` runs it, with outputs large
            // enough (32K or more) for the planes to be split.
            let pooled = case >= 100;
            if case == 100 {
                crate::engine::cpu_kernels::pool::set_threads(2).unwrap();
            }
            let (planes, h, w) = (if pooled { 16 + rng.below(24) } else { 1 + rng.below(5) }, 1 + rng.below(20), 1 + rng.below(20));
            // Every other case without zero weights: the same tap count per column (gather path).
            let zeros = case % 2 == 0;
            let taps = |rng: &mut SplitMix64, len_in: usize| {
                let window = 1 + rng.below(4);
                let len_out = if pooled { 48 + rng.below(30) } else { 1 + rng.below(40) };
                AxisTaps {
                    window,
                    indices: (0..window * len_out).map(|_| rng.below(len_in)).collect(),
                    weights: (0..window * len_out).map(|_| if zeros && rng.below(4) == 0 { 0.0 } else { rng.unit_f32() + 0.01 }).collect(),
                }
            };
            let (rows, cols) = (taps(&mut rng, h), taps(&mut rng, w));
            let input: Vec<f32> = (0..planes * h * w).map(|_| rng.unit_f32() - 0.5).collect();
            let mut got = vec![0f32; planes * rows.len_out() * cols.len_out()];
            resize_planes(&input, planes, h, w, &rows, &cols, &mut got);
            assert_eq!(got, reference(&input, planes, h, w, &rows, &cols));
        }
        crate::engine::cpu_kernels::pool::set_threads(1).unwrap();
        // The above ran the path this CPU takes; say so when that left the AVX-512 gathers out.
        crate::engine::cpu_kernels::choice::avx512_or_skip("resize: the AVX-512 gather path of equals_two_pass_resampling_bitwise");
    }

    #[test]
    #[ignore]
    fn speed() {
        let taps = |n_in: usize, n_out: usize| AxisTaps {
            window: 2,
            indices: (0..n_out).flat_map(|x| [(x / 2).min(n_in - 1), (x / 2 + 1).min(n_in - 1)]).collect(),
            weights: (0..n_out).flat_map(|_| [0.75, 0.25]).collect(),
        };
        let input = vec![0.5f32; 16 * 64 * 64];
        let mut out = vec![0f32; 16 * 128 * 128];
        for _ in 0..5 {
            let t = std::time::Instant::now();
            resize_planes(&input, 16, 64, 64, &taps(64, 128), &taps(64, 128), &mut out);
            println!("resize 16x64x64 -> 128x128: {:.3} ms", t.elapsed().as_secs_f64() * 1e3);
        }
    }
}
