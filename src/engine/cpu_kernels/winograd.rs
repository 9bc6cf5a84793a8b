//! Winograd F(4x4, 3x3) for dense 3x3 stride-1 convolutions on AVX-512 and on AVX2 + FMA
//! (Lavin & Gray 2016; the AVX2 transforms are in `winograd_avx2`).
//!
//! Why: these convolutions are most of BEVANet's time, and the direct kernel already runs near
//! the FMA peak; F(4x4, 3x3) needs 36 multiply-adds per 4x4 outputs and input channel instead
//! of 144. Each output tile is y = A^T [sum_ci (G g G^T) . (B^T d B)] A:
//!
//! 1. input transform: every 6x6 input patch d (tiles 4 apart) of every input channel becomes
//!    36 values V[xi]; 16 tiles side by side per vector, read from a copy of the padded channel
//!    whose columns are split by `col % 4` (tile t's columns are then phases 0..3 at t and
//!    phases 0..1 at t + 1). V[xi] is stored in panels of 16 tiles x all input channels, so
//!    a product's tile reads a few sequential streams, not one per input channel;
//! 2. 36 matrix products M[xi] = U[xi] (c_out x c_in) . V[xi] (c_in x tiles), run as 1x1
//!    convolutions by `direct`'s micro-kernels with the tiles as positions;
//! 3. output transform: A^T M A per tile, bias and clamp, columns interleaved back into rows.
//!
//! The transforms use the points 0, +-1, +-2, +-1/2 (largest coefficient 8): against the direct
//! reference the error stayed below 1e-5 of the sums' scale (tests below, limit 2e-5).

use super::direct::{Ctx, DirectConv};
use super::winograd_avx2;
use super::winograd_layout::{Layout, T};
use super::spec::{Clamp, ConvSpec, Isa, SendPtr};
use std::arch::x86_64::*;
use std::cell::RefCell;

/// F(4x4, 3x3): G (6x3), applied in f64 at load.
const G: [[f64; 3]; T] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// A dense 3x3 stride-1 convolution's weights, transformed for F(4x4, 3x3).
#[derive(Debug, Clone, PartialEq)]
pub struct Winograd {
    spec: ConvSpec,
    /// U[xi] as a c_out x c_in pointwise convolution, xi = 6 i + j.
    gemm: Vec<DirectConv>,
    isa: Isa,
}

