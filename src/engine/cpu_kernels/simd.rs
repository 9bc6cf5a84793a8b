//! The vector operations the convolution micro-kernels are written over, one module per
//! instruction set (AVX-512, AVX2 + FMA, plain Rust), so one kernel body serves all three
//! (`direct`'s micro-kernel, `dw_rows`' row tiles).

// The vector operations as functions (not closures) so they carry the ISA's target features
// and inline into the micro-kernel.
#[cfg(target_arch = "x86_64")]
pub mod avx512 {
    use std::arch::x86_64::*;
    pub type V = __m512;
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn zero() -> V {
        _mm512_setzero_ps()
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn splat(x: f32) -> V {
        _mm512_set1_ps(x)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn load(p: *const f32) -> V {
        _mm512_loadu_ps(p)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma(x: V, w: V, c: V) -> V {
        _mm512_fmadd_ps(x, w, c)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn max(x: V, y: V) -> V {
        _mm512_max_ps(x, y)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn min(x: V, y: V) -> V {
        _mm512_min_ps(x, y)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn load_out(p: *const f32, n: usize) -> V {
        if n == 16 {
            _mm512_loadu_ps(p)
        } else {
            _mm512_maskz_loadu_ps(((1u32 << n) - 1) as u16, p)
        }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn store(p: *mut f32, n: usize, y: V) {
        if n == 16 {
            _mm512_storeu_ps(p, y)
        } else if n > 0 {
            _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as u16, y)
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use std::arch::x86_64::*;
    pub type V = __m256;
    const MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn zero() -> V {
        _mm256_setzero_ps()
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn splat(x: f32) -> V {
        _mm256_set1_ps(x)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn load(p: *const f32) -> V {
        _mm256_loadu_ps(p)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma(x: V, w: V, c: V) -> V {
        _mm256_fmadd_ps(x, w, c)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn max(x: V, y: V) -> V {
        _mm256_max_ps(x, y)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn min(x: V, y: V) -> V {
        _mm256_min_ps(x, y)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn load_out(p: *const f32, n: usize) -> V {
        if n == 8 {
            _mm256_loadu_ps(p)
        } else {
            _mm256_maskload_ps(p, _mm256_loadu_si256(MASKS.as_ptr().add(8 - n) as *const __m256i))
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn store(p: *mut f32, n: usize, y: V) {
        if n == 8 {
            _mm256_storeu_ps(p, y)
        } else if n > 0 {
            _mm256_maskstore_ps(p, _mm256_loadu_si256(MASKS.as_ptr().add(8 - n) as *const __m256i), y)
        }
    }
}

/// Plain Rust with the same blocking, for CPUs without AVX2 (and as the tests' second opinion).
pub mod portable {
    pub type V = [f32; 8];
    #[inline(always)]
    pub unsafe fn zero() -> V {
        [0.0; 8]
    }
    #[inline(always)]
    pub unsafe fn splat(x: f32) -> V {
        [x; 8]
    }
    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> V {
        *(p as *const V)
    }
    #[inline(always)]
    pub unsafe fn fma(x: V, w: V, c: V) -> V {
        std::array::from_fn(|i| x[i].mul_add(w[i], c[i]))
    }
    #[inline(always)]
    pub unsafe fn max(x: V, y: V) -> V {
        std::array::from_fn(|i| x[i].max(y[i]))
    }
    #[inline(always)]
    pub unsafe fn min(x: V, y: V) -> V {
        std::array::from_fn(|i| x[i].min(y[i]))
    }
    #[inline(always)]
    pub unsafe fn load_out(p: *const f32, n: usize) -> V {
        std::array::from_fn(|i| if i < n { *p.add(i) } else { 0.0 })
    }
    #[inline(always)]
    pub unsafe fn store(p: *mut f32, n: usize, y: V) {
        for (i, v) in y.iter().enumerate().take(n) {
            *p.add(i) = *v;
        }
    }
}
