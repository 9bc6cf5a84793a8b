//! GELU (the exact, erf form) over f32 slices: tract's own arithmetic, 16 lanes at a time.
//!
//! Why: BEVANet-S applies it to 11 tensors per frame (up to 256x64x128); tract 0.23.9 runs
//! its `GeluExact` on one thread at about 1.2 ns per element (4.9 ms per frame). The same
//! operations in the same order as tract's on AVX-512 (Abramowitz-Stegun 7.1.28 for erf with
//! the polynomial in fused multiply-adds, as tract-linalg's AVX-512 erf), so the results are
//! tract's bit for bit there; elsewhere it is tract's generic scalar arithmetic.

/// `x[i] = 0.5 x[i] (1 + erf(x[i] / sqrt(2)))`, as tract's `GeluExact` computes it.
pub fn gelu_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f checked just above.
        unsafe { gelu_avx512(x) };
        return;
    }
    for v in x {
        *v = gelu_scalar(*v);
    }
}

/// Polynomial coefficients of tract's erf, spelled as tract spells them (a shorter literal
/// for the first rounds to a different f32).
#[allow(clippy::excessive_precision)]
const A: [f32; 6] = [0.0705230784, 0.0422820123, 0.0092705272, 0.0001520143, 0.0002765672, 0.0000430638];

/// One element, in tract's generic (scalar) order of operations.
fn gelu_scalar(x: f32) -> f32 {
    let s = x * std::f32::consts::SQRT_2.recip();
    let abs = s.abs();
    let mut y = A[5] * abs;
    for a in A[..5].iter().rev() {
        y = (a + y) * abs;
    }
    let p = y + 1.0;
    // tract's powi(16), as repeated squaring.
    let p2 = p * p;
    let p4 = p2 * p2;
    let p8 = p4 * p4;
    let p16 = p8 * p8;
    let e = (1.0 - p16.recip()).copysign(s.signum());
    (x * 0.5) * (e + 1.0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_avx512(x: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = x.len();
    let c = _mm512_set1_ps(std::f32::consts::SQRT_2.recip());
    let one = _mm512_set1_ps(1.0);
    let sign = _mm512_set1_ps(-0.0);
    let mut i = 0;
    while i < n {
        let m: __mmask16 = if n - i >= 16 { 0xffff } else { ((1u32 << (n - i)) - 1) as u16 };
        let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
        let s = _mm512_mul_ps(v, c);
        let abs = _mm512_andnot_ps(sign, s);
        let mut y = _mm512_set1_ps(A[5]);
        for a in A[..5].iter().rev() {
            y = _mm512_fmadd_ps(y, abs, _mm512_set1_ps(*a));
        }
        let p = _mm512_add_ps(_mm512_mul_ps(y, abs), one);
        let p2 = _mm512_mul_ps(p, p);
        let p4 = _mm512_mul_ps(p2, p2);
        let p8 = _mm512_mul_ps(p4, p4);
        let p16 = _mm512_mul_ps(p8, p8);
        let e = _mm512_sub_ps(one, _mm512_div_ps(one, p16));
        // copysign(e, signum(s)): s's sign bit (signum keeps it, NaN included).
        let e = _mm512_or_ps(_mm512_andnot_ps(sign, e), _mm512_and_ps(sign, s));
        let r = _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(0.5)), _mm512_add_ps(e, one));
        _mm512_mask_storeu_ps(x.as_mut_ptr().add(i), m, r);
        i += 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::element_wise::ElementWiseMiniOp;
    use tract_onnx::tract_core::ops::nn::GeluExact;

    /// Bitwise against tract's own `GeluExact` over every range that matters (tiny, around the
    /// knee, large of both signs), zeros, infinities and NaN, with lengths around 16 lanes.
    #[test]
    fn equals_tracts_gelu_bitwise() {
        #[cfg(target_arch = "x86_64")]
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        #[cfg(not(target_arch = "x86_64"))]
        let avx512 = false;
        let mut rng = SplitMix64(11);
        let mut x: Vec<f32> = (0..20_000)
            .map(|i| match i % 5 {
                0 => (rng.unit_f32() - 0.5) * 8.0,
                1 => (rng.unit_f32() - 0.5) * 60.0,
                2 => (rng.unit_f32() - 0.5) * 1e-3,
                3 => f32::from_bits(rng.below(1 << 32) as u32),
                _ => (rng.unit_f32() - 0.5) * 1e-38,
            })
            .collect();
        x.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, f32::MIN]);
        let mut want = Tensor::from_shape(&[x.len()], &x).unwrap();
        GeluExact {}.eval_in_place(&mut want, None).unwrap();
        let want: Vec<f32> = want.to_plain_array_view::<f32>().unwrap().iter().copied().collect();
        for n in [1, 15, 16, 17, 33, x.len()] {
            let mut got = x[..n].to_vec();
            gelu_in_place(&mut got);
            for i in 0..n {
                let same = got[i].to_bits() == want[i].to_bits() || (got[i].is_nan() && want[i].is_nan());
                // Bitwise where both run tract's AVX-512 arithmetic; the generic paths differ
                // from it by the fused multiply-adds only.
                let close = (got[i] - want[i]).abs() <= 1e-6 * want[i].abs().max(1.0) || same;
                assert!(if avx512 { same } else { close }, "gelu({:e}) = {:e}, tract {:e}", x[i], got[i], want[i]);
            }
        }
        // Without AVX-512 only the generic path ran, to a bound instead of bitwise.
        crate::engine::cpu_kernels::choice::avx512_or_skip("gelu: the AVX-512 path of equals_tracts_gelu_bitwise (bitwise against tract)");
    }
}
