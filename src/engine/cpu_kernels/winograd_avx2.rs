//! Winograd F(4x4, 3x3)'s input and output transforms with 8-lane vectors, for CPUs with AVX2
//! and FMA but not AVX-512 (`winograd` holds the method and the AVX-512 transforms,
//! `winograd_layout` the layout). The layout of V and M is the same: panels of 16 tiles x all input channels,
//! filled here 8 tiles at a time; the products run on `direct`'s AVX2 micro-kernels.

use super::spec::Clamp;
use super::winograd_layout::{Layout, T};
use std::arch::x86_64::*;

/// B^T d for six vectors d (rows or column phases of a 6x6 patch).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn bt(d: [__m256; 6]) -> [__m256; 6] {
    let (c4, c5, c2) = (_mm256_set1_ps(4.0), _mm256_set1_ps(5.0), _mm256_set1_ps(2.0));
    let d4_m_d2 = _mm256_sub_ps(d[4], d[2]);
    let d3_m_d1 = _mm256_sub_ps(d[3], d[1]);
    let a = _mm256_fnmadd_ps(c4, d[2], d[4]);
    let b = _mm256_fmsub_ps(c4, d[1], d[3]);
    let e = _mm256_mul_ps(c2, d3_m_d1);
    [
        _mm256_add_ps(_mm256_fnmadd_ps(c5, d[2], _mm256_mul_ps(c4, d[0])), d[4]),
        _mm256_sub_ps(a, b),
        _mm256_add_ps(a, b),
        _mm256_add_ps(d4_m_d2, e),
        _mm256_sub_ps(d4_m_d2, e),
        _mm256_add_ps(_mm256_fnmadd_ps(c5, d[3], _mm256_mul_ps(c4, d[1])), d[5]),
    ]
}

/// A^T m for six vectors m.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn at(m: [__m256; 6]) -> [__m256; 4] {
    let p12 = _mm256_add_ps(m[1], m[2]);
    let m12 = _mm256_sub_ps(m[1], m[2]);
    let p34 = _mm256_add_ps(m[3], m[4]);
    let m34 = _mm256_sub_ps(m[3], m[4]);
    [
        _mm256_add_ps(_mm256_add_ps(m[0], p12), p34),
        _mm256_fmadd_ps(_mm256_set1_ps(2.0), m34, m12),
        _mm256_fmadd_ps(_mm256_set1_ps(4.0), p34, p12),
        _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0), m34, m12), m[5]),
    ]
}

/// Lanes `lo..hi` of 8 set (a mask for `_mm256_maskload_ps` / `_mm256_maskstore_ps`).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lanes(lo: usize, hi: usize) -> __m256i {
    let i = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let (lo, hi) = (_mm256_set1_epi32(lo.min(8) as i32), _mm256_set1_epi32(hi.min(8) as i32));
    // lo <= i < hi
    _mm256_andnot_si256(_mm256_cmpgt_epi32(lo, i), _mm256_cmpgt_epi32(hi, i))
}

/// The 4x4 transpose within each 128-bit half of four vectors.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn transpose4_halves(r: [__m256; 4]) -> [__m256; 4] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    [
        _mm256_shuffle_ps::<0x44>(t0, t2),
        _mm256_shuffle_ps::<0xEE>(t0, t2),
        _mm256_shuffle_ps::<0x44>(t1, t3),
        _mm256_shuffle_ps::<0xEE>(t1, t3),
    ]
}

