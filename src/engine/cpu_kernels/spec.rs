//! What every convolution kernel shares: the shape-independent description of a convolution
//! (`ConvSpec`), the clamp fused into its store, the instruction set picked at load time, the
//! raw output pointer handed to worker tasks, and the plain reference the kernels' tests use.

/// Activation applied before storing: `min(max(x, lo), hi)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clamp {
    pub lo: f32,
    pub hi: f32,
}

impl Clamp {
    pub const NONE: Clamp = Clamp { lo: f32::NEG_INFINITY, hi: f32::INFINITY };
}

/// Shape-independent description of one convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvSpec {
    pub c_in: usize,
    pub c_out: usize,
    pub group: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// Padding before (top, left) and after (bottom, right).
    pub pad_before: [usize; 2],
    pub pad_after: [usize; 2],
}

impl ConvSpec {
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let dim = |i: usize, n: usize| {
            let padded = n + self.pad_before[i] + self.pad_after[i];
            let span = self.dilation[i] * (self.kernel[i] - 1) + 1;
            (padded >= span).then(|| (padded - span) / self.stride[i] + 1)
        };
        Some((dim(0, h)?, dim(1, w)?))
    }
}

/// Instruction set the kernels run with, picked once at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Isa {
    /// The best kernel set this CPU runs; `None` where tract's own kernels are the better choice
    /// (no AVX2+FMA: e.g. arm64, where tract has tuned NEON code).
    pub fn fast() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Some(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Some(Isa::Avx2);
            }
        }
        None
    }

    /// Every kernel set this CPU can run (for tests).
    pub fn available() -> Vec<Isa> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                v.push(Isa::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
        }
        v
    }

    pub(super) fn lanes(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => 16,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 8,
            Isa::Portable => 8,
        }
    }

    /// Output-channel tile heights the micro-kernels exist for, largest first, and the number of
    /// vectors per tile for each (bounded by the register file).
    pub(super) fn tiles(self) -> &'static [(usize, usize)] {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => &[(8, 3), (4, 5), (2, 8), (1, 8)],
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &[(4, 3), (2, 4), (1, 6)],
            Isa::Portable => &[(4, 2), (2, 2), (1, 4)],
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct SendPtr(pub(super) *mut f32);
impl SendPtr {
    // A method, so closures capture the whole (Sync) wrapper, not its raw-pointer field.
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

#[derive(Clone, Copy)]
pub(super) struct SendConstPtr(pub(super) *const f32);
unsafe impl Send for SendConstPtr {}
unsafe impl Sync for SendConstPtr {}

/// Plain reference convolution (tests).
pub fn reference(spec: &ConvSpec, input: &[f32], h: usize, w: usize, weights: &[f32], bias: &[f32], clamp: Clamp) -> Vec<f32> {
    let (oh, ow) = spec.output_hw(h, w).unwrap();
    let (g, kh, kw) = (spec.group, spec.kernel[0], spec.kernel[1]);
    let (cig, cog) = (spec.c_in / g, spec.c_out / g);
    let mut out = vec![0f32; spec.c_out * oh * ow];
    for co in 0..spec.c_out {
        let gi = co / cog;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = bias[co] as f64;
                for ci in 0..cig {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let y = (oy * spec.stride[0] + ky * spec.dilation[0]) as isize - spec.pad_before[0] as isize;
                            let x = (ox * spec.stride[1] + kx * spec.dilation[1]) as isize - spec.pad_before[1] as isize;
                            if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                                continue;
                            }
                            let i = input[((gi * cig + ci) * h + y as usize) * w + x as usize] as f64;
                            acc += i * weights[((co * cig + ci) * kh + ky) * kw + kx] as f64;
                        }
                    }
                }
                out[(co * oh + oy) * ow + ox] = (acc as f32).max(clamp.lo).min(clamp.hi);
            }
        }
    }
    out
}

/// The smallest channel stride (in floats) >= `stride` that is an odd multiple of 16 floats
/// (64 bytes): consecutive channels then start on different L1 sets, whatever the plane size.
pub(super) fn unaliased(stride: usize) -> usize {
    let s = stride.div_ceil(16) * 16;
    if (s / 16) % 2 == 0 {
        s + 16
    } else {
        s
    }
}

/// Runs `f(0..n)` on the calling thread.
pub fn serial(n: usize, f: &(dyn Fn(usize) + Sync)) {
    (0..n).for_each(f)
}

