//! e^x over f32 slices: AVX-512 where the CPU has it, else the standard library's.
//!
//! Why: MoveNet's decoder takes Exp of a 64x64x6x17 tensor every frame, and tract 0.23.9 ran it
//! on one thread at 2.6 ns per element (1.1 ms, a twentieth of the frame at 2 threads).

/// `x[i] = e^x[i]`. On AVX-512 the error is within 2 ulp of the exact value (tested against
/// f64 over the whole finite range); e^x underflows to 0 below about -103.97 and overflows to
/// infinity above about 88.72, as `f32::exp` does; NaN stays NaN.
pub fn exp_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f checked just above.
        unsafe { exp_avx512(x) };
        return;
    }
    for v in x {
        *v = v.exp();
    }
}

/// Cody-Waite reduction x = n ln2 + r with |r| <= ln2 / 2, Cephes' degree-6 polynomial for e^r
/// (`expf`'s), then `scalef` multiplies by 2^n, which also gives infinity above the range.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp_avx512(x: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = x.len();
    let mut i = 0;
    while i < n {
        let m: __mmask16 = if n - i >= 16 { 0xffff } else { ((1u32 << (n - i)) - 1) as u16 };
        let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
        // Keep r finite for infinite inputs (max/min return their second operand for NaN, so
        // NaN passes through); the clamps are outside the range where the result changes.
        let v = _mm512_min_ps(_mm512_set1_ps(100.0), _mm512_max_ps(_mm512_set1_ps(-110.0), v));
        let k = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(v, _mm512_set1_ps(std::f32::consts::LOG2_E)));
        let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693_359_4), v);
        let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let r2 = _mm512_mul_ps(r, r);
        let y = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
        // Results below 2^-126 (k <= -126) as integers: a denormal made by a floating-point
        // operation costs a microcode assist of ~100 cycles on Intel cores, and MoveNet's
        // decoder makes mostly those (1.5 ms per frame against 0.13 for normal results).
        // round(y 2^(k+149)) is the bit pattern of y 2^k rounded to the nearest multiple of
        // 2^-149 (nearest even, as scalef rounds), up to the first normal binade (m < 2^24).
        let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(k, _mm512_set1_ps(-125.5));
        let normal = _mm512_scalef_ps(y, _mm512_max_ps(k, _mm512_set1_ps(-125.0)));
        let bits = _mm512_cvtps_epi32(_mm512_scalef_ps(y, _mm512_min_ps(_mm512_add_ps(k, _mm512_set1_ps(149.0)), _mm512_set1_ps(23.0))));
        let e = _mm512_mask_blend_ps(tiny, normal, _mm512_castsi512_ps(bits));
        _mm512_mask_storeu_ps(x.as_mut_ptr().add(i), m, e);
        i += 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Units in the last place between `got` and the exact `want`, measured at the f32 nearest
    /// to `want` (denormals by their absolute spacing).
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let spacing = if w == 0.0 || !w.is_normal() { f32::from_bits(1) as f64 } else { ((f32::from_bits(w.to_bits() + 1) - w) as f64).abs() };
        (got as f64 - want).abs() / spacing
    }

    #[test]
    fn within_two_ulp_over_the_range_and_exact_at_the_ends() {
        let mut rng = SplitMix64(77);
        // Random values over the whole range, dense near 0, and odd slice lengths for the masks.
        let mut xs: Vec<f32> = (0..200_003)
            .map(|i| match i % 3 {
                0 => rng.unit_f32() * 200.0 - 105.0,
                1 => rng.unit_f32() * 2.0 - 1.0,
                _ => (rng.unit_f32() - 0.5) * 1e-3,
            })
            .collect();
        xs.extend([0.0, -0.0, 1.0, -1.0, 88.7, 88.72, 88.73, 89.0, -87.3, -103.9, -104.0, -150.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, f32::MIN]);
        let mut got = xs.clone();
        exp_in_place(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = (x as f64).exp();
            if x.is_nan() {
                assert!(g.is_nan(), "exp(NaN) = {g}");
            } else if want > f32::MAX as f64 {
                assert_eq!(g, f32::INFINITY, "exp({x})");
            } else {
                let u = ulps(g, want);
                assert!(u <= 2.0, "exp({x}) = {g}, exact {want}: {u} ulp");
            }
        }
        for len in 0..40 {
            let (x, mut o) = (&xs[..len], xs[..len].to_vec());
            exp_in_place(&mut o);
            assert!(o.iter().zip(x).all(|(a, b)| ulps(*a, (*b as f64).exp()) <= 2.0), "length {len}");
        }
        // The above ran the path this CPU takes; say so when that left the AVX-512 one out.
        crate::engine::cpu_kernels::choice::avx512_or_skip("exp: the AVX-512 path of within_two_ulp_over_the_range_and_exact_at_the_ends");
    }
}