/// One input channel into V, as `winograd::input_transform` (same layout and arguments):
/// 8 tiles per vector, so each panel of 16 is filled by two.
///
/// SAFETY: AVX2 and FMA are available; `v` and the strides address this channel's lanes of
/// V, sized for `l` as `Winograd::run` sizes it.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn input_transform(l: &Layout, src: &[f32], phases: &mut Vec<f32>, rows: &mut Vec<f32>, v: *mut f32, xi_stride: usize, panel: usize, stream: bool) {
    let (lq, row_len) = (l.lq, 4 * l.lq);
    phases.resize(8 * row_len, 0.0);
    rows.resize(T * row_len, 0.0);
    let tr = &mut rows[..];
    for y in 0..l.nty {
        for p in if y == 0 { 0 } else { 4 * y + 2 }..4 * y + 6 {
            let dst = &mut phases[p % 8 * row_len..][..row_len];
            if p < l.pt || p - l.pt >= l.h {
                dst.fill(0.0);
                continue;
            }
            deinterleave4(&src[(p - l.pt) * l.w..][..l.w], l.pl, dst, lq);
        }
        // Down: tr[i][k][..] = sum_r B^T[i][r] phases[4 y + r][k][..].
        for off in (0..row_len).step_by(8) {
            let d = std::array::from_fn(|r| _mm256_loadu_ps(phases.as_ptr().add((4 * y + r) % 8 * row_len + off)));
            for (i, t) in bt(d).iter().enumerate() {
                _mm256_storeu_ps(tr.as_mut_ptr().add(i * row_len + off), *t);
            }
        }
        // Across, 8 tiles at a time.
        for x0 in (0..l.ntx).step_by(8) {
            let n = (l.ntx - x0).min(8);
            // Tiles t0.. go to panel t0 / 16 from lane t0 % 16; those past the panel's end
            // go to the next panel.
            let t0 = y * l.ntx + x0;
            let (dst, lane) = (v.add(t0 / 16 * panel + t0 % 16), t0 % 16);
            let in_first = n.min(16 - lane);
            let (first, rest) = (lanes(0, in_first), lanes(16 - lane, n));
            let whole = in_first == 8;
            // Streaming stores need 32-byte alignment: lane 0 or 8 of a 64-byte aligned panel.
            let aligned = whole && lane % 8 == 0;
            let dst2 = dst.add(panel).sub(16);
            for i in 0..T {
                let r = tr.as_ptr().add(i * row_len + x0);
                let d = [
                    _mm256_loadu_ps(r),
                    _mm256_loadu_ps(r.add(lq)),
                    _mm256_loadu_ps(r.add(2 * lq)),
                    _mm256_loadu_ps(r.add(3 * lq)),
                    _mm256_loadu_ps(r.add(1)),
                    _mm256_loadu_ps(r.add(lq + 1)),
                ];
                for (j, t) in bt(d).iter().enumerate() {
                    let at = dst.add((i * T + j) * xi_stride);
                    if aligned && stream {
                        _mm256_stream_ps(at, *t);
                    } else if whole {
                        _mm256_storeu_ps(at, *t);
                    } else {
                        _mm256_maskstore_ps(at, first, *t);
                    }
                    if n > in_first {
                        _mm256_maskstore_ps(dst2.add((i * T + j) * xi_stride), rest, *t);
                    }
                }
            }
        }
    }
    if stream {
        // Streaming stores are weakly ordered: complete them before the pool reports this
        // task done to the threads that read V.
        _mm_sfence();
    }
    // Tiles past the last one (up to the vector boundary) are read by the products: zeros.
    let (nt, npos) = (l.nty * l.ntx, l.npos());
    for xi in 0..T * T {
        for t in nt..npos {
            *v.add(xi * xi_stride + t / 16 * panel + t % 16) = 0.0;
        }
    }
}

/// One output channel from M, as `winograd::output_transform`, 8 tiles at a time.
///
/// SAFETY: AVX2 and FMA are available; `m` is this channel's row of M[0] (rows of M[xi]
/// `xi_stride` apart) and `out` its whole output plane.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn output_transform(l: &Layout, m: *const f32, xi_stride: usize, bias: f32, clamp: Clamp, out: *mut f32) {
    let b = _mm256_set1_ps(bias);
    let clamped = clamp != Clamp::NONE;
    let (lo, hi) = (_mm256_set1_ps(clamp.lo), _mm256_set1_ps(clamp.hi));
    for ty in 0..l.nty {
        for x0 in (0..l.ntx).step_by(8) {
            let src = m.add(ty * l.ntx + x0);
            // s[r][j] = sum_i A^T[r][i] M[6 i + j]
            let mut s = [[_mm256_setzero_ps(); T]; 4];
            for j in 0..T {
                let col = at(std::array::from_fn(|i| _mm256_loadu_ps(src.add((i * T + j) * xi_stride))));
                for r in 0..4 {
                    s[r][j] = col[r];
                }
            }
            for (r, s) in s.iter().enumerate() {
                let oy = 4 * ty + r;
                if oy >= l.oh {
                    break;
                }
                let mut y = at(*s);
                for y in y.iter_mut() {
                    *y = _mm256_add_ps(*y, b);
                    if clamped {
                        *y = _mm256_min_ps(_mm256_max_ps(*y, lo), hi);
                    }
                }
                for (q, v) in interleave4(y).iter().enumerate() {
                    let c = 4 * x0 + 8 * q;
                    if c < l.ow {
                        _mm256_maskstore_ps(out.add(oy * l.ow + c), lanes(0, l.ow - c), *v);
                    }
                }
            }
        }
    }
}

