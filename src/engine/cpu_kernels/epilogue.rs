//! What runs on a convolution's output after its store, over the whole output: the hard swish
//! `ops::conv` fuses (selfie's activations).

use super::pool::parallel;
use super::spec::SendPtr;

/// y = (y * k) * min(max(y + 3, 0), 6) over `out`, split over the worker pool.
pub fn hard_swish(out: &mut [f32], k: f32) {
    const CHUNK: usize = 16 * 1024;
    let n = out.len();
    let ptr = SendPtr(out.as_mut_ptr());
    parallel(n.div_ceil(CHUNK), &|t: usize| {
        let (a, b) = (t * CHUNK, ((t + 1) * CHUNK).min(n));
        // SAFETY: tasks own disjoint ranges of `out`.
        let part = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(a), b - a) };
        for y in part {
            let x = *y;
            *y = (x * k) * (x + 3.0).max(0.0).min(6.0);
        }
    });
}
