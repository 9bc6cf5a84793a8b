//! Element-wise binary operations with numpy broadcasting over the worker pool
//! (`ops::broadcast`): the same IEEE operation per element as tract's, so the same bits.

use super::pool::split_out;

/// A kernel for runs of elements: `row(x, y, out)` computes `f` element by element (x, y and
/// out of one length).
pub type RowKernel<T, U> = dyn Fn(&[T], &[T], &mut [U]) + Sync;

/// `out = f(a, b)` with numpy broadcasting; all shapes of the same rank. Rows of the merged
/// innermost axis are split over the worker pool for large outputs. Runs where both operands
/// advance go to `row` where it is given (runs with one operand fixed stay on `f`: per-run
/// calls cost more than they save there, measured on MoveNet's rows of 17).
#[allow(clippy::too_many_arguments)]
pub fn broadcast_binary<T: Copy + Sync, U: Copy + Send + Sync>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
    out: &mut [U],
    f: impl Fn(T, T) -> U + Sync,
    row: Option<&RowKernel<T, U>>,
) {
    // Drop size-1 output axes and merge neighbours that broadcast alike, so rows are as long
    // as they can be ([64,64,6,1] < [64,64,1,1] x [1,1,6,1] becomes rows of 6, not of 1).
    let (mut o, mut sa, mut sb): (Vec<usize>, Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new(), Vec::new());
    for i in (0..out_shape.len()).filter(|&i| out_shape[i] > 1) {
        let (fa, fb) = (a_shape[i] > 1, b_shape[i] > 1);
        match o.len() {
            n if n > 0 && (sa[n - 1] > 1) == fa && (sb[n - 1] > 1) == fb => {
                o[n - 1] *= out_shape[i];
                sa[n - 1] *= a_shape[i];
                sb[n - 1] *= b_shape[i];
            }
            _ => {
                o.push(out_shape[i]);
                sa.push(a_shape[i]);
                sb.push(b_shape[i]);
            }
        }
    }
    if o.is_empty() {
        (o, sa, sb) = (vec![1], vec![1], vec![1]);
    }
    // One operand whole, the other repeating with a short period (a per-channel constant on
    // NHWC data: MoveNet's input normalisation, rows of 3): one flat pass with the short
    // operand tiled to a vector-friendly length.
    let suffix = |x: &[usize]| {
        let k = x.iter().take_while(|d| **d == 1).count();
        k > 0 && x[k..] == o[k..]
    };
    if sa == o && sb == o {
        // Same shapes: one flat pass, in equal parts.
        split_out(out, 1, &|c0, part| {
            let c1 = c0 + part.len();
            match row {
                Some(row) => row(&a[c0..c1], &b[c0..c1], part),
                None => part.iter_mut().zip(&a[c0..c1]).zip(&b[c0..c1]).for_each(|((o, x), y)| *o = f(*x, *y)),
            }
        });
        return;
    }
    if sa == o && suffix(&sb) || sb == o && suffix(&sa) {
        let a_whole = sa == o;
        let (whole, short) = if a_whole { (a, b) } else { (b, a) };
        let period = short.len();
        let tiled: Vec<T> = short.iter().copied().cycle().take(period * 64usize.div_ceil(period)).collect();
        let n = tiled.len();
        split_out(out, n, &|c0, part| {
            let c1 = c0 + part.len();
            for (o, w) in part.chunks_mut(n).zip(whole[c0..c1].chunks(n)) {
                if a_whole {
                    o.iter_mut().zip(w).zip(&tiled).for_each(|((o, x), y)| *o = f(*x, *y));
                } else {
                    o.iter_mut().zip(w).zip(&tiled).for_each(|((o, y), x)| *o = f(*x, *y));
                }
            }
        });
        return;
    }
    let rank = o.len();
    let strides = |shape: &[usize]| {
        let mut s = vec![0usize; rank];
        let mut acc = 1;
        for i in (0..rank).rev() {
            s[i] = if shape[i] == 1 { 0 } else { acc };
            acc *= shape[i];
        }
        s
    };
    let (sa, sb) = (strides(&sa), strides(&sb));
    let inner = o[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    split_out(out, inner, &|c0, part| {
        let mut idx = vec![0usize; rank];
        let mut rem = c0 / inner;
        for i in (0..rank - 1).rev() {
            idx[i] = rem % o[i];
            rem /= o[i];
        }
        for dst in part.chunks_mut(inner) {
            let oa: usize = (0..rank - 1).map(|i| idx[i] * sa[i]).sum();
            let ob: usize = (0..rank - 1).map(|i| idx[i] * sb[i]).sum();
            match (row, ia, ib) {
                (Some(row), 1, 1) => row(&a[oa..oa + inner], &b[ob..ob + inner], dst),
                (_, 1, 1) => dst.iter_mut().zip(&a[oa..oa + inner]).zip(&b[ob..ob + inner]).for_each(|((o, x), y)| *o = f(*x, *y)),
                (_, 1, 0) => dst.iter_mut().zip(&a[oa..oa + inner]).for_each(|(o, x)| *o = f(*x, b[ob])),
                (_, 0, 1) => dst.iter_mut().zip(&b[ob..ob + inner]).for_each(|(o, y)| *o = f(a[oa], *y)),
                _ => dst.fill(f(a[oa], b[ob])),
            }
            for i in (0..rank - 1).rev() {
                idx[i] += 1;
                if idx[i] < o[i] {
                    break;
                }
                idx[i] = 0;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu_kernels::{mul, pool};
    use crate::rng::SplitMix64;

    #[test]
    fn broadcast_binary_matches_naive() {
        let mut rng = SplitMix64(21);
        for case in 0..220 {
            let rank = 1 + rng.below(4);
            // The last cases are large enough to be split over threads (MoveNet-like shapes).
            let out: Vec<usize> = (0..rank).map(|_| 1 + rng.below(if case >= 200 { 40 } else { 5 })).collect();
            let pick = |rng: &mut SplitMix64| out.iter().map(|&d| if rng.below(2) == 0 { 1 } else { d }).collect::<Vec<_>>();
            let (sa, sb) = (pick(&mut rng), pick(&mut rng));
            // Every third case in the denormal range, where products go through `mul`'s rows.
            let scale = if case % 3 == 0 { 1e-20 } else { 1.0 };
            let a: Vec<f32> = (0..sa.iter().product()).map(|_| rng.unit_f32() * scale).collect();
            let b: Vec<f32> = (0..sb.iter().product()).map(|_| rng.unit_f32() * scale).collect();
            let mut got = vec![0f32; out.iter().product()];
            broadcast_binary(&a, &sa, &b, &sb, &out, &mut got, |x, y| x - y, None);
            let mut prod = vec![0f32; out.iter().product()];
            broadcast_binary(&a, &sa, &b, &sb, &out, &mut prod, |x, y| x * y, Some(&mul::mul_into));
            let at = |v: &[f32], s: &[usize], idx: &[usize]| v[idx.iter().zip(s).fold(0, |acc, (i, d)| acc * d + if *d == 1 { 0 } else { *i })];
            for (k, g) in got.iter().enumerate() {
                let mut idx = vec![0; rank];
                let mut r = k;
                for i in (0..rank).rev() {
                    idx[i] = r % out[i];
                    r /= out[i];
                }
                assert_eq!(*g, at(&a, &sa, &idx) - at(&b, &sb, &idx), "{sa:?} {sb:?} {out:?}");
                assert_eq!(prod[k].to_bits(), (at(&a, &sa, &idx) * at(&b, &sb, &idx)).to_bits(), "product {sa:?} {sb:?} {out:?}");
            }
        }
        // A comparison with a bool output, on the pool as `--threads 2` runs it.
        pool::set_threads(2).unwrap();
        let (sa, sb, out) = ([64, 64, 1, 1], [1, 1, 6, 1], [64, 64, 6, 1]);
        let a: Vec<f32> = (0..64 * 64).map(|_| rng.unit_f32()).collect();
        let b: Vec<f32> = (0..6).map(|_| rng.unit_f32()).collect();
        let mut got = vec![false; 64 * 64 * 6];
        broadcast_binary(&a, &sa, &b, &sb, &out, &mut got, |x, y| x < y, None);
        pool::set_threads(1).unwrap();
        for (k, g) in got.iter().enumerate() {
            assert_eq!(*g, a[k / 6] < b[k % 6], "at {k}");
        }
    }
}
