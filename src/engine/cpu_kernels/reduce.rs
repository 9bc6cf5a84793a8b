//! Max and first arg-max over one strided axis of an f32 tensor (`ops::reduce`): the input as
//! outer blocks of `len` rows of `inner` values, each block folded row by row into `inner`
//! results. Same folds as tract's, so the same results, NaNs included (a NaN never wins the
//! arg-max).

/// `out[o][j] = max over i of input[o][i][j]`, starting from f32::MIN.
pub fn strided_max(input: &[f32], len: usize, inner: usize, out: &mut [f32]) {
    for (src, dst) in input.chunks_exact(len * inner).zip(out.chunks_exact_mut(inner)) {
        dst.fill(f32::MIN);
        for row in src.chunks_exact(inner) {
            for (acc, &v) in dst.iter_mut().zip(row) {
                *acc = if *acc > v { *acc } else { v };
            }
        }
    }
}

/// `out[o][j]` = the first i where input[o][i][j] is largest (0 when none beats f32::MIN);
/// `len` at most u32::MAX.
pub fn strided_argmax(input: &[f32], len: usize, inner: usize, out: &mut [i64]) {
    assert!(len <= u32::MAX as usize);
    // Branch-free selects on same-width lanes (f32 values, u32 indices), which
    // the compiler vectorises.
    let (mut best, mut at) = (vec![f32::MIN; inner], vec![0u32; inner]);
    for (src, dst) in input.chunks_exact(len * inner).zip(out.chunks_exact_mut(inner)) {
        best.fill(f32::MIN);
        at.fill(0);
        for (i, row) in src.chunks_exact(inner).enumerate() {
            for ((b, a), &v) in best.iter_mut().zip(at.iter_mut()).zip(row) {
                let gt = v > *b;
                *b = if gt { v } else { *b };
                *a = if gt { i as u32 } else { *a };
            }
        }
        dst.iter_mut().zip(&at).for_each(|(d, a)| *d = *a as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Against a plain fold per output, bitwise, with ties, NaNs and all-NaN columns.
    #[test]
    fn match_plain_folds() {
        let mut rng = SplitMix64(3);
        for (outer, len, inner) in [(1, 4096, 102), (3, 17, 5), (2, 1, 9), (5, 33, 1), (1, 7, 64)] {
            let input: Vec<f32> = (0..outer * len * inner)
                .map(|i| match rng.below(40) {
                    0 => f32::NAN,
                    _ if i % inner == 1 => f32::NAN,
                    _ => rng.below(7) as f32 - 3.0,
                })
                .collect();
            let (mut max, mut arg) = (vec![0f32; outer * inner], vec![0i64; outer * inner]);
            strided_max(&input, len, inner, &mut max);
            strided_argmax(&input, len, inner, &mut arg);
            for o in 0..outer {
                for j in 0..inner {
                    // Max as tract folds it (a NaN after the running value replaces it); arg-max
                    // the first index of a strict maximum (a NaN never wins).
                    let (mut top, mut best, mut at) = (f32::MIN, f32::MIN, 0);
                    for i in 0..len {
                        let v = input[(o * len + i) * inner + j];
                        top = if top > v { top } else { v };
                        if v > best {
                            (best, at) = (v, i);
                        }
                    }
                    assert_eq!(max[o * inner + j].to_bits(), top.to_bits(), "max {outer}x{len}x{inner} at {o},{j}");
                    assert_eq!(arg[o * inner + j], at as i64, "arg-max {outer}x{len}x{inner} at {o},{j}");
                }
            }
        }
    }
}
