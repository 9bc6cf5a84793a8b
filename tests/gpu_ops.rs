//! Every GPU shader against tract on one-op ONNX graphs with random shapes and parameters:
//! odd sizes, stride 2, dilation, kernels 1..35 (square and strips), channel counts that are not
//! multiples of 4, broadcasting. Max |gpu - tract| <= 1e-4 x the reference's range (plus a small
//! absolute floor for outputs that are nearly constant).
//! Without a GPU adapter these skip (EDGESIGHT_REQUIRE_GPU=1 turns that into a failure).

mod common;

use common::{gpu_available, tract_outputs};
use edgesight::catalog::DType;
use edgesight::convert::onnx::{attr_float, attr_int, attr_ints, attr_string, encode, Dim, OnnxGraph};
use edgesight::engine::gpu::graph::{ConvImpl, PlanOptions};
use edgesight::engine::gpu::kernels::Shader;
use edgesight::engine::gpu::GpuEngine;
use edgesight::engine::{Engine, Tensor};
use edgesight::rng::SplitMix64;
use tract_onnx::pb::AttributeProto;

fn rand_vec(r: &mut SplitMix64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| lo + (hi - lo) * r.unit_f32()).collect()
}

fn between(r: &mut SplitMix64, lo: usize, hi: usize) -> usize {
    lo + r.below(hi - lo + 1)
}

fn dims(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::Fixed(d as i64)).collect()
}

const OUT_NAMES: [&str; 6] = ["o0", "o1", "o2", "o3", "o4", "o5"];

/// A graph of one op on input `x` (shape `xs`), built by `body`, with `out_rank` output axes.
fn one_op(xs: &[usize], out_rank: usize, body: impl FnOnce(&mut OnnxGraph, &str) -> String) -> Vec<u8> {
    let mut g = OnnxGraph::new();
    let x = g.input("x", &dims(xs));
    let y = body(&mut g, &x);
    let out: Vec<Dim> = OUT_NAMES[..out_rank].iter().map(|n| Dim::Named(n)).collect();
    g.output(&y, "y", &out);
    encode(&g.finish("gpu_ops test"))
}

/// The first output of `onnx` on plain tract.
fn tract_run(onnx: &[u8], x: &Tensor) -> (Vec<usize>, Vec<f32>) {
    tract_outputs(onnx, x).remove(0)
}

/// Runs the graph on both backends and checks the tolerance; returns the output shape.
fn check(label: &str, onnx: &[u8], x: &Tensor, conv: ConvImpl) -> Vec<usize> {
    check_with(label, onnx, x, PlanOptions { conv, ..Default::default() })
}

fn check_with(label: &str, onnx: &[u8], x: &Tensor, opts: PlanOptions) -> Vec<usize> {
    check_engine(label, onnx, x, opts).0
}

/// `check_with`, also giving the engine's summary (its kernels by shader) and kernel count.
fn check_engine(label: &str, onnx: &[u8], x: &Tensor, opts: PlanOptions) -> (Vec<usize>, String, usize) {
    let (shape, want) = tract_run(onnx, x);
    let mut e = GpuEngine::load_with(onnx, label, DType::F32, &x.shape, &opts).unwrap_or_else(|err| panic!("{label}: {err:#}"));
    assert!(e.tail_ops().is_empty(), "{label}: ops left on the CPU: {:?}", e.tail_ops());
    let got = e.run(x).unwrap_or_else(|err| panic!("{label}: {err:#}")).remove(0);
    assert_eq!(got.shape, shape, "{label}: shape");
    let got = got.as_f32().unwrap();
    let (lo, hi) = want.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let scale = (hi - lo).max(1e-3);
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(
        worst <= 1e-4 * scale && got.iter().all(|v| v.is_finite()),
        "{label}: max |diff| {worst:e} over range {scale:e} (limit 1e-4 relative)"
    );
    (shape, e.summary(), e.kernel_count())
}

fn input(r: &mut SplitMix64, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(shape.to_vec(), rand_vec(r, n, -1.0, 1.0))
}

#[allow(clippy::too_many_arguments)]
fn conv_graph(xs: &[usize], oc: usize, k: [usize; 2], s: usize, d: [usize; 2], p: [usize; 4], g: usize, bias: bool, r: &mut SplitMix64) -> Vec<u8> {
    let icg = xs[1] / g;
    let w = rand_vec(r, oc * icg * k[0] * k[1], -0.5, 0.5);
    let b = rand_vec(r, oc, -0.5, 0.5);
    one_op(xs, 4, |gr, x| {
        let wshape = [oc, icg, k[0], k[1]];
        let wn = gr.constant("w", &wshape, &w);
        let bn = gr.constant("b", &[oc], &b);
        let mut ins = vec![x, wn.as_str()];
        if bias {
            ins.push(&bn);
        }
        let attrs = vec![
            attr_ints("kernel_shape", &[k[0] as i64, k[1] as i64]),
            attr_ints("strides", &[s as i64, s as i64]),
            attr_ints("pads", &p.map(|v| v as i64)),
            attr_ints("dilations", &[d[0] as i64, d[1] as i64]),
            attr_int("group", g as i64),
        ];
        gr.node("Conv", &ins, attrs)
    })
}