thread_local! {
    /// Per calling thread: the transformed input V and the products M.
    static VM: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// Per worker: one channel's padded, phase-split rows and those rows transformed down.
    static PATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl Winograd {
    /// `None` unless the convolution is dense 3x3, stride 1, dilation 1, with AVX-512 or AVX2.
    pub fn new(spec: &ConvSpec, weights: &[f32], isa: Isa) -> Option<Winograd> {
        if !Winograd::supports(spec, isa) {
            return None;
        }
        let (ci, co) = (spec.c_in, spec.c_out);
        let mut u = vec![vec![0f32; co * ci]; T * T];
        for o in 0..co {
            for c in 0..ci {
                let g = &weights[(o * ci + c) * 9..][..9];
                // G g G^T in f64.
                let mut gg = [[0f64; 3]; T];
                for (i, row) in gg.iter_mut().enumerate() {
                    for (b, v) in row.iter_mut().enumerate() {
                        *v = (0..3).map(|a| G[i][a] * g[a * 3 + b] as f64).sum();
                    }
                }
                for i in 0..T {
                    for j in 0..T {
                        u[i * T + j][o * ci + c] = (0..3).map(|b| gg[i][b] * G[j][b]).sum::<f64>() as f32;
                    }
                }
            }
        }
        let pointwise = ConvSpec { c_in: ci, c_out: co, group: 1, kernel: [1, 1], stride: [1, 1], dilation: [1, 1], pad_before: [0, 0], pad_after: [0, 0] };
        let gemm = u.iter().map(|u| DirectConv::new(pointwise.clone(), u, isa)).collect();
        Some(Winograd { spec: spec.clone(), gemm, isa })
    }

    /// Whether `new` takes the convolution: dense 3x3, stride 1, dilation 1, on AVX-512 or
    /// AVX2 + FMA.
    pub fn supports(spec: &ConvSpec, isa: Isa) -> bool {
        matches!(isa, Isa::Avx512 | Isa::Avx2) && dense_3x3_unit(spec)
    }

    /// Whether F(4x4, 3x3) pays on an `h` x `w` input (measured with `examples/conv_shapes`):
    /// * enough channels that the products outweigh the transforms, whose cost grows with
    ///   c_in + c_out: 64 x 64 channels at 64x128 ran 1.3-2.3x faster, 32 x 32 1.5x slower;
    /// * enough tiles that U (36 c_in c_out floats) is used more than a few times: 256
    ///   channels at 16x32 (32 tiles) ran 2x faster, 512 at 8x16 (8 tiles) 2x slower.
    pub fn pays(spec: &ConvSpec, h: usize, w: usize) -> bool {
        let (ci, co) = (spec.c_in, spec.c_out);
        dense_3x3_unit(spec) && ci * co >= 32 * (ci + co) && Layout::new(spec, h, w).is_some_and(|l| l.nty * l.ntx >= 32)
    }

    /// Same contract as `DirectConv::run`, on the transformed weights: the three steps, each
    /// split over the pool. (Blocks of tile rows kept in L2 measured slower: every block
    /// re-reads all of U, 2.4 MB at 128 channels.)
    pub fn run(&self, input: &[f32], h: usize, w: usize, bias: &[f32], clamp: Clamp, out: &mut [f32], par: &dyn Fn(usize, &(dyn Fn(usize) + Sync))) {
        let l = Layout::new(&self.spec, h, w).expect("output size checked at load");
        let (ci, co) = (self.spec.c_in, self.spec.c_out);
        assert_eq!(input.len(), ci * h * w);
        assert_eq!(out.len(), co * l.oh * l.ow);
        assert_eq!(bias.len(), co);
        let (npos, m_stride) = (l.npos(), l.m_stride());
        // V[xi]: npos / 16 panels of [ci][16]; M[xi]: [co][m_stride].
        let (v_xi, m_xi) = (npos * ci, co * m_stride);
        let (mut v, mut m) = VM.with(|vm| std::mem::take(&mut *vm.borrow_mut()));
        v.resize(v.len().max(T * T * v_xi + 16), 0.0);
        m.resize(m.len().max(T * T * m_xi + 16), 0.0);
        // Both start on a cache line.
        let (v0, m0) = (v.as_ptr().align_offset(64), m.as_ptr().align_offset(64));
        let (vp, mp) = (SendPtr(v[v0..].as_mut_ptr()), SendPtr(m[m0..].as_mut_ptr()));
        // 1. Input transform, one task per input channel. A V much larger than L2 is written
        // with streaming stores: without them each line is first read for ownership (128
        // channels at 64x128, 9.4 MB: 1.3-1.6x faster).
        let stream = T * T * v_xi * 4 > 4 << 20;
        par(ci, &|c: usize| {
            PATCH.with(|p| {
                let (phases, rows) = &mut *p.borrow_mut();
                let (src, dst) = (&input[c * h * w..][..h * w], unsafe { vp.get().add(16 * c) });
                // SAFETY: the ISA checked at load; task c writes only channel c's lanes of V.
                unsafe {
                    match self.isa {
                        Isa::Avx512 => input_transform(&l, src, phases, rows, dst, v_xi, 16 * ci, stream),
                        _ => winograd_avx2::input_transform(&l, src, phases, rows, dst, v_xi, 16 * ci, stream),
                    }
                }
            })
        });
        // 2. The 36 products, each split into runs of output blocks.
        // Positions of the micro-kernels' vector width: a panel of 16 tiles is one AVX-512
        // vector, two AVX2 ones (each channel's 16 tiles stay `ci_stride` 16 apart).
        let lanes = self.isa.lanes();
        let positions: Vec<(usize, usize, usize)> =
            (0..npos / 16).flat_map(|p| (0..16 / lanes).map(move |k| (16 * ci * p + lanes * k, 16 * p + lanes * k, lanes))).collect();
        let zeros = vec![0f32; co];
        let nb = self.gemm[0].n_blocks();
        let per_xi = (co * ci * npos / (1 << 20)).clamp(1, nb);
        par(T * T * per_xi, &|t: usize| {
            let (xi, b) = (t / per_xi, t % per_xi);
            // SAFETY (offsets): V[xi] and M[xi] lie within the buffers sized above.
            let ctx = Ctx { buf: unsafe { vp.get().add(xi * v_xi) }, ci_stride: 16, cig: ci, taps: &[0], out: SendPtr(unsafe { mp.get().add(xi * m_xi) }), plane: m_stride, clamp: Clamp::NONE };
            // SAFETY: the positions read whole panels of V[xi]; task (xi, b) writes only its
            // own blocks of M[xi]. Tile-major: a tile's panels (128 channels, 24 KiB) stay in
            // L1 for every block (chunks of 32 channels measured 1.0-1.7x slower).
            unsafe { self.gemm[xi].run_blocks(&ctx, 0, &zeros, &positions, b * nb / per_xi..(b + 1) * nb / per_xi, Some(128)) };
        });
        // 3. Output transform, one task per output channel.
        let op = SendPtr(out.as_mut_ptr());
        par(co, &|o: usize| {
            let (src, dst) = unsafe { (mp.get().add(o * m_stride), op.get().add(o * l.oh * l.ow)) };
            // SAFETY: the ISA checked at load; task o writes only output plane o.
            unsafe {
                match self.isa {
                    Isa::Avx512 => output_transform(&l, src, m_xi, bias[o], clamp, dst),
                    _ => winograd_avx2::output_transform(&l, src, m_xi, bias[o], clamp, dst),
                }
            }
        });
        VM.with(|vm| *vm.borrow_mut() = (v, m));
    }
}

/// Dense 3x3, stride 1, dilation 1: the convolutions F(4x4, 3x3) computes.
fn dense_3x3_unit(spec: &ConvSpec) -> bool {
    spec.group == 1 && spec.kernel == [3, 3] && spec.stride == [1, 1] && spec.dilation == [1, 1]
}

/// B^T d for six vectors d (rows or column phases of a 6x6 patch).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn bt(d: [__m512; 6]) -> [__m512; 6] {
    let (c4, c5, c2) = (_mm512_set1_ps(4.0), _mm512_set1_ps(5.0), _mm512_set1_ps(2.0));
    let d4_m_d2 = _mm512_sub_ps(d[4], d[2]);
    let d3_m_d1 = _mm512_sub_ps(d[3], d[1]);
    // t1, t2 = (d4 - 4 d2) -+ (4 d1 - d3); t3, t4 = (d4 - d2) +- 2 (d3 - d1)
    let a = _mm512_fnmadd_ps(c4, d[2], d[4]);
    let b = _mm512_fmsub_ps(c4, d[1], d[3]);
    let e = _mm512_mul_ps(c2, d3_m_d1);
    [
        _mm512_add_ps(_mm512_fnmadd_ps(c5, d[2], _mm512_mul_ps(c4, d[0])), d[4]),
        _mm512_sub_ps(a, b),
        _mm512_add_ps(a, b),
        _mm512_add_ps(d4_m_d2, e),
        _mm512_sub_ps(d4_m_d2, e),
        _mm512_add_ps(_mm512_fnmadd_ps(c5, d[3], _mm512_mul_ps(c4, d[1])), d[5]),
    ]
}