/// One input row, padded with `pl` zeros on the left and zeros on the right, into four phases
/// of `lq`: dst[k][t] = padded[4 t + k]. Masked loads read the row in place.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn deinterleave4(src: &[f32], pl: usize, dst: &mut [f32], lq: usize) {
    let w = src.len() as isize;
    // Padded columns q0 .. q0 + 8: input columns q0 - pl ..; lanes outside the row read zero.
    let load = |q0: usize| {
        let c0 = q0 as isize - pl as isize;
        let (lo, hi) = ((-c0).clamp(0, 8) as usize, (w - c0).clamp(0, 8) as usize);
        if hi <= lo {
            return _mm256_setzero_ps();
        }
        // Masked-off lanes are not accessed, so the pointer may lie outside the row.
        _mm256_maskload_ps(src.as_ptr().wrapping_offset(c0), lanes(lo, hi))
    };
    for t in (0..lq).step_by(8) {
        // Tiles t..t + 8, four columns each: [t, t+1], [t+2, t+3], ...
        let (a, b, c, d) = (load(4 * t), load(4 * t + 8), load(4 * t + 16), load(4 * t + 24));
        // Halves: [t | t+4], [t+1 | t+5], [t+2 | t+6], [t+3 | t+7]; transposed, phase k of all 8.
        let r = [
            _mm256_permute2f128_ps::<0x20>(a, c),
            _mm256_permute2f128_ps::<0x31>(a, c),
            _mm256_permute2f128_ps::<0x20>(b, d),
            _mm256_permute2f128_ps::<0x31>(b, d),
        ];
        let p = transpose4_halves(r);
        let q = dst.as_mut_ptr().add(t);
        for (k, p) in p.iter().enumerate() {
            _mm256_storeu_ps(q.add(k * lq), *p);
        }
    }
}

/// Four column phases (y[k] lane t = column 4 t + k) into 32 consecutive columns.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn interleave4(y: [__m256; 4]) -> [__m256; 4] {
    // Transposed within halves: [t | t+4] for t = 0..3, each four phases.
    let r = transpose4_halves(y);
    [
        _mm256_permute2f128_ps::<0x20>(r[0], r[1]),
        _mm256_permute2f128_ps::<0x20>(r[2], r[3]),
        _mm256_permute2f128_ps::<0x31>(r[0], r[1]),
        _mm256_permute2f128_ps::<0x31>(r[2], r[3]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip() {
        if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")) {
            eprintln!("skipped: winograd_avx2::phases_round_trip needs AVX2 and FMA");
            return;
        }
        // A row of 100 with 3 zeros of padding on the left, zeros after it.
        let row: Vec<f32> = (1..=100).map(|i| i as f32).collect();
        let padded = |q: usize| if (3..103).contains(&q) { (q - 2) as f32 } else { 0.0 };
        let mut ph = vec![f32::NAN; 128];
        unsafe { deinterleave4(&row, 3, &mut ph, 32) };
        for k in 0..4 {
            for t in 0..32 {
                assert_eq!(ph[k * 32 + t], padded(4 * t + k), "phase {k} tile {t}");
            }
        }
        let src: Vec<f32> = (0..32).map(padded).collect();
        let y: [__m256; 4] = std::array::from_fn(|k| unsafe { _mm256_loadu_ps(ph[k * 32..].as_ptr()) });
        let back = unsafe { interleave4(y) };
        let mut flat = [0f32; 32];
        for (q, v) in back.iter().enumerate() {
            unsafe { _mm256_storeu_ps(flat[8 * q..].as_mut_ptr(), *v) };
        }
        assert_eq!(flat.to_vec(), src);
    }
}