#[test]
fn depthwise_convolutions_random() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(11);
    // Fixed cases for the large-kernel shapes the models use, then random ones.
    let mut cases: Vec<([usize; 2], usize, [usize; 2])> = vec![
        ([35, 35], 1, [1, 1]),
        ([1, 35], 1, [1, 1]),
        ([35, 1], 2, [1, 1]),
        ([1, 11], 1, [3, 3]),
        ([11, 1], 1, [3, 3]),
        ([7, 7], 2, [1, 1]),
        ([23, 23], 1, [1, 1]),
        ([3, 3], 1, [2, 2]),
    ];
    for _ in 0..16 {
        let strip = r.below(3);
        let len = between(&mut r, 1, 35);
        let k = match strip {
            0 => [1, len],
            1 => [len, 1],
            _ => [between(&mut r, 1, 9), between(&mut r, 1, 9)],
        };
        cases.push((k, between(&mut r, 1, 2), [between(&mut r, 1, 3), between(&mut r, 1, 3)]));
    }
    for (i, (k, s, d)) in cases.into_iter().enumerate() {
        let c = between(&mut r, 1, 13);
        let ph = (k[0] - 1) * d[0] / 2;
        let pw = (k[1] - 1) * d[1] / 2;
        let p = [between(&mut r, 0, ph), between(&mut r, 0, pw), ph, pw];
        let min_h = ((k[0] - 1) * d[0] + 1).saturating_sub(p[0] + p[2]).max(1);
        let min_w = ((k[1] - 1) * d[1] + 1).saturating_sub(p[1] + p[3]).max(1);
        let h = between(&mut r, min_h, min_h + 37);
        let w = between(&mut r, min_w, min_w + 41);
        let xs = [1, c, h, w];
        let onnx = conv_graph(&xs, c, k, s, d, p, c, r.below(2) == 0, &mut r);
        let x = input(&mut r, &xs);
        let label = format!("depthwise case {i}: x {xs:?} k {k:?} s {s} d {d:?} p {p:?}");
        check(&format!("{label} (tiled)"), &onnx, &x, ConvImpl::Fast);
        check(&format!("{label} (naive)"), &onnx, &x, ConvImpl::Naive);
    }
}

#[test]
fn dense_and_grouped_convolutions_random() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(12);
    // Pointwise convolutions (the tiled matrix-product shaders): sizes around their tiles.
    for (i, (n, ic, oc, h, w)) in [(1, 3, 5, 7, 9), (2, 17, 70, 9, 8), (1, 64, 64, 8, 8), (1, 33, 129, 13, 11), (1, 130, 24, 16, 16)].into_iter().enumerate() {
        let xs = [n, ic, h, w];
        let onnx = conv_graph(&xs, oc, [1, 1], 1, [1, 1], [0; 4], 1, i % 2 == 0, &mut r);
        let x = input(&mut r, &xs);
        // Every pointwise shader, whichever this adapter would pick.
        for shader in [Shader::Conv1x1Vec4, Shader::Conv1x1Gemm, Shader::ConvIgemm, Shader::ConvDense] {
            let opts = PlanOptions { conv_shader: Some(shader), ..Default::default() };
            check_with(&format!("pointwise case {i}: x {xs:?} oc {oc} {shader:?}"), &onnx, &x, opts);
        }
    }
    for i in 0..14 {
        let g = [1, 1, 2, 3][r.below(4)];
        let icg = between(&mut r, 1, 7);
        let ocg = between(&mut r, 1, 9);
        let k = [between(&mut r, 1, 5), between(&mut r, 1, 5)];
        let d = [between(&mut r, 1, 2), between(&mut r, 1, 2)];
        let s = between(&mut r, 1, 2);
        let p = [between(&mut r, 0, 2), between(&mut r, 0, 2), between(&mut r, 0, 2), between(&mut r, 0, 2)];
        let h = between(&mut r, (k[0] - 1) * d[0] + 1, 29);
        let w = between(&mut r, (k[1] - 1) * d[1] + 1, 31);
        let xs = [between(&mut r, 1, 2), icg * g, h, w];
        let onnx = conv_graph(&xs, ocg * g, k, s, d, p, g, r.below(2) == 0, &mut r);
        let x = input(&mut r, &xs);
        let label = format!("conv case {i}: x {xs:?} oc {} k {k:?} s {s} d {d:?} p {p:?} g {g}", ocg * g);
        check(&label, &onnx, &x, ConvImpl::Fast);
        check_with(&format!("{label} (conv_dense)"), &onnx, &x, PlanOptions { conv_shader: Some(Shader::ConvDense), ..Default::default() });
        check(&format!("{label} (naive)"), &onnx, &x, ConvImpl::Naive);
    }
}

