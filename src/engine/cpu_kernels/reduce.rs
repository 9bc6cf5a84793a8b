//! Max and first arg-max over one strided axis of an f32 tensor (`ops::reduce`): the input as
//! outer blocks of `len` rows of `inner` values, each block folded row by row into `inner`
//! results. Same folds as tract's, so the same results, NaNs included (a NaN never wins).

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
