//! One GPU kernel per op instance: which WGSL file (`shaders/`), the constants baked into it
//! (shapes, strides, parameters), its buffer bindings and its dispatch size.

use super::attrs::pad_to_6;
use anyhow::{bail, Result};

/// Where a kernel binding reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Value(usize),
    Param(usize),
}


const COMMON: &str = include_str!("../../../shaders/common.wgsl");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shader {
    ConvNaive,
    ConvDense,
    Conv1x1Gemm,
    DepthwiseTiled,
    ConvTranspose,
    Unary,
    Binary,
    StridedCopy,
    Resize,
    Pool,
    Reduce,
    Matmul,
}

impl Shader {
    pub fn file(self) -> &'static str {
        match self {
            Shader::ConvNaive => include_str!("../../../shaders/conv_naive.wgsl"),
            Shader::ConvDense => include_str!("../../../shaders/conv_dense.wgsl"),
            Shader::Conv1x1Gemm => include_str!("../../../shaders/conv1x1_gemm.wgsl"),
            Shader::DepthwiseTiled => include_str!("../../../shaders/depthwise_tiled.wgsl"),
            Shader::ConvTranspose => include_str!("../../../shaders/conv_transpose.wgsl"),
            Shader::Unary => include_str!("../../../shaders/unary.wgsl"),
            Shader::Binary => include_str!("../../../shaders/binary.wgsl"),
            Shader::StridedCopy => include_str!("../../../shaders/strided_copy.wgsl"),
            Shader::Resize => include_str!("../../../shaders/resize.wgsl"),
            Shader::Pool => include_str!("../../../shaders/pool.wgsl"),
            Shader::Reduce => include_str!("../../../shaders/reduce.wgsl"),
            Shader::Matmul => include_str!("../../../shaders/matmul.wgsl"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Shader::ConvNaive => "conv_naive",
            Shader::ConvDense => "conv_dense",
            Shader::Conv1x1Gemm => "conv1x1_gemm",
            Shader::DepthwiseTiled => "depthwise_tiled",
            Shader::ConvTranspose => "conv_transpose",
            Shader::Unary => "unary",
            Shader::Binary => "binary",
            Shader::StridedCopy => "strided_copy",
            Shader::Resize => "resize",
            Shader::Pool => "pool",
            Shader::Reduce => "reduce",
            Shader::Matmul => "matmul",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConstV {
    U(u32),
    I(i32),
    F(f32),
}

// Element-wise function codes (shaders/common.wgsl `unary`).
pub const IDENTITY: u32 = 0;
pub const RELU: u32 = 1;
pub const CLIP: u32 = 2;
pub const HARD_SIGMOID: u32 = 11;
pub const LEAKY_RELU: u32 = 14;

/// An element-wise function with its two parameters (Clip bounds, HardSigmoid alpha/beta).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Act {
    pub code: u32,
    pub a: f32,
    pub b: f32,
}

impl Act {
    pub fn new(code: u32, a: f32, b: f32) -> Act {
        Act { code, a, b }
    }

    pub fn clip(lo: f32, hi: f32) -> Act {
        Act::new(CLIP, lo, hi)
    }

    pub fn named(op: &str) -> Option<Act> {
        let code = match op {
            "Relu" => RELU,
            "Sigmoid" => 3,
            "Erf" => 4,
            "Sqrt" => 5,
            "Exp" => 6,
            "Abs" => 7,
            "Neg" => 8,
            "Reciprocal" => 9,
            "Tanh" => 10,
            "HardSwish" => 12,
            "Log" => 13,
            "Floor" => 15,
            "Ceil" => 16,
            _ => return None,
        };
        Some(Act::new(code, 0.0, 0.0))
    }

    pub fn name(&self) -> &'static str {
        match self.code {
            0 => "identity",
            1 => "relu",
            2 => "clip",
            3 => "sigmoid",
            4 => "erf",
            5 => "sqrt",
            6 => "exp",
            7 => "abs",
            8 => "neg",
            9 => "reciprocal",
            10 => "tanh",
            11 => "hardsigmoid",
            12 => "hardswish",
            13 => "log",
            14 => "leakyrelu",
            15 => "floor",
            _ => "ceil",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Kernel {
    pub label: String,
    pub shader: Shader,
    pub consts: Vec<(&'static str, ConstV)>,
    /// Binding 0 is the output; the rest are read-only inputs.
    pub bindings: Vec<Binding>,
    pub dispatch: [u32; 3],
    /// Multiply-accumulates (for throughput reports).
    pub macs: u64,
    /// Bytes the op must at least read and write (for bandwidth reports).
    pub bytes: u64,
}

impl Kernel {
    fn new(label: &str, shader: Shader, bindings: Vec<Binding>) -> Kernel {
        Kernel { label: label.to_string(), shader, consts: vec![], bindings, dispatch: [1, 1, 1], macs: 0, bytes: 0 }
    }

    fn c(mut self, name: &'static str, v: usize) -> Self {
        self.consts.push((name, ConstV::U(v as u32)));
        self
    }

    fn ci(mut self, name: &'static str, v: i64) -> Self {
        self.consts.push((name, ConstV::I(v as i32)));
        self
    }

    fn cf(mut self, name: &'static str, v: f32) -> Self {
        self.consts.push((name, ConstV::F(v)));
        self
    }

    /// A 1-D index space of `total` invocations in workgroups of `wg`, split over x and y
    /// when it exceeds the 65535-workgroup limit of one dimension.
    fn linear(mut self, total: usize, wg: usize) -> Self {
        let groups = total.div_ceil(wg).max(1);
        let x = groups.min(65535);
        let y = groups.div_ceil(x);
        self.dispatch = [x as u32, y as u32, 1];
        self.c("TOTAL", total).c("NWX", x)
    }

    fn cost(mut self, macs: usize, bytes: usize) -> Self {
        self.macs = macs as u64;
        self.bytes = bytes as u64;
        self
    }

    pub fn get(&self, name: &str) -> Option<ConstV> {
        self.consts.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn replace(&mut self, name: &'static str, v: ConstV) {
        match self.consts.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = v,
            None => self.consts.push((name, v)),
        }
    }

    pub fn act(&self) -> Act {
        let f = |n: &str| match self.get(n) {
            Some(ConstV::F(v)) => v,
            _ => 0.0,
        };
        let code = match self.get("ACT") {
            Some(ConstV::U(c)) => c,
            _ => IDENTITY,
        };
        Act { code, a: f("ACT_A"), b: f("ACT_B") }
    }

    pub fn set_act(&mut self, act: Act) {
        self.replace("ACT", ConstV::U(act.code));
        self.replace("ACT_A", ConstV::F(act.a));
        self.replace("ACT_B", ConstV::F(act.b));
    }

    /// Whether an activation can be folded into this kernel's output.
    pub fn fusable_act(&self) -> bool {
        self.shader != Shader::Unary && self.shader != Shader::StridedCopy && self.shader != Shader::Resize && self.act().code == IDENTITY
    }

    /// The complete WGSL: baked constants, the shared functions, the op's shader.
    pub fn source(&self) -> String {
        let mut s = String::new();
        let mut names: Vec<&str> = vec![];
        for (name, v) in &self.consts {
            names.push(name);
            s.push_str(&format!("const {name}: {};\n", literal(*v)));
        }
        for (name, def) in [("ACT", "u32 = 0u"), ("ACT_A", "f32 = 0.0"), ("ACT_B", "f32 = 0.0"), ("NWX", "u32 = 1u")] {
            if !names.contains(&name) {
                s.push_str(&format!("const {name}: {def};\n"));
            }
        }
        s.push_str(COMMON);
        s.push_str(self.shader.file());
        s
    }
}

fn literal(v: ConstV) -> String {
    match v {
        ConstV::U(u) => format!("u32 = {u}u"),
        ConstV::I(i) => format!("i32 = {i}i"),
        ConstV::F(f) => {
            let f = f.clamp(-3.402_823e38, 3.402_823e38);
            format!("f32 = {f:e}")
        }
    }
}

/// Shape and window of a convolution-like op (also pooling: `oc` = `c`, `g` = 1).
#[derive(Debug, Clone, Copy)]
pub struct ConvGeometry {
    pub n: usize,
    pub c: usize,
    pub ih: usize,
    pub iw: usize,
    pub oc: usize,
    pub oh: usize,
    pub ow: usize,
    pub g: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: usize,
    pub pl: usize,
}

impl ConvGeometry {
    fn consts(&self, k: Kernel) -> Kernel {
        k.c("N", self.n)
            .c("IC", self.c)
            .c("IH", self.ih)
            .c("IW", self.iw)
            .c("OC", self.oc)
            .c("OH", self.oh)
            .c("OW", self.ow)
            .c("G", self.g)
            .c("ICG", self.c / self.g)
            .c("OCG", self.oc / self.g)
            .c("KH", self.kh)
            .c("KW", self.kw)
            .c("SH", self.sh)
            .c("SW", self.sw)
            .c("DH", self.dh)
            .c("DW", self.dw)
            .c("PT", self.pt)
            .c("PL", self.pl)
    }

    fn outputs(&self) -> usize {
        self.n * self.oc * self.oh * self.ow
    }

    fn conv_macs(&self) -> usize {
        self.outputs() * (self.c / self.g) * self.kh * self.kw
    }

    fn conv_bytes(&self) -> usize {
        4 * (self.n * self.c * self.ih * self.iw + self.outputs() + self.oc * (self.c / self.g) * self.kh * self.kw)
    }
}

fn v(x: usize) -> Binding {
    Binding::Value(x)
}

pub fn conv_naive(y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry) -> Kernel {
    let k = Kernel::new("conv_naive", Shader::ConvNaive, vec![v(y), v(x), w, b]);
    g.consts(k).linear(g.outputs(), 64).cost(g.conv_macs(), g.conv_bytes())
}

pub fn conv_dense(y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry) -> Kernel {
    let k = Kernel::new(&format!("conv{}x{}", g.kh, g.kw), Shader::ConvDense, vec![v(y), v(x), w, b]);
    let ocg = g.oc / g.g;
    let work = g.n * g.g * ocg.div_ceil(4) * g.oh * g.ow.div_ceil(4);
    let mut k = g.consts(k).linear(work, 64).cost(g.conv_macs(), g.conv_bytes());
    k.replace("TOTAL", ConstV::U(work as u32));
    k
}

/// Whether `conv1x1_gemm` applies: pointwise, stride 1, unpadded, ungrouped.
pub fn is_pointwise(g: &ConvGeometry) -> bool {
    g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.g == 1 && g.pt == 0 && g.pl == 0 && g.oh == g.ih && g.ow == g.iw
}

pub fn conv1x1_gemm(y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry) -> Kernel {
    let mut k = g.consts(Kernel::new("conv1x1", Shader::Conv1x1Gemm, vec![v(y), v(x), w, b])).cost(g.conv_macs(), g.conv_bytes());
    k.dispatch = [(g.ih * g.iw).div_ceil(64) as u32, g.oc.div_ceil(64) as u32, g.n as u32];
    k
}

/// Output tile (width, height, outputs per invocation along x) of the tiled depthwise shader:
/// the candidate that loads the fewest input values (tile + halo) in all, and fits
/// `workgroup_bytes` of workgroup memory.
pub fn depthwise_tile(g: &ConvGeometry, workgroup_bytes: usize) -> (usize, usize, usize) {
    let mut best: Option<((usize, usize, usize), f64)> = None;
    for &(tw, th, pxt) in &[
        (64, 8, 4),
        (64, 4, 4),
        (32, 16, 2),
        (32, 8, 4),
        (32, 8, 2),
        (32, 4, 4),
        (16, 16, 2),
        (16, 8, 2),
        (16, 4, 2),
        (8, 16, 1),
        (8, 8, 1),
        (8, 4, 1),
        (4, 8, 1),
        (4, 4, 1),
        (2, 4, 1),
        (1, 4, 1),
        (1, 1, 1),
    ] {
        let inw = (tw - 1) * g.sw + (g.kw - 1) * g.dw + 1;
        let inh = (th - 1) * g.sh + (g.kh - 1) * g.dh + 1;
        if inw * inh * 4 > workgroup_bytes {
            continue;
        }
        let tiles = g.ow.div_ceil(tw) * g.oh.div_ceil(th);
        // Loads from global memory, plus the products computed for outputs outside the image.
        let cost = (tiles * inw * inh) as f64 + (tiles * tw * th * g.kh * g.kw) as f64 / 8.0;
        if best.is_none_or(|(_, c)| cost < c) {
            best = Some(((tw, th, pxt), cost));
        }
    }
    best.map(|b| b.0).unwrap_or((1, 1, 1))
}

pub fn depthwise_tiled(y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry, workgroup_bytes: usize) -> Kernel {
    let (tw, th, pxt) = depthwise_tile(g, workgroup_bytes);
    let planes = g.n * g.c;
    let tiles = g.ow.div_ceil(tw) * g.oh.div_ceil(th);
    let label = format!("dw{}x{}{}", g.kh, g.kw, if g.dh > 1 || g.dw > 1 { format!("d{}", g.dh.max(g.dw)) } else { String::new() });
    let mut k = g
        .consts(Kernel::new(&label, Shader::DepthwiseTiled, vec![v(y), v(x), w, b]))
        .c("C", g.c)
        .c("PLANES", planes)
        .c("TW", tw)
        .c("TH", th)
        .c("PXT", pxt)
        .cost(g.conv_macs(), g.conv_bytes());
    k.dispatch = [tiles as u32, planes.min(65535) as u32, planes.div_ceil(65535) as u32];
    k
}

pub fn conv_transpose(y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry) -> Kernel {
    let k = Kernel::new(&format!("deconv{}x{}", g.kh, g.kw), Shader::ConvTranspose, vec![v(y), v(x), w, b]);
    let macs = g.n * g.c * g.ih * g.iw * (g.oc / g.g) * g.kh * g.kw;
    g.consts(k).linear(g.outputs(), 64).cost(macs, g.conv_bytes())
}

pub fn pool(y: usize, x: usize, g: &ConvGeometry, max: bool, count_pad: bool, pb: usize, pr: usize) -> Kernel {
    let k = Kernel::new(if max { "maxpool" } else { "avgpool" }, Shader::Pool, vec![v(y), v(x)]);
    let mut k = g.consts(k).c("MODE", max as usize).c("COUNT_PAD", count_pad as usize).c("PB", pb).c("PR", pr);
    k = k.linear(g.outputs(), 64);
    k.cost(g.outputs() * g.kh * g.kw, 4 * (g.n * g.c * g.ih * g.iw + g.outputs()))
}

pub fn unary(y: usize, shape: &[usize], x: usize, act: Act) -> Kernel {
    let n: usize = shape.iter().product();
    let mut k = Kernel::new(act.name(), Shader::Unary, vec![v(y), v(x)]).linear(n, 256).cost(0, 8 * n);
    k.set_act(act);
    k
}

pub fn binary(y: usize, out: &[usize], a: Binding, sa: &[usize], b: Binding, sb: &[usize], code: u32) -> Result<Kernel> {
    let n: usize = out.iter().product();
    let d = pad_to_6(out, 1)?;
    let sa = pad_to_6(sa, 0)?;
    let sb = pad_to_6(sb, 0)?;
    let name = ["add", "sub", "mul", "div", "min", "max", "pow"][code as usize];
    let mut k = Kernel::new(name, Shader::Binary, vec![v(y), a, b]).c("OP", code as usize);
    for (i, name) in ["D0", "D1", "D2", "D3", "D4", "D5"].iter().enumerate() {
        k = k.c(name, d[i]);
    }
    for (i, name) in ["SA0", "SA1", "SA2", "SA3", "SA4", "SA5"].iter().enumerate() {
        k = k.c(name, sa[i]);
    }
    for (i, name) in ["SB0", "SB1", "SB2", "SB3", "SB4", "SB5"].iter().enumerate() {
        k = k.c(name, sb[i]);
    }
    Ok(k.linear(n, 256).cost(0, 12 * n))
}

/// Copies the view (`shape`, `src_base`, `src` strides) of `x` to (`dst_base`, `dst` strides) in `y`.
#[allow(clippy::too_many_arguments)]
pub fn strided_copy(label: &str, y: usize, x: Binding, shape: &[usize], src_base: i64, src: &[i64], dst_base: i64, dst: &[i64]) -> Result<Kernel> {
    if shape.len() > 6 {
        bail!("tensors of rank {} (more than 6) are not supported on the GPU", shape.len());
    }
    let n: usize = shape.iter().product();
    let d = pad_to_6(shape, 1)?;
    let pad = |s: &[i64]| {
        let mut o = [0i64; 6];
        o[6 - s.len()..].copy_from_slice(s);
        o
    };
    let (sx, sy) = (pad(src), pad(dst));
    let mut k = Kernel::new(label, Shader::StridedCopy, vec![v(y), x]).ci("XBASE", src_base).ci("YBASE", dst_base);
    for i in 0..6 {
        k = k.c(["D0", "D1", "D2", "D3", "D4", "D5"][i], d[i]);
        k = k.ci(["SX0", "SX1", "SX2", "SX3", "SX4", "SX5"][i], sx[i]);
        k = k.ci(["SY0", "SY1", "SY2", "SY3", "SY4", "SY5"][i], sy[i]);
    }
    Ok(k.linear(n, 256).cost(0, 8 * n))
}

#[allow(clippy::too_many_arguments)]
pub fn resize(y: usize, x: usize, dims: [usize; 4], out: [usize; 2], scales: [f32; 2], mode: u32, coord: u32, nearest: u32) -> Kernel {
    let [outer, ih, iw, inner] = dims;
    let n = outer * out[0] * out[1] * inner;
    Kernel::new(if mode == 0 { "resize_nearest" } else { "resize_linear" }, Shader::Resize, vec![v(y), v(x)])
        .c("OUTER", outer)
        .c("INNER", inner)
        .c("IH", ih)
        .c("IW", iw)
        .c("OH", out[0])
        .c("OW", out[1])
        .cf("SCALE_H", scales[0])
        .cf("SCALE_W", scales[1])
        .c("MODE", mode as usize)
        .c("COORD", coord as usize)
        .c("NEAREST", nearest as usize)
        .linear(n, 256)
        .cost(0, 4 * (outer * ih * iw * inner + n))
}

/// Reduction: `kept` and `red` are the input shape with the reduced (resp. kept) axes set to 1.
pub fn reduce(y: usize, x: usize, kept: &[usize], red: &[usize], strides: &[usize], code: u32) -> Result<Kernel> {
    let kd = pad_to_6(kept, 1)?;
    let rd = pad_to_6(red, 1)?;
    let st = pad_to_6(strides, 0)?;
    let n: usize = kd.iter().product();
    let r: usize = rd.iter().product();
    let name = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_sumsq"][code as usize];
    let mut k = Kernel::new(name, Shader::Reduce, vec![v(y), v(x)]).c("OP", code as usize).c("RTOTAL", r);
    for i in 0..6 {
        k = k.c(["KD0", "KD1", "KD2", "KD3", "KD4", "KD5"][i], kd[i]);
        k = k.c(["RD0", "RD1", "RD2", "RD3", "RD4", "RD5"][i], rd[i]);
        // A stride is used through the kept index or the reduced index, whichever is non-trivial.
        k = k.c(["KS0", "KS1", "KS2", "KS3", "KS4", "KS5"][i], if kd[i] > 1 { st[i] } else { 0 });
        k = k.c(["RS0", "RS1", "RS2", "RS3", "RS4", "RS5"][i], if rd[i] > 1 { st[i] } else { 0 });
    }
    Ok(k.linear(n, 64).cost(n * r, 4 * (n * r + n)))
}

#[allow(clippy::too_many_arguments)]
pub fn matmul(y: usize, out: &[usize], a: Binding, b: Binding, m: usize, k_: usize, n: usize, bd: [usize; 3], sa: [usize; 3], sb: [usize; 3]) -> Kernel {
    let total: usize = out.iter().product();
    let batch: usize = bd.iter().product();
    Kernel::new("matmul", Shader::Matmul, vec![v(y), a, b])
        .c("M", m)
        .c("K", k_)
        .c("N", n)
        .c("BD1", bd[1])
        .c("BD2", bd[2])
        .c("AS0", sa[0])
        .c("AS1", sa[1])
        .c("AS2", sa[2])
        .c("BS0", sb[0])
        .c("BS1", sb[1])
        .c("BS2", sb[2])
        .linear(total, 64)
        .cost(total * k_, 4 * (batch * (m * k_ + k_ * n) + total))
}
