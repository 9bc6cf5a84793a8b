//! Element-wise programs, compiled into WGSL. A kernel's *epilogue* runs on each value it
//! computes before the value is stored: an activation, a residual Add, per-channel affine
//! terms, a whole GELU or hard-swish chain. The same programs are the bodies of element-wise
//! kernels (`Shader::Ewise`), so a chain of Mul / Add / Erf / ... nodes becomes one kernel, and
//! that kernel can in turn be folded into the convolution producing its input (`graph::fuse`).
//!
//! A program reads extra inputs at the output position: input j of a kernel whose coordinates
//! are (c0, c1, ...) is read at `base_j + c0 * s_j0 + c1 * s_j1 + ...` (strides 0 on broadcast
//! axes), so per-channel parameters, residuals and broadcast operands all fit.

pub use super::binding::Binding;

// Element-wise function codes (shaders/common.wgsl `unary`).
pub const IDENTITY: u32 = 0;
pub const SIGMOID: u32 = 3;
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


#[derive(Debug, Clone, PartialEq)]
pub enum EOp {
    /// The value the kernel computed (a convolution's sum, a pooled value).
    Acc,
    /// Extra input `j`, read at the output position.
    Input(usize),
    Const(f32),
    Unary(Act, usize),
    /// `op` (add, sub, mul, div, min, max, pow) of two earlier results.
    Binary(u32, usize, usize),
}

/// An extra input of a program and where it is read for each output position.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraInput {
    pub binding: Binding,
    /// One stride per coordinate of the kernel's output space.
    pub strides: Vec<i64>,
    pub base: i64,
}

/// A program: its result is the last op's (`[Acc]`: the value unchanged).
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub inputs: Vec<ExtraInput>,
    pub ops: Vec<EOp>,
}

impl Default for Program {
    fn default() -> Self {
        Program::identity()
    }
}

pub const BINARY_NAMES: [&str; 7] = ["add", "sub", "mul", "div", "min", "max", "pow"];

impl Program {
    pub fn identity() -> Program {
        Program { inputs: vec![], ops: vec![EOp::Acc] }
    }

    pub fn is_identity(&self) -> bool {
        self.ops == [EOp::Acc]
    }

    /// Whether the program reads nothing but the kernel's value (and constants).
    pub fn is_pure(&self) -> bool {
        self.inputs.is_empty()
    }

    pub fn result(&self) -> usize {
        self.ops.len() - 1
    }

    /// Adds an input (reusing an identical one) and returns its index.
    pub fn input(&mut self, x: ExtraInput) -> usize {
        if let Some(i) = self.inputs.iter().position(|e| *e == x) {
            return i;
        }
        self.inputs.push(x);
        self.inputs.len() - 1
    }

    pub fn push(&mut self, op: EOp) -> usize {
        self.ops.push(op);
        self.ops.len() - 1
    }

    /// `act(result)`.
    pub fn then_act(&mut self, act: Act) {
        let r = self.result();
        self.push(EOp::Unary(act, r));
    }

    /// Appends `other` (a program over the same coordinates), whose `Acc` is this program's
    /// result and whose `Input(k)` for `k` in `replaced` is also this program's result.
    pub fn then(&mut self, other: &Program, replaced: &[usize]) {
        let mine = self.result();
        let mut map: Vec<usize> = Vec::with_capacity(other.ops.len());
        let inputs: Vec<Option<usize>> = other
            .inputs
            .iter()
            .enumerate()
            .map(|(k, e)| (!replaced.contains(&k)).then(|| self.input(e.clone())))
            .collect();
        for op in &other.ops {
            let new = match op {
                EOp::Acc => mine,
                EOp::Input(k) => match inputs[*k] {
                    None => mine,
                    Some(j) => self.push(EOp::Input(j)),
                },
                EOp::Const(c) => self.push(EOp::Const(*c)),
                EOp::Unary(a, x) => self.push(EOp::Unary(*a, map[*x])),
                EOp::Binary(o, a, b) => self.push(EOp::Binary(*o, map[*a], map[*b])),
            };
            map.push(new);
        }
        // The combined result is `other`'s.
        let last = map[other.result()];
        if last != self.result() {
            // An op that only forwards an earlier result (other's result was Acc or a replaced
            // input): make it the last one.
            self.push(EOp::Unary(Act::new(IDENTITY, 0.0, 0.0), last));
        }
    }