/// A^T m for six vectors m.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn at(m: [__m512; 6]) -> [__m512; 4] {
    let p12 = _mm512_add_ps(m[1], m[2]);
    let m12 = _mm512_sub_ps(m[1], m[2]);
    let p34 = _mm512_add_ps(m[3], m[4]);
    let m34 = _mm512_sub_ps(m[3], m[4]);
    [
        _mm512_add_ps(_mm512_add_ps(m[0], p12), p34),
        _mm512_fmadd_ps(_mm512_set1_ps(2.0), m34, m12),
        _mm512_fmadd_ps(_mm512_set1_ps(4.0), p34, p12),
        _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0), m34, m12), m[5]),
    ]
}

fn mask(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as u16
    }
}

/// One input channel into V: its padded copy split into column phases, B^T down each phase,
/// then B^T across (phases 0..3 at tile t, 0..1 at t + 1). `v` is this channel's first vector
/// in V[0]; V[xi] are `xi_stride` apart, and panels of 16 tiles `panel` apart in each.
/// `stream`: whole aligned vectors bypass the cache.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn input_transform(l: &Layout, src: &[f32], phases: &mut Vec<f32>, rows: &mut Vec<f32>, v: *mut f32, xi_stride: usize, panel: usize, stream: bool) {
    let (lq, row_len) = (l.lq, 4 * l.lq);
    // Padded rows in a ring of 8 (phase k of padded row p at [p % 8][k][..lq]): tile row y
    // reads rows 4 y .. 4 y + 5, two of them shared with the row before; all in L1.
    phases.resize(8 * row_len, 0.0);
    rows.resize(T * row_len, 0.0);
    let tr = &mut rows[..];
    for y in 0..l.nty {
        for p in if y == 0 { 0 } else { 4 * y + 2 }..4 * y + 6 {
            let dst = &mut phases[p % 8 * row_len..][..row_len];
            if p < l.pt || p - l.pt >= l.h {
                dst.fill(0.0);
                continue;
            }
            deinterleave4(&src[(p - l.pt) * l.w..][..l.w], l.pl, dst, lq);
        }
        // Down: tr[i][k][..] = sum_r B^T[i][r] phases[4 y + r][k][..].
        for off in (0..row_len).step_by(16) {
            let d = std::array::from_fn(|r| _mm512_loadu_ps(phases.as_ptr().add((4 * y + r) % 8 * row_len + off)));
            let t = bt(d);
            for (i, t) in t.iter().enumerate() {
                _mm512_storeu_ps(tr.as_mut_ptr().add(i * row_len + off), *t);
            }
        }
        // Across, 16 tiles at a time.
        for xv in 0..l.nxv {
            let x0 = 16 * xv;
            let n = (l.ntx - x0).min(16);
            // Tiles t0.. go to panel t0 / 16 from lane t0 % 16; lanes past the panel's end
            // go to the next panel (masked stores touch only their lanes).
            let t0 = y * l.ntx + x0;
            let (dst, lane) = (v.add(t0 / 16 * panel + t0 % 16), t0 % 16);
            let first = mask(n.min(16 - lane));
            let rest = mask(n) & !mask(16 - lane);
            let dst2 = dst.add(panel).sub(16);
            for i in 0..T {
                let r = tr.as_ptr().add(i * row_len + x0);
                let d = [
                    _mm512_loadu_ps(r),
                    _mm512_loadu_ps(r.add(lq)),
                    _mm512_loadu_ps(r.add(2 * lq)),
                    _mm512_loadu_ps(r.add(3 * lq)),
                    _mm512_loadu_ps(r.add(1)),
                    _mm512_loadu_ps(r.add(lq + 1)),
                ];
                for (j, t) in bt(d).iter().enumerate() {
                    if first == 0xffff && stream {
                        _mm512_stream_ps(dst.add((i * T + j) * xi_stride), *t);
                    } else {
                        _mm512_mask_storeu_ps(dst.add((i * T + j) * xi_stride), first, *t);
                    }
                    if rest != 0 {
                        _mm512_mask_storeu_ps(dst2.add((i * T + j) * xi_stride), rest, *t);
                    }
                }
            }
        }
    }
    if stream {
        // Streaming stores are weakly ordered: complete them before the pool reports this
        // task done to the threads that read V.
        _mm_sfence();
    }
    // Tiles past the last one (up to the vector boundary) are read by the products: zeros.
    let (nt, npos) = (l.nty * l.ntx, l.npos());
    for xi in 0..T * T {
        for t in nt..npos {
            *v.add(xi * xi_stride + t / 16 * panel + t % 16) = 0.0;
        }
    }
}