#[test]
fn transposed_convolutions() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(13);
    // LitePose's deconvolution (kernel 4, stride 2, padding 1), then random ones.
    let mut cases = vec![(4usize, 2usize, 1usize, 0usize, 1usize)];
    for _ in 0..6 {
        let k = between(&mut r, 1, 5);
        let s = between(&mut r, 1, 3);
        cases.push((k, s, between(&mut r, 0, (k - 1) / 2), between(&mut r, 0, s - 1), [1, 2][r.below(2)]));
    }
    for (i, (k, s, p, op, g)) in cases.into_iter().enumerate() {
        let c = between(&mut r, 1, 5) * g;
        let ocg = between(&mut r, 1, 6);
        let xs = [1, c, between(&mut r, 2, 17), between(&mut r, 2, 19)];
        let w = rand_vec(&mut r, c * ocg * k * k, -0.5, 0.5);
        let b = rand_vec(&mut r, ocg * g, -0.5, 0.5);
        let onnx = one_op(&xs, 4, |gr, x| {
            let wn = gr.constant("w", &[c, ocg, k, k], &w);
            let bn = gr.constant("b", &[ocg * g], &b);
            let attrs = vec![
                attr_ints("kernel_shape", &[k as i64, k as i64]),
                attr_ints("strides", &[s as i64, s as i64]),
                attr_ints("pads", &[p as i64; 4]),
                attr_ints("output_padding", &[op as i64, op as i64]),
                attr_int("group", g as i64),
            ];
            gr.node("ConvTranspose", &[x, &wn, &bn], attrs)
        });
        let x = input(&mut r, &xs);
        check(&format!("deconv case {i}: x {xs:?} k {k} s {s} p {p} op {op} g {g}"), &onnx, &x, ConvImpl::Fast);
    }
}

#[test]
fn pooling() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(14);
    for i in 0..12 {
        let k = [between(&mut r, 1, 5), between(&mut r, 1, 5)];
        let s = between(&mut r, 1, 3);
        let p = [between(&mut r, 0, (k[0] - 1) / 2), between(&mut r, 0, (k[1] - 1) / 2)];
        let xs = [1, between(&mut r, 1, 6), between(&mut r, k[0], 23), between(&mut r, k[1], 25)];
        let max = i % 2 == 0;
        let count_pad = r.below(2) as i64;
        let ceil = r.below(2) as i64;
        let onnx = one_op(&xs, 4, |gr, x| {
            let mut attrs = vec![
                attr_ints("kernel_shape", &[k[0] as i64, k[1] as i64]),
                attr_ints("strides", &[s as i64, s as i64]),
                attr_ints("pads", &[p[0] as i64, p[1] as i64, p[0] as i64, p[1] as i64]),
                attr_int("ceil_mode", ceil),
            ];
            if !max {
                attrs.push(attr_int("count_include_pad", count_pad));
            }
            gr.node(if max { "MaxPool" } else { "AveragePool" }, &[x], attrs)
        });
        let x = input(&mut r, &xs);
        check(&format!("pool case {i}: max {max} x {xs:?} k {k:?} s {s} p {p:?} ceil {ceil} count_pad {count_pad}"), &onnx, &x, ConvImpl::Fast);
    }
    for op in ["GlobalAveragePool", "GlobalMaxPool"] {
        let xs = [2, 5, 7, 9];
        let onnx = one_op(&xs, 4, |gr, x| gr.node(op, &[x], vec![]));
        check(op, &onnx, &input(&mut r, &xs), ConvImpl::Fast);
    }
}

