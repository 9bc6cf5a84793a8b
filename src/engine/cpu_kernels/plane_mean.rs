//! Averages of whole planes (`ops::plane_mean`): 16 running sums per plane, planes split
//! over the worker pool.

use super::pool::parallel;
use super::spec::SendPtr;

/// `out[p]` = the mean of `input[p * plane..][..plane]`, for every p of `out`.
pub fn plane_means(input: &[f32], plane: usize, out: &mut [f32]) {
    // Split by hand, not by `split_out`: the output is tiny (one value per plane) but
    // each value sums a whole plane.
    let planes = out.len();
    let per_task = planes.div_ceil(planes.clamp(1, 16));
    let dst = SendPtr(out.as_mut_ptr());
    parallel(planes.div_ceil(per_task), &|t: usize| {
        for p in t * per_task..((t + 1) * per_task).min(planes) {
            let src = &input[p * plane..][..plane];
            // 16 running sums, then their total: vectorises, and rounds no worse.
            let mut acc = [0f32; 16];
            let chunks = src.chunks_exact(16);
            let tail: f32 = chunks.remainder().iter().sum();
            for c in chunks {
                acc.iter_mut().zip(c).for_each(|(a, v)| *a += v);
            }
            // SAFETY: each task writes only its own planes' outputs.
            unsafe { *dst.get().add(p) = (acc.iter().sum::<f32>() + tail) / plane as f32 };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu_kernels::pool;
    use crate::rng::SplitMix64;

    /// Against the exact mean (f64), on one thread and on the pool (the same bits).
    #[test]
    fn match_exact_means() {
        let mut rng = SplitMix64(4);
        for (planes, plane) in [(16, 128 * 128), (3, 35), (40, 16), (1, 1), (33, 153)] {
            let input: Vec<f32> = (0..planes * plane).map(|_| rng.unit_f32() * 4.0 - 1.0).collect();
            let mut one = vec![f32::NAN; planes];
            pool::set_threads(1).unwrap();
            plane_means(&input, plane, &mut one);
            let mut two = vec![f32::NAN; planes];
            pool::set_threads(2).unwrap();
            plane_means(&input, plane, &mut two);
            pool::set_threads(1).unwrap();
            assert!(one.iter().zip(&two).all(|(a, b)| a.to_bits() == b.to_bits()), "{planes} x {plane}: threads differ");
            for (p, a) in one.iter().enumerate() {
                let exact = input[p * plane..][..plane].iter().map(|v| *v as f64).sum::<f64>() / plane as f64;
                assert!((*a as f64 - exact).abs() <= 5e-7 * (1.0 + exact.abs()), "{planes} x {plane} at {p}: {a} vs {exact}");
            }
        }
    }
}
