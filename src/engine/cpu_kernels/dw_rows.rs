//! Depthwise row tiles (AVX-512): RB output rows x VB vectors of one channel per tile, over
//! the padded, phase-split copy `direct` makes of the channel, so each loaded input vector
//! feeds every output row of the tile whose window covers it. The rows a full tile does not
//! cover are left to `direct`'s generic tiles.

#![cfg(target_arch = "x86_64")]

use super::simd::avx512;
use super::spec::{Clamp, ConvSpec};

/// One depthwise channel read from its padded, phase-split copy at `buf` (`row` floats per
/// padded row, `phase_len` per column phase, as `direct` lays it out): every full group of
/// output rows with the row-tile kernel, into the channel's `out_h` x `out_w` plane at `out`;
/// `weights` is the channel's kh x kw kernel. Returns the first output row left for the
/// generic tiles.
///
/// SAFETY: AVX-512 is available; `buf` holds the channel's padded copy (every row a full
/// group reads exists), `out` its whole output plane.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn depthwise_rows(spec: &ConvSpec, weights: &[f32], clamp: Clamp, buf: *const f32, row: usize, phase_len: usize, out_h: usize, out_w: usize, bias: f32, out: *mut f32) -> usize {
    let chunks = out_w.div_ceil(16);
    // Rows x vectors per tile by row width: 4 x 4 for wide rows, taller tiles for narrow ones.
    let (rb, vb) = match chunks {
        1..=3 => (8, 2),
        _ => (4, 4),
    };
    let s = spec;
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
        w: weights.as_ptr(),
        bias,
        out,
        out_w,
        clamp,
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