/// One output channel from M: A^T down, A^T across, bias and clamp, the four column phases
/// interleaved back into rows. `m` is this channel's row of M[0]; M[xi] rows are `xi_stride`
/// apart.
#[target_feature(enable = "avx512f")]
unsafe fn output_transform(l: &Layout, m: *const f32, xi_stride: usize, bias: f32, clamp: Clamp, out: *mut f32) {
    let b = _mm512_set1_ps(bias);
    let clamped = clamp != Clamp::NONE;
    let (lo, hi) = (_mm512_set1_ps(clamp.lo), _mm512_set1_ps(clamp.hi));
    for ty in 0..l.nty {
        for xv in 0..l.nxv {
            let src = m.add(ty * l.ntx + 16 * xv);
            // s[r][j] = sum_i A^T[r][i] M[6 i + j]
            let mut s = [[_mm512_setzero_ps(); T]; 4];
            for j in 0..T {
                let col = at(std::array::from_fn(|i| _mm512_loadu_ps(src.add((i * T + j) * xi_stride))));
                for r in 0..4 {
                    s[r][j] = col[r];
                }
            }
            for (r, s) in s.iter().enumerate() {
                let oy = 4 * ty + r;
                if oy >= l.oh {
                    break;
                }
                let mut y = at(*s);
                for y in y.iter_mut() {
                    *y = _mm512_add_ps(*y, b);
                    if clamped {
                        *y = _mm512_min_ps(_mm512_max_ps(*y, lo), hi);
                    }
                }
                let row = interleave4(y);
                let x0 = 64 * xv;
                for (q, v) in row.iter().enumerate() {
                    let c = x0 + 16 * q;
                    if c < l.ow {
                        _mm512_mask_storeu_ps(out.add(oy * l.ow + c), mask(l.ow - c), *v);
                    }
                }
            }
        }
    }
}

