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