#[test]
fn resize_modes() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(15);
    let modes = [
        ("linear", "half_pixel", "round_prefer_floor"),
        ("linear", "align_corners", "round_prefer_floor"),
        ("linear", "asymmetric", "round_prefer_floor"),
        ("linear", "pytorch_half_pixel", "round_prefer_floor"),
        ("nearest", "half_pixel", "round_prefer_floor"),
        ("nearest", "asymmetric", "floor"),
        ("nearest", "align_corners", "round_prefer_ceil"),
        ("nearest", "tf_half_pixel_for_nn", "ceil"),
    ];
    for (i, (mode, coord, nearest)) in modes.iter().enumerate() {
        // NCHW (resized axes 2, 3) and NHWC (axes 1, 2), up and down.
        let nhwc = i % 2 == 1;
        let (h, w, c) = (between(&mut r, 2, 15), between(&mut r, 2, 17), between(&mut r, 1, 5));
        let xs = if nhwc { vec![1, h, w, c] } else { vec![1, c, h, w] };
        let (oh, ow) = (between(&mut r, 1, 33), between(&mut r, 1, 35));
        let sizes: Vec<i64> = if nhwc { vec![1, oh as i64, ow as i64, c as i64] } else { vec![1, c as i64, oh as i64, ow as i64] };
        let onnx = one_op(&xs, 4, |gr, x| {
            let sz = gr.constant_i64("sizes", &[4], &sizes);
            let attrs: Vec<AttributeProto> = vec![
                attr_string("mode", mode),
                attr_string("coordinate_transformation_mode", coord),
                attr_string("nearest_mode", nearest),
            ];
            gr.node("Resize", &[x, "", "", &sz], attrs)
        });
        check(&format!("resize {mode} {coord} {nearest} {xs:?} -> {sizes:?}"), &onnx, &input(&mut r, &xs), ConvImpl::Fast);
    }
    // Scales instead of sizes (2x nearest, as MoveNet's FPN uses).
    let xs = [1, 3, 5, 7];
    let onnx = one_op(&xs, 4, |gr, x| {
        let sc = gr.constant("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
        gr.node("Resize", &[x, "", &sc], vec![attr_string("mode", "nearest"), attr_string("coordinate_transformation_mode", "asymmetric")])
    });
    check("resize scales 2x", &onnx, &input(&mut r, &xs), ConvImpl::Fast);
}

#[test]
fn elementwise_and_broadcast() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(16);
    let xs = [2, 3, 5, 7];
    let shapes: [&[usize]; 5] = [&[3, 1, 1], &[1], &[7], &[2, 1, 5, 1], &[2, 3, 5, 7]];
    for op in ["Add", "Sub", "Mul", "Div", "Min", "Max"] {
        for (j, bs) in shapes.iter().enumerate() {
            let n: usize = bs.iter().product();
            // Divisors away from zero.
            let b = if op == "Div" { rand_vec(&mut r, n, 0.5, 2.0) } else { rand_vec(&mut r, n, -1.0, 1.0) };
            let onnx = one_op(&xs, 4, |gr, x| {
                let c = gr.constant("b", bs, &b);
                // The constant on the left for half of them (broadcast of the GPU operand).
                if j % 2 == 0 { gr.node(op, &[x, &c], vec![]) } else { gr.node(op, &[&c, x], vec![]) }
            });
            let x = if op == "Div" && j % 2 == 1 {
                Tensor::f32(xs.to_vec(), rand_vec(&mut r, 210, 0.5, 2.0))
            } else {
                input(&mut r, &xs)
            };
            check(&format!("{op} {xs:?} with {bs:?}"), &onnx, &x, ConvImpl::Fast);
        }
    }
    // Both operands on the GPU (x * sigmoid(x)).
    let onnx = one_op(&xs, 4, |gr, x| {
        let s = gr.node("Sigmoid", &[x], vec![]);
        gr.node("Mul", &[x, &s], vec![])
    });
    check("swish", &onnx, &input(&mut r, &xs), ConvImpl::Fast);
    let unary: [(&str, Vec<AttributeProto>, f32, f32); 12] = [
        ("Relu", vec![], -2.0, 2.0),
        ("Sigmoid", vec![], -6.0, 6.0),
        ("Erf", vec![], -3.0, 3.0),
        ("Sqrt", vec![], 0.01, 4.0),
        ("Exp", vec![], -3.0, 3.0),
        ("Abs", vec![], -2.0, 2.0),
        ("Neg", vec![], -2.0, 2.0),
        ("Tanh", vec![], -3.0, 3.0),
        ("HardSigmoid", vec![attr_float("alpha", 0.3), attr_float("beta", 0.4)], -4.0, 4.0),
        ("HardSwish", vec![], -5.0, 5.0),
        ("LeakyRelu", vec![attr_float("alpha", 0.1)], -2.0, 2.0),
        ("Reciprocal", vec![], 0.5, 3.0),
    ];
    for (op, attrs, lo, hi) in unary {
        let onnx = one_op(&xs, 4, |gr, x| gr.node(op, &[x], attrs));
        let x = Tensor::f32(xs.to_vec(), rand_vec(&mut r, 210, lo, hi));
        check(op, &onnx, &x, ConvImpl::Fast);
    }
    let onnx = one_op(&xs, 4, |gr, x| gr.clip(x, -0.3, 0.6));
    check("Clip", &onnx, &input(&mut r, &xs), ConvImpl::Fast);
}