/// One input row, padded with `pl` zeros on the left and zeros on the right, into four phases
/// of `lq`: dst[k][t] = padded[4 t + k]. (Masked loads read the row in place: staging it in a
/// padded copy stalled every load on store forwarding.)
#[target_feature(enable = "avx512f")]
unsafe fn deinterleave4(src: &[f32], pl: usize, dst: &mut [f32], lq: usize) {
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let w = src.len() as isize;
    // Padded columns q0 .. q0 + 16: input columns q0 - pl ..; lanes outside the row read zero.
    let load = |q0: usize| {
        let c0 = q0 as isize - pl as isize;
        let (lo, hi) = ((-c0).clamp(0, 16), (w - c0).clamp(0, 16));
        let k = if hi > lo { mask(hi as usize) & !mask(lo as usize) } else { 0 };
        // Masked-off lanes are not accessed, so the pointer may lie outside the row.
        _mm512_maskz_loadu_ps(k, src.as_ptr().wrapping_offset(c0))
    };
    for t in (0..lq).step_by(16) {
        let (a, b, c, d) = (load(4 * t), load(4 * t + 16), load(4 * t + 32), load(4 * t + 48));
        let (e0, o0) = (_mm512_permutex2var_ps(a, even, b), _mm512_permutex2var_ps(a, odd, b));
        let (e1, o1) = (_mm512_permutex2var_ps(c, even, d), _mm512_permutex2var_ps(c, odd, d));
        let q = dst.as_mut_ptr().add(t);
        _mm512_storeu_ps(q, _mm512_permutex2var_ps(e0, even, e1));
        _mm512_storeu_ps(q.add(lq), _mm512_permutex2var_ps(o0, even, o1));
        _mm512_storeu_ps(q.add(2 * lq), _mm512_permutex2var_ps(e0, odd, e1));
        _mm512_storeu_ps(q.add(3 * lq), _mm512_permutex2var_ps(o0, odd, o1));
    }
}

