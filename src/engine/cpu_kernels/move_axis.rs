//! One axis of an f32 tensor moved (`ops::move_axis`): a strided copy by output rows, the
//! rows split over the worker pool.

use super::pool::split_out;
use tract_onnx::prelude::{tvec, TVec};

/// `out` (shape `out_shape`, output axis a being input axis `perm[a]`) from `input` (shape
/// `input_shape`, row-major); rank 1 or more.
pub fn move_axis(input: &[f32], input_shape: &[usize], perm: &[usize], out_shape: &[usize], out: &mut [f32]) {
    let rank = perm.len();
    let mut in_strides = tvec![1usize; rank];
    for a in (0..rank.saturating_sub(1)).rev() {
        in_strides[a] = in_strides[a + 1] * input_shape[a + 1];
    }
    // Input stride of each output axis; output rows run along the last one.
    let strides: TVec<usize> = perm.iter().map(|a| in_strides[*a]).collect();
    // (max(1): an empty tensor still cuts into whole rows.)
    let row = out_shape[rank - 1].max(1);
    split_out(out, row, &|start, part: &mut [f32]| {
        let mut idx = tvec![0usize; rank];
        let mut rem = start / row;
        for a in (0..rank - 1).rev() {
            idx[a] = rem % out_shape[a];
            rem /= out_shape[a];
        }
        for out_row in part.chunks_mut(row) {
            let base: usize = (0..rank - 1).map(|a| idx[a] * strides[a]).sum();
            let step = strides[rank - 1];
            out_row.iter_mut().enumerate().for_each(|(x, o)| *o = input[base + x * step]);
            for a in (0..rank - 1).rev() {
                idx[a] += 1;
                if idx[a] < out_shape[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu_kernels::pool;
    use crate::rng::SplitMix64;

    /// Against the index arithmetic of the permutation, element by element, on one thread and
    /// on the pool (large enough to be split).
    #[test]
    fn matches_index_arithmetic() {
        let mut rng = SplitMix64(6);
        for case in 0..30 {
            pool::set_threads(1 + case % 2).unwrap();
            let rank = 1 + rng.below(4);
            let mut shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(12)).collect();
            if case % 5 == 0 {
                shape = vec![1, 64, 256, 3];
            }
            let rank = shape.len();
            let (from, to) = (rng.below(rank), rng.below(rank));
            let mut perm: Vec<usize> = (0..rank).filter(|a| *a != from).collect();
            perm.insert(to, from);
            let out_shape: Vec<usize> = perm.iter().map(|a| shape[*a]).collect();
            let n: usize = shape.iter().product();
            let input: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let mut out = vec![f32::NAN; n];
            move_axis(&input, &shape, &perm, &out_shape, &mut out);
            for (k, v) in out.iter().enumerate() {
                // Output index -> input index.
                let (mut rem, mut idx) = (k, vec![0; rank]);
                for a in (0..rank).rev() {
                    idx[a] = rem % out_shape[a];
                    rem /= out_shape[a];
                }
                let mut in_idx = vec![0; rank];
                for a in 0..rank {
                    in_idx[perm[a]] = idx[a];
                }
                let flat = in_idx.iter().zip(&shape).fold(0, |acc, (i, d)| acc * d + i);
                assert_eq!(*v, input[flat], "{shape:?} {from} -> {to} at {k}");
            }
        }
        pool::set_threads(1).unwrap();
    }
}