#[test]
fn reductions() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(17);
    let xs = [2, 3, 5, 7];
    let axes_sets: [&[i64]; 5] = [&[1], &[2, 3], &[-1], &[0, 2], &[1, 2, 3]];
    for op in ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum"] {
        for (j, axes) in axes_sets.iter().enumerate() {
            let keep = j % 2 == 0;
            let rank = if keep { 4 } else { 4 - axes.len() };
            let onnx = one_op(&xs, rank, |gr, x| match op {
                "ReduceSum" => gr.reduce_sum(x, axes, keep),
                _ => gr.node(op, &[x], vec![attr_ints("axes", axes), attr_int("keepdims", keep as i64)]),
            });
            check(&format!("{op} axes {axes:?} keepdims {keep}"), &onnx, &input(&mut r, &xs), ConvImpl::Fast);
        }
    }
}

#[test]
fn layout_ops() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(18);
    let xs = [1, 4, 6, 5];
    let onnx = one_op(&xs, 4, |gr, x| gr.node("Transpose", &[x], vec![attr_ints("perm", &[0, 2, 3, 1])]));
    check("transpose", &onnx, &input(&mut r, &xs), ConvImpl::Fast);
    let onnx = one_op(&xs, 4, |gr, x| {
        let s = gr.constant_i64("s", &[2], &[5, 1]);
        let e = gr.constant_i64("e", &[2], &[0, 4]);
        let a = gr.constant_i64("a", &[2], &[2, 3]);
        let st = gr.constant_i64("st", &[2], &[-2, 2]);
        gr.node("Slice", &[x, &s, &e, &a, &st], vec![])
    });
    check("slice with negative step", &onnx, &input(&mut r, &xs), ConvImpl::Fast);
    let c = rand_vec(&mut r, 2 * 6 * 5, -1.0, 1.0);
    let onnx = one_op(&xs, 4, |gr, x| {
        let k = gr.constant("k", &[1, 2, 6, 5], &c);
        let s = gr.node("Sigmoid", &[x], vec![]);
        gr.concat(&[x, &k, &s], 1)
    });
    check("concat with a constant", &onnx, &input(&mut r, &xs), ConvImpl::Fast);
    let onnx = one_op(&xs, 4, |gr, x| {
        let shape = gr.constant_i64("shape", &[3], &[1, 4, 30]);
        let y = gr.node("Reshape", &[x, &shape], vec![]);
        let w = gr.constant("w", &[30, 7], &rand_vec(&mut SplitMix64(5), 210, -1.0, 1.0));
        let m = gr.node("MatMul", &[&y, &w], vec![]);
        let u = gr.constant_i64("axes", &[1], &[3]);
        gr.node("Unsqueeze", &[&m, &u], vec![])
    });
    check("reshape + matmul + unsqueeze", &onnx, &input(&mut r, &xs), ConvImpl::Fast);
}