/// Four column phases (y[k] lane t = column 4 t + k) into 64 consecutive columns.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn interleave4(y: [__m512; 4]) -> [__m512; 4] {
    let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    // Evens (phases 0, 2) and odds (1, 3) of the 64 columns, then the two interleaved.
    let (e0, e1) = (_mm512_permutex2var_ps(y[0], lo, y[2]), _mm512_permutex2var_ps(y[0], hi, y[2]));
    let (o0, o1) = (_mm512_permutex2var_ps(y[1], lo, y[3]), _mm512_permutex2var_ps(y[1], hi, y[3]));
    [
        _mm512_permutex2var_ps(e0, lo, o0),
        _mm512_permutex2var_ps(e0, hi, o0),
        _mm512_permutex2var_ps(e1, lo, o1),
        _mm512_permutex2var_ps(e1, hi, o1),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Tasks on two scoped threads, interleaved, so the split's boundaries are exercised.
    fn two_threads(n: usize, f: &(dyn Fn(usize) + Sync)) {
        std::thread::scope(|s| {
            s.spawn(|| (0..n).step_by(2).for_each(f));
            (1..n).step_by(2).for_each(f);
        });
    }

    #[test]
    fn matches_direct_reference_over_random_shapes() {
        // AVX2 wherever it runs; AVX-512 where present (the switch says whether it must be).
        let mut isas: Vec<Isa> = Isa::available().into_iter().filter(|i| *i == Isa::Avx2).collect();
        if super::super::choice::avx512_or_skip("winograd::matches_direct_reference_over_random_shapes (AVX-512)") {
            isas.push(Isa::Avx512);
        }
        assert!(!isas.is_empty(), "neither AVX2 nor AVX-512: no Winograd kernel to test");
        for isa in isas {
            matches_direct_reference(isa);
        }
    }

    fn matches_direct_reference(isa: Isa) {
        let mut rng = SplitMix64(11);
        // The second is large enough for streaming stores into V.
        let mut cases = vec![(16, 16, 8, 8, [1, 1], [1, 1], Clamp::NONE), (64, 40, 62, 126, [1, 1], [1, 1], Clamp { lo: 0.0, hi: f32::INFINITY })];
        for _ in 0..60 {
            let r = |rng: &mut SplitMix64, lo: usize, hi: usize| lo + (rng.unit_f32() * (hi - lo + 1) as f32) as usize % (hi - lo + 1);
            let pb = [r(&mut rng, 0, 2), r(&mut rng, 0, 2)];
            let pa = [r(&mut rng, 0, 2), r(&mut rng, 0, 2)];
            let clamp = if r(&mut rng, 0, 1) == 0 { Clamp::NONE } else { Clamp { lo: 0.0, hi: 6.0 } };
            cases.push((r(&mut rng, 1, 40), r(&mut rng, 1, 40), r(&mut rng, 3, 40), r(&mut rng, 3, 90), pb, pa, clamp));
        }
        for (ci, co, h, w, pb, pa, clamp) in cases {
            let spec = ConvSpec { c_in: ci, c_out: co, group: 1, kernel: [3, 3], stride: [1, 1], dilation: [1, 1], pad_before: pb, pad_after: pa };
            let Some((oh, ow)) = spec.output_hw(h, w) else { continue };
            let input: Vec<f32> = (0..ci * h * w).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
            let weights: Vec<f32> = (0..co * ci * 9).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
            let bias: Vec<f32> = (0..co).map(|_| rng.unit_f32() - 0.5).collect();
            let want = super::super::spec::reference(&spec, &input, h, w, &weights, &bias, clamp);
            let wg = Winograd::new(&spec, &weights, isa).unwrap();
            let mut got = vec![f32::NAN; co * oh * ow];
            wg.run(&input, h, w, &bias, clamp, &mut got, &two_threads);
            // The scale of the sums before any clamp: the transforms' rounding follows it.
            let unclamped = super::super::spec::reference(&spec, &input, h, w, &weights, &bias, Clamp::NONE);
            let scale = unclamped.iter().fold(1f32, |m, x| m.max(x.abs()));
            let err = want.iter().zip(&got).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            // Products of up to 9 * 40 terms of size 1: f32 rounding in the transforms adds a few ulps of the scale.
            assert!(err <= 2e-5 * scale, "{isa:?} ci {ci} co {co} {h}x{w} pad {pb:?}/{pa:?}: max err {err} (scale {scale})");
        }
    }

    #[test]
    fn phases_round_trip() {
        if !super::super::choice::avx512_or_skip("winograd::phases_round_trip") {
            return;
        }
        // A row of 100 with 3 zeros of padding on the left, zeros after it.
        let row: Vec<f32> = (1..=100).map(|i| i as f32).collect();
        let padded = |q: usize| if (3..103).contains(&q) { (q - 2) as f32 } else { 0.0 };
        let mut ph = vec![f32::NAN; 128];
        unsafe { deinterleave4(&row, 3, &mut ph, 32) };
        for k in 0..4 {
            for t in 0..32 {
                assert_eq!(ph[k * 32 + t], padded(4 * t + k), "phase {k} tile {t}");
            }
        }
        let src: Vec<f32> = (0..64).map(|q| padded(q)).collect();
        let y: [__m512; 4] = std::array::from_fn(|k| unsafe { _mm512_loadu_ps(ph[k * 32..].as_ptr()) });
        let back = unsafe { interleave4(y) };
        let mut flat = [0f32; 64];
        for (q, v) in back.iter().enumerate() {
            unsafe { _mm512_storeu_ps(flat[16 * q..].as_mut_ptr(), *v) };
        }
        assert_eq!(flat.to_vec(), src[..64].to_vec());
    }
}
