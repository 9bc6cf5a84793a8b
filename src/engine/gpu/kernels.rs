//! One GPU kernel per op instance: which WGSL file (`shaders/`), the constants baked into it
//! (shapes, strides, parameters), its buffer bindings, its dispatch size, its epilogue (what
//! runs on each value before it is stored: `epilogue::Program`) and where it stores (an output
//! layout, so a producer can write straight into a concatenation's buffer).

use super::attrs::pad_to_6;
pub use super::binding::Binding;
use super::epilogue::{EOp, ExtraInput, Program};
pub use super::epilogue::{Act, CLIP, HARD_SIGMOID, IDENTITY, LEAKY_RELU, RELU, SIGMOID};
use anyhow::{bail, Result};

const COMMON: &str = include_str!("../../../shaders/common.wgsl");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shader {
    ConvNaive,
    ConvDense,
    Conv1x1Gemm,
    /// `Conv1x1Gemm` with vec4 loads and stores (planes of a multiple of 4 pixels).
    Conv1x1Vec4,
    /// Dense and grouped convolutions as an implicit matrix product (patches gathered into
    /// workgroup memory).
    ConvIgemm,
    DepthwiseTiled,
    /// A depthwise convolution and the pointwise one reading it, in one pass.
    DwPw,
    /// Squeeze-and-excitation: plane means and two small fully connected layers, in one pass.
    Squeeze,
    /// A reduction of whole contiguous planes, one workgroup (tree reduction) per plane.
    PlaneReduce,
    ConvTranspose,
    /// A fused element-wise program over up to 6 broadcast axes.
    Ewise,
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
            Shader::Conv1x1Vec4 => include_str!("../../../shaders/conv1x1_vec4.wgsl"),
            Shader::ConvIgemm => include_str!("../../../shaders/conv_igemm.wgsl"),
            Shader::DepthwiseTiled => include_str!("../../../shaders/depthwise_tiled.wgsl"),
            Shader::DwPw => include_str!("../../../shaders/dw_pw.wgsl"),
            Shader::Squeeze => include_str!("../../../shaders/squeeze.wgsl"),
            Shader::PlaneReduce => include_str!("../../../shaders/plane_reduce.wgsl"),
            Shader::ConvTranspose => include_str!("../../../shaders/conv_transpose.wgsl"),
            Shader::Ewise => include_str!("../../../shaders/ewise.wgsl"),
            Shader::StridedCopy => include_str!("../../../shaders/strided_copy.wgsl"),
            Shader::Resize => include_str!("../../../shaders/resize.wgsl"),
            Shader::Pool => include_str!("../../../shaders/pool.wgsl"),
            Shader::Reduce => include_str!("../../../shaders/reduce.wgsl"),
            Shader::Matmul => include_str!("../../../shaders/matmul.wgsl"),
        }
    }

    /// Coordinates the shader passes to `epilogue` and `out_index`: 4 (n, c, y, x) for the
    /// NCHW convolutions and pools, 6 for element-wise kernels, 0 where the epilogue may only
    /// apply functions of the value (no extra inputs) and the output is stored contiguously.
    pub fn coords(self) -> usize {
        match self {
            Shader::ConvNaive
            | Shader::ConvDense
            | Shader::Conv1x1Gemm
            | Shader::Conv1x1Vec4
            | Shader::ConvIgemm
            | Shader::DepthwiseTiled
            | Shader::DwPw
            | Shader::Squeeze
            | Shader::ConvTranspose
            | Shader::Pool => 4,
            Shader::Ewise | Shader::Reduce | Shader::PlaneReduce => 6,
            Shader::StridedCopy | Shader::Resize | Shader::Matmul => 0,
        }
    }

    /// Coordinates the shader passes to `pre`: the linear input index for reductions.
    pub fn pre_coords(self) -> usize {
        match self {
            Shader::Reduce | Shader::PlaneReduce => 1,
            _ => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Shader::ConvNaive => "conv_naive",
            Shader::ConvDense => "conv_dense",
            Shader::Conv1x1Gemm => "conv1x1_gemm",
            Shader::Conv1x1Vec4 => "conv1x1_vec4",
            Shader::ConvIgemm => "conv_igemm",
            Shader::DepthwiseTiled => "depthwise_tiled",
            Shader::DwPw => "dw_pw",
            Shader::Squeeze => "squeeze",
            Shader::PlaneReduce => "plane_reduce",
            Shader::ConvTranspose => "conv_transpose",
            Shader::Ewise => "ewise",
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

#[derive(Debug, Clone)]
pub struct Kernel {
    pub label: String,
    pub shader: Shader,
    pub consts: Vec<(&'static str, ConstV)>,
    /// The shader's own bindings: 0 is the output, the rest read-only inputs. The epilogue's
    /// inputs follow them (`all_bindings`).
    pub bindings: Vec<Binding>,
    pub dispatch: [u32; 3],
    /// Multiply-accumulates (for throughput reports).
    pub macs: u64,
    /// Bytes the op must at least read and write (for bandwidth reports).
    pub bytes: u64,
    /// What runs on each value before it is stored.
    pub epilogue: Program,
    /// What runs on each value the kernel reads before using it (`Shader::pre_coords`): the
    /// depthwise activation inside `DwPw` and `Squeeze`'s hidden layer (pure programs), an
    /// element-wise program a reduction reads through (over the linear input index).
    pub pre: Option<Program>,
    /// The extents of the output coordinates the shader passes (`Shader::coords` of them).
    pub space: Vec<usize>,
    /// Where output coordinates are stored: base + sum of coordinate x stride (contiguous over
    /// `space` unless the output is a part of a larger tensor).
    pub out_base: i64,
    pub out_strides: Vec<i64>,
}

impl Kernel {
    fn new(label: &str, shader: Shader, bindings: Vec<Binding>) -> Kernel {
        Kernel {
            label: label.to_string(),
            shader,
            consts: vec![],
            bindings,
            dispatch: [1, 1, 1],
            macs: 0,
            bytes: 0,
            epilogue: Program::identity(),
            pre: None,
            space: vec![],
            out_base: 0,
            out_strides: vec![],
        }
    }

    /// Sets the output coordinate space (contiguous storage).
    fn space(mut self, dims: &[usize]) -> Self {
        self.space = dims.to_vec();
        self.out_strides = contiguous(dims);
        self
    }

    /// Every binding: the shader's, then the epilogue's inputs, then the prologue's.
    pub fn all_bindings(&self) -> Vec<Binding> {
        let mut all = self.bindings.clone();
        all.extend(self.epilogue.inputs.iter().map(|e| e.binding));
        if let Some(pre) = &self.pre {
            all.extend(pre.inputs.iter().map(|e| e.binding));
        }
        all
    }

    /// The value it writes.
    pub fn output(&self) -> Option<usize> {
        match self.bindings.first() {
            Some(Binding::Value(v)) => Some(*v),
            _ => None,
        }
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

    pub fn get_u(&self, name: &str) -> usize {
        match self.get(name) {
            Some(ConstV::U(v)) => v as usize,
            _ => 0,
        }
    }

    pub fn replace(&mut self, name: &'static str, v: ConstV) {
        match self.consts.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = v,
            None => self.consts.push((name, v)),
        }
    }

    /// Whether an element-wise program can run on this kernel's values before they are stored
    /// (with extra inputs only where the shader passes coordinates).
    pub fn takes_epilogue(&self, with_inputs: bool) -> bool {
        self.shader != Shader::StridedCopy && (!with_inputs || self.shader.coords() > 0)
    }

    /// Whether its output may be stored elsewhere than contiguously (into a concatenation).
    pub fn relocatable(&self) -> bool {
        self.shader.coords() > 0
    }

    /// The label with the epilogue's ops.
    pub fn describe(&self) -> String {
        let e = self.epilogue.describe();
        if e.is_empty() || self.shader == Shader::Ewise {
            self.label.clone()
        } else {
            format!("{}+{e}", self.label)
        }
    }

    /// Whether a `Conv1x1Vec4` kernel can store 4 adjacent pixels as one vec4: they stay
    /// adjacent and 16-byte aligned where they go (its own buffer, or a channel slice of a
    /// concatenation; not e.g. a concatenation along the width).
    fn stores_vec4(&self) -> bool {
        let (ih, iw) = (self.get_u("IH"), self.get_u("IW"));
        let s = &self.out_strides;
        s.len() == 4
            && (ih * iw) % 4 == 0
            && s[3] == 1
            && (ih == 1 || s[2] == iw as i64)
            && self.out_base % 4 == 0
            && s[0] % 4 == 0
            && s[1] % 4 == 0
    }

    /// The complete WGSL: baked constants, the shared functions, the output index and the
    /// epilogue, the op's shader.
    pub fn source(&self) -> String {
        let mut s = String::new();
        let mut names: Vec<&str> = vec![];
        for (name, v) in &self.consts {
            names.push(name);
            s.push_str(&format!("const {name}: {};\n", literal(*v)));
        }
        if !names.contains(&"NWX") {
            s.push_str("const NWX: u32 = 1u;\n");
        }
        if self.shader == Shader::Conv1x1Vec4 {
            s.push_str(&format!("const OUTV: bool = {};\n", self.stores_vec4()));
        }
        s.push_str(COMMON);
        let coords = self.shader.coords();
        if coords > 0 {
            let params: Vec<String> = (0..coords).map(|c| format!("c{c}: u32")).collect();
            let mut idx = format!("{}i", self.out_base);
            for (c, st) in self.out_strides.iter().enumerate().take(coords) {
                if *st != 0 {
                    idx.push_str(&format!(" + i32(c{c}) * {st}i"));
                }
            }
            s.push_str(&format!("fn out_index({}) -> u32 {{\n    return u32({idx});\n}}\n", params.join(", ")));
        }
        s.push_str(&self.epilogue.wgsl("epilogue", coords, self.bindings.len()));
        if let Some(pre) = &self.pre {
            s.push_str(&pre.wgsl("pre", self.shader.pre_coords(), self.bindings.len() + self.epilogue.inputs.len()));
        }
        if matches!(self.shader, Shader::Reduce | Shader::PlaneReduce) {
            let body = if self.pre.is_some() { "pre(x[i], i)" } else { "x[i]" };
            s.push_str(&format!("fn read(i: u32) -> f32 {{\n    return {body};\n}}\n"));
        }
        s.push_str(self.shader.file());
        s
    }
}

/// Contiguous (row-major) strides of `dims`.
pub fn contiguous(dims: &[usize]) -> Vec<i64> {
    let mut st = vec![0i64; dims.len()];
    let mut acc = 1i64;
    for i in (0..dims.len()).rev() {
        st[i] = acc;
        acc *= dims[i] as i64;
    }
    st
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

    /// The output's NCHW extents.
    pub fn out_space(&self) -> [usize; 4] {
        [self.n, self.oc, self.oh, self.ow]
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

/// The geometry a convolution kernel was built with (from its constants).
fn geometry_of(k: &Kernel) -> ConvGeometry {
    let u = |n: &str| k.get_u(n);
    ConvGeometry {
        n: u("N"),
        c: u("IC"),
        ih: u("IH"),
        iw: u("IW"),
        oc: u("OC"),
        oh: u("OH"),
        ow: u("OW"),
        g: u("G"),
        kh: u("KH"),
        kw: u("KW"),
        sh: u("SH"),
        sw: u("SW"),
        dh: u("DH"),
        dw: u("DW"),
        pt: u("PT"),
        pl: u("PL"),
    }
}

/// Convolution kernel `k` (same bindings, epilogue and output layout) on shader `shader`;
/// None when that shader does not take its shape.
pub fn with_shader(k: &Kernel, shader: Shader) -> Option<Kernel> {
    if !matches!(k.shader, Shader::ConvNaive | Shader::ConvDense | Shader::Conv1x1Gemm | Shader::Conv1x1Vec4 | Shader::ConvIgemm | Shader::DepthwiseTiled) || k.bindings.len() != 4 {
        return None;
    }
    let g = geometry_of(k);
    let (Binding::Value(y), Binding::Value(x)) = (k.bindings[0], k.bindings[1]) else { return None };
    let mut n = conv_on(shader, y, x, k.bindings[2], k.bindings[3], &g)?;
    let suffix = if shader == Shader::ConvNaive { "naive" } else { shader.name() };
    n.label = format!("{} ({suffix})", k.label);
    n.epilogue = k.epilogue.clone();
    n.out_base = k.out_base;
    n.out_strides = k.out_strides.clone();
    Some(n)
}

/// The other shaders that can do what kernel `k` does (same bindings, epilogue and output
/// layout), in a fixed order: the alternatives the engine times against it on a real GPU. A
/// depthwise convolution: the naive shader; a dense one: every shader of `conv_shaders`.
pub fn variants(k: &Kernel) -> Vec<Kernel> {
    let shaders = match k.shader {
        Shader::DepthwiseTiled => vec![Shader::ConvNaive],
        Shader::ConvDense | Shader::Conv1x1Gemm | Shader::Conv1x1Vec4 | Shader::ConvIgemm => {
            let g = geometry_of(k);
            if g.g == g.c && g.oc == g.c && g.g > 1 {
                vec![]
            } else {
                conv_shaders(&g)
            }
        }
        _ => vec![],
    };
    shaders.into_iter().filter(|&s| s != k.shader).filter_map(|s| with_shader(k, s)).collect()
}

/// The shaders that run dense (not depthwise) convolution `g`, the planner's default first:
/// the tiled pointwise product (its vec4 form where the plane is a multiple of 4 pixels, else
/// the scalar one) or the implicit matrix product for other kernels, then the direct
/// `conv_dense`, which takes every shape (and is the fallback where the tiled ones do not fit
/// the dispatch limits).
pub fn conv_shaders(g: &ConvGeometry) -> Vec<Shader> {
    let candidates: &[Shader] = if is_pointwise(g) {
        &[Shader::Conv1x1Vec4, Shader::Conv1x1Gemm, Shader::ConvDense]
    } else {
        &[Shader::ConvIgemm, Shader::ConvDense]
    };
    candidates.iter().copied().filter(|&s| takes(s, g)).collect()
}

/// Whether `shader` runs convolution `g` (shape and dispatch limits).
fn takes(shader: Shader, g: &ConvGeometry) -> bool {
    const MAX_GROUPS: usize = 65535;
    let plane = g.ih * g.iw;
    match shader {
        Shader::ConvNaive | Shader::ConvDense => true,
        Shader::Conv1x1Gemm | Shader::Conv1x1Vec4 => {
            let (tm, tn) = gemm_tile(g.oc, plane);
            is_pointwise(g)
                && (shader == Shader::Conv1x1Gemm || plane % 4 == 0)
                && g.n <= MAX_GROUPS
                && g.oc.div_ceil(tm) <= MAX_GROUPS
                && plane.div_ceil(tn) <= MAX_GROUPS
        }
        Shader::ConvIgemm => {
            let ocg = g.oc / g.g.max(1);
            let (tm, tn) = gemm_tile(ocg, g.oh * g.ow);
            g.g >= 1 && g.n * g.g <= MAX_GROUPS && ocg.div_ceil(tm) <= MAX_GROUPS && (g.oh * g.ow).div_ceil(tn) <= MAX_GROUPS
        }
        _ => false,
    }
}

/// Kernel of convolution `g` on `shader` (a convolution shader that takes its shape).
pub fn conv_on(shader: Shader, y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry) -> Option<Kernel> {
    if !takes(shader, g) {
        return None;
    }
    Some(match shader {
        Shader::ConvNaive => conv_naive(y, x, w, b, g),
        Shader::ConvDense => conv_dense(y, x, w, b, g),
        Shader::Conv1x1Gemm | Shader::Conv1x1Vec4 => conv1x1(y, x, w, b, g, shader),
        Shader::ConvIgemm => conv_igemm(y, x, w, b, g),
        _ => return None,
    })
}

/// A dense (not depthwise) convolution: on `prefer` where that shader takes it, else on the
/// first of `conv_shaders`.
pub fn dense_conv(y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry, prefer: Option<Shader>) -> Kernel {
    prefer
        .into_iter()
        .chain(conv_shaders(g))
        .find_map(|s| conv_on(s, y, x, w, b, g))
        .unwrap_or_else(|| conv_dense(y, x, w, b, g))
}

/// Tile (rows, columns) of the tiled matrix-product shaders (`conv1x1_gemm`, `conv1x1_vec4`,
/// `conv_igemm`) for a product with `rows` output channels (per group) and `cols` output
/// pixels (per image). Rows: 16, 32 or 64, the smallest that holds the channels (fewer
/// multiplications by the zero rows past the end). Columns: 64, halved (down to 16) while a
/// tile would be more than half outside the plane or the product would have fewer than 32
/// tiles (small planes deep in a network: more, smaller workgroups). Each invocation computes
/// 4 x 4 outputs, so workgroups have 16 to 256 invocations.
pub fn gemm_tile(rows: usize, cols: usize) -> (usize, usize) {
    let tm = match rows {
        0..=16 => 16,
        17..=32 => 32,
        _ => 64,
    };
    let mut tn = 64;
    while tn > 16 && (cols <= tn / 2 || rows.div_ceil(tm) * cols.div_ceil(tn) < 32) {
        tn /= 2;
    }
    (tm, tn)
}

pub fn conv_naive(y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry) -> Kernel {
    let k = Kernel::new("conv_naive", Shader::ConvNaive, vec![v(y), v(x), w, b]);
    g.consts(k).linear(g.outputs(), 64).cost(g.conv_macs(), g.conv_bytes()).space(&g.out_space())
}

pub fn conv_dense(y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry) -> Kernel {
    let k = Kernel::new(&format!("conv{}x{}", g.kh, g.kw), Shader::ConvDense, vec![v(y), v(x), w, b]);
    let ocg = g.oc / g.g;
    let work = g.n * g.g * ocg.div_ceil(4) * g.oh * g.ow.div_ceil(4);
    let mut k = g.consts(k).linear(work, 64).cost(g.conv_macs(), g.conv_bytes()).space(&g.out_space());
    k.replace("TOTAL", ConstV::U(work as u32));
    k
}

/// Whether the pointwise shaders apply: 1 x 1, stride 1, unpadded, ungrouped.
pub fn is_pointwise(g: &ConvGeometry) -> bool {
    g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.g == 1 && g.pt == 0 && g.pl == 0 && g.oh == g.ih && g.ow == g.iw
}

/// Whether kernel `k` is a pointwise convolution (whichever shader runs it).
pub fn is_pointwise_kernel(k: &Kernel) -> bool {
    matches!(k.shader, Shader::Conv1x1Gemm | Shader::Conv1x1Vec4 | Shader::ConvDense | Shader::ConvIgemm | Shader::ConvNaive)
        && k.bindings.len() == 4
        && is_pointwise(&geometry_of(k))
}

fn conv1x1(y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry, shader: Shader) -> Kernel {
    let plane = g.ih * g.iw;
    let (tm, tn) = gemm_tile(g.oc, plane);
    let label = if shader == Shader::Conv1x1Vec4 { "conv1x1v4" } else { "conv1x1" };
    let mut k = g.consts(Kernel::new(label, shader, vec![v(y), v(x), w, b])).c("TM", tm).c("TN", tn);
    k = k.cost(g.conv_macs(), g.conv_bytes()).space(&g.out_space());
    k.dispatch = [plane.div_ceil(tn) as u32, g.oc.div_ceil(tm) as u32, g.n as u32];
    k
}

/// The pointwise convolution as the scalar tiled product (`conv1x1_gemm`).
pub fn conv1x1_gemm(y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry) -> Kernel {
    conv1x1(y, x, w, b, g, Shader::Conv1x1Gemm)
}

fn conv_igemm(y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry) -> Kernel {
    let ocg = g.oc / g.g;
    let q = g.oh * g.ow;
    let (tm, tn) = gemm_tile(ocg, q);
    let label = format!("conv{}x{}{}", g.kh, g.kw, if g.g > 1 { format!("g{}", g.g) } else { String::new() });
    let mut k = g.consts(Kernel::new(&label, Shader::ConvIgemm, vec![v(y), v(x), w, b])).c("TM", tm).c("TN", tn);
    k = k.cost(g.conv_macs(), g.conv_bytes()).space(&g.out_space());
    k.dispatch = [q.div_ceil(tn) as u32, ocg.div_ceil(tm) as u32, (g.n * g.g) as u32];
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
        .cost(g.conv_macs(), g.conv_bytes())
        .space(&g.out_space());
    k.dispatch = [tiles as u32, planes.min(65535) as u32, planes.div_ceil(65535) as u32];
    k
}

/// A depthwise convolution `dw` and the pointwise one `pw` reading it, as one `DwPw` kernel
/// (None when even a one-channel slice of its input tile would not fit `workgroup_bytes`).
pub fn dw_pw(dw: &Kernel, pw: &Kernel, workgroup_bytes: usize) -> Option<Kernel> {
    const TPX: usize = 16;
    const TPY: usize = 4;
    const TM: usize = 64;
    let u = |k: &Kernel, n: &str| k.get_u(n);
    let (kh, kw, sh, sw, dh, dwl) = (u(dw, "KH"), u(dw, "KW"), u(dw, "SH"), u(dw, "SW"), u(dw, "DH"), u(dw, "DW"));
    let inw = (TPX - 1) * sw + (kw - 1) * dwl + 1;
    let inh = (TPY - 1) * sh + (kh - 1) * dh + 1;
    let tk = [16usize, 8, 4, 2, 1].into_iter().find(|&tk| (tk * inw * inh + tk * TPX * TPY + tk * TM) * 4 <= workgroup_bytes)?;
    let (n, c, ph, pw_w, oc) = (u(dw, "N"), u(dw, "IC"), u(dw, "OH"), u(dw, "OW"), u(pw, "OC"));
    if u(pw, "IC") != c || u(pw, "IH") != ph || u(pw, "IW") != pw_w {
        return None;
    }
    let bindings = vec![pw.bindings[0], dw.bindings[1], dw.bindings[2], dw.bindings[3], pw.bindings[2], pw.bindings[3]];
    let mut k = Kernel::new(&format!("{}+{}", dw.describe().split(" #").next().unwrap_or("dw"), pw.label.split(" #").next().unwrap_or("conv1x1")), Shader::DwPw, bindings);
    for name in ["N", "IC", "IH", "IW", "KH", "KW", "SH", "SW", "DH", "DW", "PT", "PL"] {
        k = k.c(name, u(dw, name));
    }
    k = k.c("PH", ph).c("PW", pw_w).c("OC", oc).c("TK", tk);
    let tiles = pw_w.div_ceil(TPX) * ph.div_ceil(TPY);
    k.dispatch = [tiles as u32, oc.div_ceil(TM) as u32, n as u32];
    k.macs = dw.macs + pw.macs;
    k.bytes = dw.bytes.saturating_sub(4 * (n * c * ph * pw_w) as u64) + pw.bytes.saturating_sub(4 * (n * c * ph * pw_w) as u64);
    k.space = pw.space.clone();
    k.out_base = pw.out_base;
    k.out_strides = pw.out_strides.clone();
    k.epilogue = pw.epilogue.clone();
    k.pre = Some(dw.epilogue.clone());
    Some(k)
}

/// The global average of `x` ([n, c, plane of hw]) and two 1 x 1 convolutions on the pooled
/// vector (`fc1`, with a pure epilogue, then `fc2`) as one `Squeeze` kernel; None when its
/// vectors would not fit `workgroup_bytes`.
pub fn squeeze(x: Binding, [n, c, hw]: [usize; 3], fc1: &Kernel, fc2: &Kernel, workgroup_bytes: usize) -> Option<Kernel> {
    let u = |k: &Kernel, n: &str| k.get_u(n);
    let (m, oc) = (u(fc1, "OC"), u(fc2, "OC"));
    if u(fc1, "IC") != c || u(fc2, "IC") != m || (256 + c + m) * 4 > workgroup_bytes || c == 0 || m == 0 {
        return None;
    }
    let bindings = vec![fc2.bindings[0], x, fc1.bindings[2], fc1.bindings[3], fc2.bindings[2], fc2.bindings[3]];
    let mut k = Kernel::new("squeeze", Shader::Squeeze, bindings).c("N", n).c("C", c).c("HW", hw).c("M", m).c("OC", oc);
    k.dispatch = [1, 1, n as u32];
    k.macs = (n * (c * hw + c * m + m * oc)) as u64;
    k.bytes = 4 * (n * (c * hw + oc) + c * m + m * oc) as u64;
    k.space = fc2.space.clone();
    k.out_base = fc2.out_base;
    k.out_strides = fc2.out_strides.clone();
    k.epilogue = fc2.epilogue.clone();
    k.pre = Some(fc1.epilogue.clone());
    Some(k)
}

pub fn conv_transpose(y: usize, x: usize, w: Binding, b: Binding, g: &ConvGeometry) -> Kernel {
    let k = Kernel::new(&format!("deconv{}x{}", g.kh, g.kw), Shader::ConvTranspose, vec![v(y), v(x), w, b]);
    let macs = g.n * g.c * g.ih * g.iw * (g.oc / g.g) * g.kh * g.kw;
    g.consts(k).linear(g.outputs(), 64).cost(macs, g.conv_bytes()).space(&g.out_space())
}

pub fn pool(y: usize, x: usize, g: &ConvGeometry, max: bool, count_pad: bool, pb: usize, pr: usize) -> Kernel {
    let k = Kernel::new(if max { "maxpool" } else { "avgpool" }, Shader::Pool, vec![v(y), v(x)]);
    let mut k = g.consts(k).c("MODE", max as usize).c("COUNT_PAD", count_pad as usize).c("PB", pb).c("PR", pr);
    k = k.linear(g.outputs(), 64).space(&g.out_space());
    k.cost(g.outputs() * g.kh * g.kw, 4 * (g.n * g.c * g.ih * g.iw + g.outputs()))
}

/// An element-wise kernel over `out` (up to 6 axes): `program` with its inputs' strides given
/// over `out` (use `ewise_input`).
pub fn ewise(y: usize, out: &[usize], program: Program) -> Result<Kernel> {
    let n: usize = out.iter().product();
    let space = pad_to_6(out, 1)?.to_vec();
    let mut k = Kernel::new("ewise", Shader::Ewise, vec![v(y)]);
    for (i, name) in ["D0", "D1", "D2", "D3", "D4", "D5"].iter().enumerate() {
        k = k.c(name, space[i]);
    }
    let reads = program.inputs.len().max(1);
    let mut k = k.linear(n, 256).cost(0, 4 * n * (reads + 1)).space(&space);
    k.epilogue = program;
    k.label = k.epilogue.describe();
    Ok(k)
}

/// An element-wise input: `b` of shape `shape` broadcast to `out`, as 6 strides over `out`.
pub fn ewise_input(b: Binding, shape: &[usize], out: &[usize]) -> Result<ExtraInput> {
    if shape.len() > out.len() {
        bail!("{shape:?} does not broadcast to {out:?}");
    }
    let own = contiguous(shape);
    let off = out.len() - shape.len();
    let st: Vec<usize> = (0..out.len()).map(|i| if i < off || shape[i - off] == 1 { 0 } else { own[i - off] as usize }).collect();
    let padded = pad_to_6(&st, 0)?;
    Ok(ExtraInput { binding: b, strides: padded.iter().map(|&s| s as i64).collect(), base: 0 })
}

/// `act(x)` over `shape`.
pub fn unary(y: usize, shape: &[usize], x: usize, act: Act) -> Result<Kernel> {
    let mut p = Program { inputs: vec![], ops: vec![] };
    let i = p.input(ewise_input(v(x), shape, shape)?);
    let a = p.push(EOp::Input(i));
    p.push(EOp::Unary(act, a));
    ewise(y, shape, p)
}

/// `a OP b` with numpy broadcasting to `out`.
pub fn binary(y: usize, out: &[usize], a: Binding, ash: &[usize], b: Binding, bsh: &[usize], code: u32) -> Result<Kernel> {
    let mut p = Program { inputs: vec![], ops: vec![] };
    let ia = p.input(ewise_input(a, ash, out)?);
    let ib = p.input(ewise_input(b, bsh, out)?);
    let (ta, tb) = (p.push(EOp::Input(ia)), p.push(EOp::Input(ib)));
    p.push(EOp::Binary(code, ta, tb));
    ewise(y, out, p)
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

/// Reduction of `planes` contiguous planes of `len` values each; `kept` is the input shape with
/// the reduced (trailing) axes set to 1.
pub fn plane_reduce(y: usize, x: usize, kept: &[usize], planes: usize, len: usize, code: u32) -> Result<Kernel> {
    let kd = pad_to_6(kept, 1)?;
    let name = ["plane_sum", "plane_mean", "plane_max", "plane_min", "plane_sumsq"][code as usize];
    let mut k = Kernel::new(name, Shader::PlaneReduce, vec![v(y), v(x)]).c("OP", code as usize).c("PLANES", planes).c("LEN", len);
    for i in 0..6 {
        k = k.c(["KD0", "KD1", "KD2", "KD3", "KD4", "KD5"][i], kd[i]);
    }
    let x_groups = planes.clamp(1, 65535);
    k.dispatch = [x_groups as u32, planes.div_ceil(x_groups) as u32, 1];
    k = k.c("NWX", x_groups);
    Ok(k.cost(planes * len, 4 * (planes * len + planes)).space(&kd))
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
    Ok(k.linear(n, 64).cost(n * r, 4 * (n * r + n)).space(&kd))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_tiles_follow_channels_and_plane() {
        // Rows by output channels.
        assert_eq!(gemm_tile(8, 4096).0, 16);
        assert_eq!(gemm_tile(16, 4096).0, 16);
        assert_eq!(gemm_tile(17, 4096).0, 32);
        assert_eq!(gemm_tile(32, 4096).0, 32);
        assert_eq!(gemm_tile(33, 4096).0, 64);
        assert_eq!(gemm_tile(1024, 4096).0, 64);
        // Wide planes: 64 columns; small ones: narrower tiles, never below 16.
        assert_eq!(gemm_tile(64, 128 * 128), (64, 64));
        assert_eq!(gemm_tile(256, 64), (64, 16));
        assert_eq!(gemm_tile(24, 20), (32, 16));
        assert_eq!(gemm_tile(1, 1), (16, 16));
        assert_eq!(gemm_tile(0, 0), (16, 16));
        for rows in [1, 3, 16, 31, 64, 65, 1000] {
            for cols in [1, 4, 17, 63, 64, 100, 4096, 1 << 20] {
                let (tm, tn) = gemm_tile(rows, cols);
                assert!([16, 32, 64].contains(&tm) && [16, 32, 64].contains(&tn), "{rows} x {cols}");
                // 16 to 256 invocations of 4 x 4 outputs.
                assert!((16..=256).contains(&(tm * tn / 16)));
            }
        }
    }

    fn geo(c: usize, hw: [usize; 2], oc: usize, k: usize, s: usize, p: usize, g: usize) -> ConvGeometry {
        let oh = (hw[0] + 2 * p - k) / s + 1;
        let ow = (hw[1] + 2 * p - k) / s + 1;
        ConvGeometry { n: 1, c, ih: hw[0], iw: hw[1], oc, oh, ow, g, kh: k, kw: k, sh: s, sw: s, dh: 1, dw: 1, pt: p, pl: p }
    }

    #[test]
    fn convolutions_get_their_shaders_and_variants() {
        let b = Binding::Param(0);
        // Pointwise: vec4 where the plane allows, else scalar; conv_dense as the alternative.
        let g = geo(24, [16, 16], 40, 1, 1, 0, 1);
        assert_eq!(conv_shaders(&g), vec![Shader::Conv1x1Vec4, Shader::Conv1x1Gemm, Shader::ConvDense]);
        let g = geo(24, [7, 9], 40, 1, 1, 0, 1);
        assert_eq!(conv_shaders(&g), vec![Shader::Conv1x1Gemm, Shader::ConvDense]);
        // 3 x 3, strided, grouped: the implicit product, then conv_dense.
        let g = geo(12, [9, 11], 6, 3, 2, 1, 3);
        assert_eq!(conv_shaders(&g), vec![Shader::ConvIgemm, Shader::ConvDense]);
        let mut k = dense_conv(1, 0, b, b, &g, None);
        assert_eq!(k.shader, Shader::ConvIgemm);
        assert_eq!(k.dispatch, [(5 * 6usize).div_ceil(16) as u32, 1, 3]);
        // A forced shader where it applies, the default where not.
        assert_eq!(dense_conv(1, 0, b, b, &g, Some(Shader::ConvDense)).shader, Shader::ConvDense);
        assert_eq!(dense_conv(1, 0, b, b, &g, Some(Shader::Conv1x1Vec4)).shader, Shader::ConvIgemm);
        // Variants keep the epilogue and the output layout.
        k.out_base = 8;
        k.out_strides = vec![1000, 100, 10, 1];
        let vs = variants(&k);
        assert_eq!(vs.iter().map(|v| v.shader).collect::<Vec<_>>(), vec![Shader::ConvDense]);
        assert_eq!((vs[0].out_base, &vs[0].out_strides, vs[0].bindings.clone()), (8, &k.out_strides, k.bindings.clone()));
        // Vec4 stores only where 4 adjacent pixels stay adjacent and aligned.
        let g = geo(8, [4, 6], 8, 1, 1, 0, 1);
        let mut k = dense_conv(1, 0, b, b, &g, None);
        assert_eq!(k.shader, Shader::Conv1x1Vec4);
        assert!(k.source().contains("const OUTV: bool = true;"));
        k.out_base = 2 * 24;
        k.out_strides = vec![16 * 24, 24, 6, 1];
        assert!(k.stores_vec4());
        k.out_strides = vec![8 * 4 * 9, 4 * 9, 9, 1];
        k.out_base = 0;
        assert!(!k.stores_vec4(), "a concatenation along the width");
        assert!(k.source().contains("const OUTV: bool = false;"));
        // Depthwise: only the naive alternative.
        let g = geo(8, [9, 9], 8, 3, 1, 1, 8);
        let dw = depthwise_tiled(1, 0, b, b, &g, 16384);
        assert_eq!(variants(&dw).iter().map(|v| v.shader).collect::<Vec<_>>(), vec![Shader::ConvNaive]);
    }
}