/// Blocks the planner fuses, each against tract, with the kernels it must come down to:
/// a convolution with a batch norm kept as Mul + Add, ReLU6 and a residual Add (one kernel);
/// a pointwise convolution and an exact GELU (one); a depthwise 7 x 7 then pointwise pair
/// (one); squeeze-and-excitation (pool, 1 x 1 convolutions) gating its input (two); a channel
/// LayerNorm (reductions read through their element-wise inputs); two convolutions
/// concatenated (no copy); a slice read by an element-wise op (no copy).
#[test]
fn fused_blocks_match_tract() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(77);
    let xs = [1usize, 8, 12, 20];
    let w = |r: &mut SplitMix64, oc: usize, ic: usize, k: usize| (vec![oc, ic, k, k], rand_vec(r, oc * ic * k * k, -0.4, 0.4));
    let b = |r: &mut SplitMix64, n: usize| rand_vec(r, n, -0.3, 0.3);
    let x = input(&mut r, &xs);
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("conv+bn+relu6+residual", {
            let (ws, wv) = w(&mut r, 8, 8, 3);
            let (bv, sc, sh) = (b(&mut r, 8), rand_vec(&mut r, 8, 0.5, 1.5), b(&mut r, 8));
            one_op(&xs, 4, |g, x| {
                let c = g.conv(x, (&ws, &wv), Some(&bv), 1, [1, 1, 1, 1], [1, 1], 1);
                let n = g.channel_affine(&c, &sc, &sh);
                let a = g.clip(&n, 0.0, 6.0);
                g.add(&a, x)
            })
        }, 1),
        ("pointwise+gelu", {
            let (ws, wv) = w(&mut r, 16, 8, 1);
            let bv = b(&mut r, 16);
            one_op(&xs, 4, |g, x| {
                let c = g.conv(x, (&ws, &wv), Some(&bv), 1, [0; 4], [1, 1], 1);
                g.gelu(&c)
            })
        }, 1),
        ("depthwise7x7+pointwise", {
            let (dv, db) = (rand_vec(&mut r, 8 * 49, -0.2, 0.2), b(&mut r, 8));
            let (ws, wv) = w(&mut r, 12, 8, 1);
            let bv = b(&mut r, 12);
            one_op(&xs, 4, |g, x| {
                let d = g.conv(x, (&[8, 1, 7, 7], &dv), Some(&db), 1, [3, 3, 3, 3], [1, 1], 8);
                let d = g.relu(&d);
                g.conv(&d, (&ws, &wv), Some(&bv), 1, [0; 4], [1, 1], 1)
            })
        }, 1),
        ("squeeze-excitation", {
            let (w1s, w1) = w(&mut r, 4, 8, 1);
            let (w2s, w2) = w(&mut r, 8, 4, 1);
            let (b1, b2) = (b(&mut r, 4), b(&mut r, 8));
            one_op(&xs, 4, |g, x| {
                let p = g.node("GlobalAveragePool", &[x], vec![]);
                let h = g.conv(&p, (&w1s, &w1), Some(&b1), 1, [0; 4], [1, 1], 1);
                let h = g.relu(&h);
                let s = g.conv(&h, (&w2s, &w2), Some(&b2), 1, [0; 4], [1, 1], 1);
                let s = g.sigmoid(&s);
                g.mul(x, &s)
            })
        }, 2),
        ("layer-norm", {
            let (gm, bt) = (rand_vec(&mut r, 8, 0.5, 1.5), b(&mut r, 8));
            one_op(&xs, 4, |g, x| {
                let m = g.reduce_mean(x, &[1], true);
                let d = g.sub(x, &m);
                let sq = g.mul(&d, &d);
                let v = g.reduce_mean(&sq, &[1], true);
                let eps = g.scalar("eps", 1e-5);
                let ve = g.add(&v, &eps);
                let s = g.sqrt(&ve);
                let n = g.div(&d, &s);
                g.channel_affine(&n, &gm, &bt)
            })
        }, 4),
        ("concat of convolutions", {
            let (w1s, w1) = w(&mut r, 4, 8, 3);
            let (w2s, w2) = w(&mut r, 6, 8, 1);
            let (b1, b2) = (b(&mut r, 4), b(&mut r, 6));
            one_op(&xs, 4, |g, x| {
                let a = g.conv(x, (&w1s, &w1), Some(&b1), 1, [1, 1, 1, 1], [1, 1], 1);
                let c = g.conv(x, (&w2s, &w2), Some(&b2), 1, [0; 4], [1, 1], 1);
                let c = g.relu(&c);
                g.concat(&[&a, &c], 1)
            })
        }, 2),
        ("slice into an element-wise op", one_op(&xs, 4, |g, x| {
            let a = g.slice(x, 1, 0, 4);
            let c = g.slice(x, 1, 4, 8);
            let s = g.sigmoid(&c);
            g.mul(&a, &s)
        }), 1),
    ];
    for (label, onnx, kernels) in cases {
        check(label, &onnx, &x, ConvImpl::Fast);
        let e = GpuEngine::load_with(&onnx, label, DType::F32, &xs, &PlanOptions::default()).unwrap();
        eprintln!("{label}: {}", e.summary());
        assert_eq!(e.kernel_count(), kernels, "{label}: {}", e.summary());
    }
}

/// Depthwise convolutions whose shader (tiled or naive) is chosen by timing both on this GPU
/// when the engine is built: whichever wins, the results match tract.
#[test]
fn depthwise_chosen_by_timing_matches_tract() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(91);
    for (xs, k, d) in [([1usize, 6, 30, 40], [7, 7], [1, 1]), ([1, 5, 17, 23], [1, 11], [1, 3]), ([1, 4, 9, 9], [3, 3], [2, 2])] {
        let p = [(k[0] - 1) / 2 * d[0], (k[1] - 1) / 2 * d[1], (k[0] - 1) / 2 * d[0], (k[1] - 1) / 2 * d[1]];
        let onnx = conv_graph(&xs, xs[1], k, 1, d, p, xs[1], true, &mut r);
        let x = input(&mut r, &xs);
        let opts = PlanOptions { time_variants: Some(true), ..Default::default() };
        check_with(&format!("timed depthwise {k:?} d{d:?}"), &onnx, &x, opts.clone());
        let e = GpuEngine::load_with(&onnx, "timed", DType::F32, &xs, &opts).unwrap();
        eprintln!("timed depthwise {k:?}: {}", e.summary());
        assert_eq!(e.kernel_count(), 1);
    }
}

/// The dense convolution shaders, each forced in turn (`PlanOptions::conv_shader`; where a
/// shader does not take a shape the planner's default runs, and the test says which ran).
const CONV_SHADERS: [Shader; 4] = [Shader::Conv1x1Vec4, Shader::Conv1x1Gemm, Shader::ConvIgemm, Shader::ConvDense];