    /// A short name for labels: the ops it applies.
    pub fn describe(&self) -> String {
        let mut names = vec![];
        for op in &self.ops {
            match op {
                EOp::Unary(a, _) if a.code != IDENTITY => names.push(a.name().to_string()),
                EOp::Binary(o, _, _) => names.push(BINARY_NAMES[*o as usize].to_string()),
                _ => {}
            }
        }
        names.join("+")
    }

    /// WGSL: a read-only storage binding per input (numbered from `first_binding`, named
    /// `<name>_<j>`) and `fn <name>(acc: f32, <coords>) -> f32`.
    pub fn wgsl(&self, name: &str, coords: usize, first_binding: usize) -> String {
        let mut s = String::new();
        for j in 0..self.inputs.len() {
            s.push_str(&format!("@group(0) @binding({}) var<storage, read> {name}_{j}: array<f32>;\n", first_binding + j));
        }
        let params: Vec<String> = (0..coords).map(|c| format!("c{c}: u32")).collect();
        s.push_str(&format!("fn {name}(acc: f32{}{}) -> f32 {{\n", if coords > 0 { ", " } else { "" }, params.join(", ")));
        for (i, op) in self.ops.iter().enumerate() {
            let expr = match op {
                EOp::Acc => "acc".to_string(),
                EOp::Input(j) => {
                    let e = &self.inputs[*j];
                    let mut idx = format!("{}i", e.base);
                    for (c, st) in e.strides.iter().enumerate().take(coords) {
                        if *st != 0 {
                            idx.push_str(&format!(" + i32(c{c}) * {st}i"));
                        }
                    }
                    format!("{name}_{j}[u32({idx})]")
                }
                EOp::Const(v) => float(*v),
                EOp::Unary(a, x) => format!("unary({}u, t{x}, {}, {})", a.code, float(a.a), float(a.b)),
                EOp::Binary(o, a, b) => match o {
                    0 => format!("t{a} + t{b}"),
                    1 => format!("t{a} - t{b}"),
                    2 => format!("t{a} * t{b}"),
                    3 => format!("t{a} / t{b}"),
                    4 => format!("min(t{a}, t{b})"),
                    5 => format!("max(t{a}, t{b})"),
                    _ => format!("pow(t{a}, t{b})"),
                },
            };
            s.push_str(&format!("    let t{i} = {expr};\n"));
        }
        s.push_str(&format!("    return t{};\n}}\n", self.result()));
        s
    }
}

/// A WGSL float literal (finite: infinities become the largest float).
fn float(v: f32) -> String {
    let v = if v.is_nan() { 0.0 } else { v.clamp(-3.402_823e38, 3.402_823e38) };
    format!("{v:e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    

    #[test]
    fn programs_chain_and_compile_to_wgsl() {
        // relu(acc) + r[c0, c1] * p[c1]
        let mut p = Program::identity();
        p.then_act(Act::new(RELU, 0.0, 0.0));
        let mut q = Program::identity();
        let r = q.input(ExtraInput { binding: Binding::Value(3), strides: vec![8, 1], base: 0 });
        let w = q.input(ExtraInput { binding: Binding::Param(0), strides: vec![0, 1], base: 0 });
        let (a, b) = (q.push(EOp::Input(r)), q.push(EOp::Input(w)));
        let m = q.push(EOp::Binary(2, a, b));
        q.push(EOp::Binary(0, 0, m));
        p.then(&q, &[]);
        assert_eq!(p.inputs.len(), 2);
        assert_eq!(p.describe(), "relu+mul+add");
        let src = p.wgsl("epilogue", 2, 4);
        assert!(src.contains("@binding(4) var<storage, read> epilogue_0"), "{src}");
        assert!(src.contains("epilogue_1[u32(0i + i32(c1) * 1i)]"), "{src}");
        assert!(src.contains("fn epilogue(acc: f32, c0: u32, c1: u32) -> f32"), "{src}");
        // The same input twice is one binding.
        let mut z = Program::identity();
        let e = ExtraInput { binding: Binding::Value(1), strides: vec![1], base: 0 };
        assert_eq!((z.input(e.clone()), z.input(e)), (0, 0));
        // An input replaced by the chained program's own result needs no binding.
        let mut x = Program::identity();
        let mut y = Program::identity();
        let k = y.input(ExtraInput { binding: Binding::Value(7), strides: vec![1], base: 0 });
        let (i0, i1) = (y.push(EOp::Input(k)), y.push(EOp::Const(2.0)));
        y.push(EOp::Binary(2, i0, i1));
        x.then(&y, &[k]);
        assert!(x.inputs.is_empty() && x.describe() == "mul");
    }
}
