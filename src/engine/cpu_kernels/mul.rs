//! f32 products without denormal stalls, bitwise equal to the f32 product.
//!
//! Why: on this Xeon an f32 multiply with a denormal operand or result takes a microcode assist
//! (3.2-3.7 ns an element against 0.3-0.5 ns through f64, measured with AVX-512 on 1M
//! elements), and MoveNet multiplies a heatmap by Exp outputs that are mostly denormals
//! (`mul_8`: 1.25 ms a frame on one thread). The product of two f32 is exact in f64 and rounds
//! once on the way back, so the result is the f32 product bit for bit, NaNs included. LLVM
//! folds that round trip back into an f32 multiply, so the conversion back is written in
//! assembly.

/// `out[i] = x[i] * y[i]` (all three of one length).
pub fn mul_into(x: &[f32], y: &[f32], out: &mut [f32]) {
    let n = out.len();
    assert!(x.len() == n && y.len() == n, "operand lengths {} and {} for {n} products", x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") {
        // SAFETY: both features checked just above; lengths checked by the assert.
        unsafe { mul_avx512(x, y, out) };
        return;
    }
    for ((o, a), b) in out.iter_mut().zip(x).zip(y) {
        *o = a * b;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn mul_avx512(x: &[f32], y: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = out.len();
    // Eight products a step: one f32 x 8 load widens to one f64 x 8 register.
    let widen = |v: &[f32], i: usize, m: __mmask8| -> __m512d { _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, v.as_ptr().add(i))) };
    let mut i = 0;
    while i < n {
        let m: __mmask8 = if n - i >= 8 { 0xff } else { ((1u16 << (n - i)) - 1) as u8 };
        let p = _mm512_mul_pd(widen(x, i, m), widen(y, i, m));
        let r: __m256;
        std::arch::asm!("vcvtpd2ps {r}, {p}", p = in(zmm_reg) p, r = lateout(ymm_reg) r, options(pure, nomem, nostack));
        _mm256_mask_storeu_ps(out.as_mut_ptr().add(i), m, r);
        i += 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Bitwise against the f32 product over normals, denormals, zeros, infinities and NaNs,
    /// with lengths around the 8-lane step.
    #[test]
    fn equals_the_f32_product_bitwise() {
        let mut rng = SplitMix64(7);
        let value = |rng: &mut SplitMix64| -> f32 {
            match rng.below(10) {
                0 => f32::from_bits(rng.below(1 << 23) as u32 | if rng.below(2) == 0 { 0 } else { 1 << 31 }),
                1 => [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::from_bits(0x7fa0_0001), f32::MIN_POSITIVE, f32::MAX][rng.below(8)],
                2 => (rng.unit_f32() - 0.5) * 1e-20,
                _ => f32::from_bits(rng.below(1 << 32) as u32),
            }
        };
        let mut checked = 0;
        for case in 0..400 {
            let n = 1 + rng.below(40);
            let x: Vec<f32> = (0..n).map(|_| value(&mut rng)).collect();
            let y: Vec<f32> = (0..n).map(|_| value(&mut rng)).collect();
            let mut got = vec![0.5f32; n];
            mul_into(&x, &y, &mut got);
            for i in 0..n {
                let (a, b) = (x[i], y[i]);
                let want = a * b;
                if a.is_nan() && b.is_nan() {
                    // Which payload wins depends on the operand order the compiler picked.
                    assert!(got[i].is_nan(), "case {case} at {i}");
                } else {
                    assert_eq!(got[i].to_bits(), want.to_bits(), "case {case} at {i}: {a:e} x {b:e}");
                }
                checked += 1;
            }
        }
        assert!(checked > 4000);
        // The above ran the path this CPU takes; say so when that left the AVX-512 one out.
        crate::engine::cpu_kernels::choice::avx512_or_skip("mul: the AVX-512 path of equals_the_f32_product_bitwise");
    }
}