/// Whether `shader` can run a convolution of this kind (pointwise: 1 x 1, stride 1, unpadded,
/// ungrouped; the vec4 form also needs a plane of a multiple of 4 pixels).
fn runs(shader: Shader, pointwise: bool, plane: usize) -> bool {
    match shader {
        Shader::Conv1x1Vec4 => pointwise && plane % 4 == 0,
        Shader::Conv1x1Gemm => pointwise,
        _ => true,
    }
}

/// Every tiled shader and its fallback against tract on odd shapes: channels that are not
/// multiples of 4 or 16 (one to several tiles of 16, 32 and 64 rows), planes that are not
/// multiples of 4, padding (asymmetric too), stride 2, dilation, groups, strips, batches of 2.
#[test]
fn tiled_convolutions_every_variant() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(21);
    // (x, oc, kernel, stride, dilation, pads, groups)
    #[allow(clippy::type_complexity)]
    let cases: Vec<([usize; 4], usize, [usize; 2], usize, [usize; 2], [usize; 4], usize)> = vec![
        ([1, 3, 7, 9], 5, [1, 1], 1, [1, 1], [0; 4], 1),
        ([2, 17, 4, 6], 20, [1, 1], 1, [1, 1], [0; 4], 1),
        ([1, 33, 13, 11], 40, [1, 1], 1, [1, 1], [0; 4], 1),
        ([1, 130, 8, 8], 70, [1, 1], 1, [1, 1], [0; 4], 1),
        ([1, 16, 1, 4], 16, [1, 1], 1, [1, 1], [0; 4], 1),
        ([1, 7, 2, 2], 9, [1, 1], 1, [1, 1], [0; 4], 1),
        ([1, 5, 15, 17], 20, [3, 3], 1, [1, 1], [1, 1, 1, 1], 1),
        ([1, 7, 17, 15], 40, [3, 3], 2, [1, 1], [1, 1, 1, 1], 1),
        ([2, 6, 11, 10], 33, [3, 3], 1, [1, 1], [0, 1, 2, 0], 1),
        ([1, 3, 23, 21], 16, [7, 7], 2, [1, 1], [3, 3, 3, 3], 1),
        ([1, 9, 19, 14], 13, [5, 5], 1, [2, 2], [4, 4, 4, 4], 1),
        ([1, 12, 9, 13], 8, [3, 3], 1, [1, 1], [1, 1, 1, 1], 4),
        ([1, 10, 10, 9], 15, [3, 1], 2, [1, 1], [1, 0, 1, 0], 5),
        ([1, 11, 9, 12], 67, [1, 3], 1, [1, 2], [0, 2, 0, 2], 1),
        ([1, 8, 9, 9], 12, [1, 1], 2, [1, 1], [0; 4], 1),
        ([1, 8, 6, 6], 12, [1, 1], 1, [1, 1], [1, 1, 1, 1], 1),
        ([1, 18, 5, 7], 6, [1, 1], 1, [1, 1], [0; 4], 3),
        ([1, 300, 3, 5], 100, [3, 3], 1, [1, 1], [1, 1, 1, 1], 1),
    ];
    for (i, (xs, oc, k, s, d, p, g)) in cases.into_iter().enumerate() {
        let onnx = conv_graph(&xs, oc, k, s, d, p, g, i % 3 != 1, &mut r);
        let x = input(&mut r, &xs);
        let pointwise = k == [1, 1] && s == 1 && p == [0; 4] && g == 1;
        for shader in CONV_SHADERS {
            let label = format!("case {i}: x {xs:?} oc {oc} k {k:?} s {s} d {d:?} p {p:?} g {g} on {shader:?}");
            let (_, summary, _) = check_engine(&label, &onnx, &x, PlanOptions { conv_shader: Some(shader), ..Default::default() });
            if runs(shader, pointwise, xs[2] * xs[3]) {
                let name = format!("{} x1", shader.name());
                assert!(summary.contains(&name), "{label}: {summary}");
            }
        }
    }
}

