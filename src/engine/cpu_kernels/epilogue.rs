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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu_kernels::pool;
    use crate::rng::SplitMix64;

    /// Bitwise the graph's order of operations, on the pool over several chunks.
    #[test]
    fn hard_swish_in_the_graphs_order() {
        let mut rng = SplitMix64(8);
        pool::set_threads(2).unwrap();
        for n in [1, 17, 16 * 1024, 3 * 16 * 1024 + 5] {
            let x: Vec<f32> = (0..n).map(|_| (rng.unit_f32() - 0.5) * 16.0).collect();
            let k = 1.0 / 6.0;
            let mut got = x.clone();
            hard_swish(&mut got, k);
            for (g, x) in got.iter().zip(&x) {
                assert_eq!(g.to_bits(), ((x * k) * (x + 3.0).max(0.0).min(6.0)).to_bits(), "hard_swish({x})");
            }
        }
        pool::set_threads(1).unwrap();
    }
}