/// The tiled shaders inside fused blocks, each forced in turn: a convolution with ReLU and a
/// residual Add in its epilogue (one kernel), two convolutions writing into a concatenation
/// along the channels and along the width (no copy: their stores go to the concatenation's
/// buffer, vec4 stores only where they stay aligned), a depthwise + pointwise pair (one).
#[test]
fn tiled_convolutions_in_fused_blocks() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(22);
    let w = |r: &mut SplitMix64, oc: usize, ic: usize, k: [usize; 2]| (vec![oc, ic, k[0], k[1]], rand_vec(r, oc * ic * k[0] * k[1], -0.4, 0.4));
    let b = |r: &mut SplitMix64, n: usize| rand_vec(r, n, -0.3, 0.3);
    for (xs, k) in [([1usize, 12, 8, 8], [1usize, 1usize]), ([1, 12, 7, 9], [1, 1]), ([1, 12, 8, 8], [3, 3]), ([2, 12, 5, 7], [3, 3])] {
        let pad = (k[0] - 1) / 2;
        let p4 = [pad; 4];
        let x = input(&mut r, &xs);
        let cases: Vec<(&str, Vec<u8>, usize)> = vec![
            ("conv+relu+residual", {
                let (ws, wv) = w(&mut r, 12, 12, k);
                let bv = b(&mut r, 12);
                one_op(&xs, 4, |g, x| {
                    let c = g.conv(x, (&ws, &wv), Some(&bv), 1, p4, [1, 1], 1);
                    let a = g.relu(&c);
                    g.add(&a, x)
                })
            }, 1),
            ("concat along channels", {
                let (w1s, w1) = w(&mut r, 5, 12, k);
                let (w2s, w2) = w(&mut r, 19, 12, [1, 1]);
                let (b1, b2) = (b(&mut r, 5), b(&mut r, 19));
                one_op(&xs, 4, |g, x| {
                    let a = g.conv(x, (&w1s, &w1), Some(&b1), 1, p4, [1, 1], 1);
                    let c = g.conv(x, (&w2s, &w2), Some(&b2), 1, [0; 4], [1, 1], 1);
                    let c = g.clip(&c, 0.0, 6.0);
                    g.concat(&[&a, &c], 1)
                })
            }, 2),
            ("concat along the width", {
                let (w1s, w1) = w(&mut r, 6, 12, k);
                let (w2s, w2) = w(&mut r, 6, 12, [1, 1]);
                let (b1, b2) = (b(&mut r, 6), b(&mut r, 6));
                one_op(&xs, 4, |g, x| {
                    let a = g.conv(x, (&w1s, &w1), Some(&b1), 1, p4, [1, 1], 1);
                    let c = g.conv(x, (&w2s, &w2), Some(&b2), 1, [0; 4], [1, 1], 1);
                    g.concat(&[&c, &a], 3)
                })
            }, 2),
            ("depthwise+pointwise", {
                let (dv, db) = (rand_vec(&mut r, 12 * 9, -0.3, 0.3), b(&mut r, 12));
                let (ws, wv) = w(&mut r, 21, 12, [1, 1]);
                let bv = b(&mut r, 21);
                one_op(&xs, 4, |g, x| {
                    let d = g.conv(x, (&[12, 1, 3, 3], &dv), Some(&db), 1, [1, 1, 1, 1], [1, 1], 12);
                    let d = g.relu(&d);
                    g.conv(&d, (&ws, &wv), Some(&bv), 1, [0; 4], [1, 1], 1)
                })
            }, 1),
        ];
        for (label, onnx, kernels) in cases {
            for shader in CONV_SHADERS {
                let label = format!("{label} x {xs:?} k {k:?} on {shader:?}");
                let (_, summary, count) = check_engine(&label, &onnx, &x, PlanOptions { conv_shader: Some(shader), ..Default::default() });
                assert_eq!(count, kernels, "{label}: {summary}");
            }
        }
    }
}

/// Dense convolutions whose shader is chosen by timing every variant on this GPU when the
/// engine is built (lavapipe included, when asked): whichever wins, the results match tract,
/// and with fused epilogues and concatenations too.
#[test]
fn conv_variants_chosen_by_timing_match_tract() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(23);
    let opts = PlanOptions { time_variants: Some(true), ..Default::default() };
    for (xs, oc, k, s, p) in [([1usize, 24, 16, 16], 40usize, [1usize, 1usize], 1usize, [0usize; 4]), ([1, 13, 9, 11], 20, [1, 1], 1, [0; 4]), ([1, 8, 15, 13], 24, [3, 3], 2, [1; 4])] {
        let onnx = conv_graph(&xs, oc, k, s, [1, 1], p, 1, true, &mut r);
        let x = input(&mut r, &xs);
        let (_, summary, count) = check_engine(&format!("timed conv {xs:?} k {k:?}"), &onnx, &x, opts.clone());
        eprintln!("timed conv {xs:?} k {k:?}: {summary}");
        assert_eq!(count, 1);
    }
    let xs = [1usize, 12, 8, 8];
    let (w1, w2) = (rand_vec(&mut r, 7 * 12 * 9, -0.4, 0.4), rand_vec(&mut r, 9 * 12, -0.4, 0.4));
    let onnx = one_op(&xs, 4, |g, x| {
        let a = g.conv(x, (&[7, 12, 3, 3], &w1), None, 1, [1; 4], [1, 1], 1);
        let a = g.relu(&a);
        let c = g.conv(x, (&[9, 12, 1, 1], &w2), None, 1, [0; 4], [1, 1], 1);
        g.concat(&[&a, &c], 1)
    });
    let x = input(&mut r, &xs);
    let (_, summary, count) = check_engine("timed concat of convolutions", &onnx, &x, opts);
    assert_eq!(count, 2, "{summary}");
}
