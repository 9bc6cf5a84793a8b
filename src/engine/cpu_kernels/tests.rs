//! The rewrite against tract: models of one op each, run by tract before and after
//! `patch_model`, bitwise or to the stated bound.

use super::*;
use crate::rng::SplitMix64;
use spec::Isa;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{PaddingSpec, SumPool};
use tract_onnx::tract_core::ops::nn::{DataFormat, Reduce, Reducer};

/// Moved axes against tract's own AxisOp::Move, bitwise, on one thread and on the pool.
#[test]
fn moved_axes_match_tract() {
    let mut rng = SplitMix64(12);
    let mut replaced = 0;
    for case in 0..40 {
        pool::set_threads(1 + case % 2).unwrap();
        let rank = 2 + rng.below(4);
        let mut shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(24)).collect();
        if case % 4 == 0 {
            shape = vec![1, 256, 256, 3];
        }
        let (from, to) = (rng.below(shape.len()), rng.below(shape.len()));
        let n: usize = shape.iter().product();
        let input = tract_ndarray::ArrayD::from_shape_vec(shape.clone(), (0..n).map(|i| i as f32).collect()).unwrap().into_tensor();
        let mut model = TypedModel::default();
        let src = model.add_source("x", f32::fact(&shape)).unwrap();
        let out = model.wire_node("move", AxisOp::Move(from, to), &[src]).unwrap();
        model.select_output_outlets(&out).unwrap();
        let want = model.clone().into_runnable().unwrap().run(tvec![input.clone().into()]).unwrap();
        replaced += patch_model(&mut model, &KernelChoice::default()).unwrap().transposes;
        let got = model.into_runnable().unwrap().run(tvec![input.into()]).unwrap();
        assert_eq!(got[0].shape(), want[0].shape(), "{shape:?} {from} -> {to}");
        assert_eq!(got[0].to_plain_array_view::<f32>().unwrap(), want[0].to_plain_array_view::<f32>().unwrap(), "{shape:?} {from} -> {to}");
    }
    pool::set_threads(1).unwrap();
    if Isa::fast().is_some() {
        assert!(replaced >= 10, "only {replaced} moves replaced");
    }
}

/// Whole-plane averages against tract's own SumPool, on one thread and on the pool; pools
/// with padding or a smaller kernel stay tract's.
#[test]
fn plane_means_match_tract() {
    use tract_onnx::tract_core::ops::cnn::PoolSpec;
    let mut rng = SplitMix64(8);
    for (case, shape) in [[1, 16, 128, 128], [1, 3, 7, 5], [2, 33, 9, 17], [1, 1, 1, 1], [1, 40, 4, 4]].into_iter().enumerate() {
        pool::set_threads(1 + case % 2).unwrap();
        for (kernel, padding, replaced) in [
            (tvec![shape[2], shape[3]], PaddingSpec::Valid, true),
            (tvec![shape[2], shape[3]], PaddingSpec::Explicit(tvec![1, 0], tvec![0, 0]), false),
            (tvec![1, shape[3]], PaddingSpec::Valid, shape[2] == 1),
        ] {
            let n: usize = shape.iter().product();
            let input = tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| rng.unit_f32() * 4.0 - 1.0).collect()).unwrap().into_tensor();
            let pool_spec = PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: kernel,
                padding,
                dilations: None,
                strides: None,
                input_channels: shape[1],
                output_channels: shape[1],
            };
            let mut model = TypedModel::default();
            let src = model.add_source("x", f32::fact(shape)).unwrap();
            let out = model.wire_node("pool", SumPool { pool_spec, count_include_pad: false, normalize: true }, &[src]).unwrap();
            model.select_output_outlets(&out).unwrap();
            let want = model.clone().into_runnable().unwrap().run(tvec![input.clone().into()]).unwrap();
            let count = patch_model(&mut model, &KernelChoice::default()).unwrap();
            if Isa::fast().is_some() {
                assert_eq!(count.reductions == 1, replaced, "{shape:?}");
            }
            let got = model.into_runnable().unwrap().run(tvec![input.clone().into()]).unwrap();
            assert_eq!(got[0].shape(), want[0].shape());
            let (g, w) = (got[0].to_plain_array_view::<f32>().unwrap(), want[0].to_plain_array_view::<f32>().unwrap());
            // Without edgesight's kernels (no AVX2 here, e.g. arm64) nothing is replaced.
            if replaced && Isa::fast().is_some() {
                // Against the exact mean (f64): tract's one running sum drifts by up to a few
                // 1e-6 over 128 x 128; the 16 running sums stay closer.
                let x = input.to_plain_array_view::<f32>().unwrap();
                let x = x.as_slice().unwrap();
                let plane = shape[2] * shape[3];
                for (p, (a, b)) in g.iter().zip(w.iter()).enumerate() {
                    let exact = x[p * plane..][..plane].iter().map(|v| *v as f64).sum::<f64>() / plane as f64;
                    assert!((*a as f64 - exact).abs() <= 5e-7 * (1.0 + exact.abs()), "{shape:?}: {a} vs exact {exact}");
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{shape:?}: {a} vs tract {b}");
                }
            } else {
                let bits = |v: &tract_ndarray::ArrayViewD<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&g), bits(&w), "{shape:?}: tract's own op gives tract's result");
            }
        }
    }
    pool::set_threads(1).unwrap();
}

/// Max and first arg-max over a strided axis against tract's own Reduce on the same model,
/// with ties (few distinct values), NaNs and an all-NaN column.
#[test]
fn strided_reductions_match_tract() {
    let mut rng = SplitMix64(5);
    for (shape, axis) in [(vec![4096, 102], 0), (vec![3, 17, 5], 1), (vec![2, 9, 4, 3], 1), (vec![31, 33], 0)] {
        let n: usize = shape.iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let data: Vec<f32> = (0..n)
            .map(|i| match rng.below(50) {
                0 => f32::NAN,
                _ if i % inner == 1 => f32::NAN,
                _ => rng.below(7) as f32 - 3.0,
            })
            .collect();
        let input = tract_ndarray::ArrayD::from_shape_vec(shape.clone(), data).unwrap().into_tensor();
        for reducer in [Reducer::Max, Reducer::ArgMax(false)] {
            let mut model = TypedModel::default();
            let src = model.add_source("x", f32::fact(&shape)).unwrap();
            let out = model.wire_node("reduce", Reduce { axes: tvec![axis], reducer }, &[src]).unwrap();
            model.select_output_outlets(&out).unwrap();
            let want = model.clone().into_runnable().unwrap().run(tvec![input.clone().into()]).unwrap();
            let count = patch_model(&mut model, &KernelChoice::default()).unwrap();
            if Isa::fast().is_some() {
                assert_eq!(count.reductions, 1, "{reducer:?} on {shape:?} not replaced");
            }
            let got = model.into_runnable().unwrap().run(tvec![input.clone().into()]).unwrap();
            assert_eq!(got[0].datum_type(), want[0].datum_type());
            assert_eq!(got[0].shape(), want[0].shape());
            // Bitwise, NaNs included.
            let bits = |t: &tract_onnx::prelude::Tensor| -> Vec<u64> {
                if t.datum_type() == i64::datum_type() {
                    t.to_plain_array_view::<i64>().unwrap().iter().map(|v| *v as u64).collect()
                } else {
                    t.to_plain_array_view::<f32>().unwrap().iter().map(|v| v.to_bits() as u64).collect()
                }
            };
            assert_eq!(bits(&got[0]), bits(&want[0]), "{reducer:?} over axis {axis} of {shape:?}");
        }
    }
}

/// Two deconvolutions added and clamped at 0 (LitePose's heads): the addition and the ReLU
/// run in one deconvolution's output pass; the result is tract's to the deconvolutions'
/// rounding, and a negative sum still comes out as 0.
#[test]
fn deconv_addition_and_relu_fuse_into_the_deconvolution() {
    use tract_onnx::tract_core::ops::cnn::{Deconv, KernelFormat, PoolSpec};
    use tract_onnx::tract_core::ops::math;
    let mut rng = SplitMix64(21);
    let (c_in, c_out, h, w) = (6, 5, 9, 11);
    let mut model = TypedModel::default();
    let mut deconv = |model: &mut TypedModel, name: &str, x: OutletId| -> OutletId {
        let k: Vec<f32> = (0..c_out * c_in * 16).map(|_| rng.unit_f32() - 0.5).collect();
        let k = tract_ndarray::ArrayD::from_shape_vec(vec![c_out, c_in, 4, 4], k).unwrap().into_tensor();
        let kernel = model.add_const(format!("{name}.k"), k).unwrap();
        let b: Vec<f32> = (0..c_out).map(|i| i as f32 * 0.1 - 0.2).collect();
        let bias = model.add_const(format!("{name}.b"), tract_ndarray::ArrayD::from_shape_vec(vec![c_out], b).unwrap().into_tensor()).unwrap();
        let pool_spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![4, 4],
            padding: PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1]),
            dilations: None,
            strides: Some(tvec![2, 2]),
            input_channels: c_in,
            output_channels: c_out,
        };
        let op = Deconv { pool_spec, kernel_format: KernelFormat::OIHW, adjustments: tvec![0, 0], group: 1 };
        model.wire_node(name, op, &[x, kernel, bias]).unwrap()[0]
    };
    let xa = model.add_source("a", f32::fact([1, c_in, h, w])).unwrap();
    let xb = model.add_source("b", f32::fact([1, c_in, h, w])).unwrap();
    let a = deconv(&mut model, "da", xa);
    let b = deconv(&mut model, "db", xb);
    let sum = model.wire_node("sum", math::add(), &[a, b]).unwrap()[0];
    let zero = model.add_const("zero", tract_ndarray::ArrayD::from_shape_vec(vec![1, 1, 1, 1], vec![0f32]).unwrap().into_tensor()).unwrap();
    let relu = model.wire_node("relu", math::max(), &[sum, zero]).unwrap();
    model.select_output_outlets(&relu).unwrap();
    let input = |seed| {
        let mut r = SplitMix64(seed);
        tract_ndarray::ArrayD::from_shape_vec(vec![1, c_in, h, w], (0..c_in * h * w).map(|_| r.unit_f32() * 2.0 - 1.0).collect()).unwrap().into_tensor()
    };
    let inputs = tvec![input(1).into(), input(2).into()];
    let want = model.clone().into_runnable().unwrap().run(inputs.clone()).unwrap();
    let count = patch_model(&mut model, &KernelChoice::default()).unwrap();
    if Isa::fast().is_some() {
        assert_eq!((count.deconvs, count.fused_deconv_tails), (2, 2), "{count:?}");
        assert!(model.nodes().iter().all(|n| n.name != "sum" && n.name != "relu"), "the addition and the ReLU are left in the graph");
    }
    let got = model.into_runnable().unwrap().run(inputs).unwrap();
    let (g, w) = (got[0].to_plain_array_view::<f32>().unwrap(), want[0].to_plain_array_view::<f32>().unwrap());
    assert_eq!(g.shape(), w.shape());
    assert!(w.iter().any(|v| *v == 0.0) && w.iter().any(|v| *v > 0.0), "the case clamps some outputs and not others");
    for (a, b) in g.iter().zip(w.iter()) {
        assert!((a - b).abs() <= 1e-5, "{a} vs tract {b}");
        assert!(*a >= 0.0);
    }
}

/// A pointwise expansion (few inputs, a large output), its ReLU6 and the 7x7 stride-2
/// depthwise convolution that alone reads it become one op; the result is tract's to the
/// convolutions' rounding. An expansion with a second reader stays apart.
#[test]
fn expansion_into_a_blocked_depthwise_fuses_where_it_is_large() {
    use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PoolSpec};
    use tract_onnx::tract_core::ops::math;
    let mut rng = SplitMix64(31);
    let (c_in, c, h, w) = (16, 32, 224, 224);
    let mut conv = |model: &mut TypedModel, name: &str, x: OutletId, ci: usize, co: usize, k: usize, stride: usize, group: usize| -> OutletId {
        let n = co * ci / group * k * k;
        let kernel = tract_ndarray::ArrayD::from_shape_vec(vec![co, ci / group, k, k], (0..n).map(|_| rng.unit_f32() - 0.5).collect()).unwrap();
        let kernel = model.add_const(format!("{name}.k"), kernel.into_tensor()).unwrap();
        let bias = tract_ndarray::ArrayD::from_shape_vec(vec![co], (0..co).map(|_| rng.unit_f32() - 0.5).collect()).unwrap();
        let bias = model.add_const(format!("{name}.b"), bias.into_tensor()).unwrap();
        let p = k / 2;
        let pool_spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![k, k],
            padding: PaddingSpec::Explicit(tvec![p, p], tvec![p, p]),
            dilations: None,
            strides: Some(tvec![stride, stride]),
            input_channels: ci,
            output_channels: co,
        };
        model.wire_node(name, Conv { pool_spec, kernel_fmt: KernelFormat::OIHW, group, q_params: None }, &[x, kernel, bias]).unwrap()[0]
    };
    for second_reader in [false, true] {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, c_in, h, w])).unwrap();
        let e = conv(&mut model, "expand", x, c_in, c, 1, 1, 1);
        let zero = model.add_const("zero", tract_ndarray::ArrayD::from_shape_vec(vec![1, 1, 1, 1], vec![0f32]).unwrap().into_tensor()).unwrap();
        let six = model.add_const("six", tract_ndarray::ArrayD::from_shape_vec(vec![1, 1, 1, 1], vec![6f32]).unwrap().into_tensor()).unwrap();
        let lo = model.wire_node("relu6.lo", math::max(), &[e, zero]).unwrap()[0];
        let e6 = model.wire_node("relu6.hi", math::min(), &[lo, six]).unwrap()[0];
        let d = conv(&mut model, "dw", e6, c, c, 7, 2, c);
        let mut outputs = vec![d];
        if second_reader {
            outputs.push(e6);
        }
        model.select_output_outlets(&outputs).unwrap();
        let mut r = SplitMix64(32);
        let input = tract_ndarray::ArrayD::from_shape_vec(vec![1, c_in, h, w], (0..c_in * h * w).map(|_| r.unit_f32() * 4.0 - 2.0).collect()).unwrap().into_tensor();
        let want = model.clone().into_runnable().unwrap().run(tvec![input.clone().into()]).unwrap();
        let count = patch_model(&mut model, &KernelChoice::default()).unwrap();
        #[cfg(target_arch = "x86_64")]
        let avx512 = Isa::fast() == Some(Isa::Avx512);
        #[cfg(not(target_arch = "x86_64"))]
        let avx512 = false;
        assert_eq!(count.fused_expansions, usize::from(avx512 && !second_reader), "second reader {second_reader}: {count:?}");
        let got = model.into_runnable().unwrap().run(tvec![input.into()]).unwrap();
        let (g, w) = (got[0].to_plain_array_view::<f32>().unwrap(), want[0].to_plain_array_view::<f32>().unwrap());
        assert_eq!(g.shape(), w.shape());
        for (a, b) in g.iter().zip(w.iter()) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs tract {b}");
        }
    }
}

/// A pointwise expansion computed into the ring gives bitwise what the pointwise kernel
/// writes and the blocked kernel then reads: channels around the block size, kernels 3-7,
/// strides 1-2, uneven padding, odd widths, with and without clamps, on one thread and on
/// two (row bands, whose halo rows are expanded again).
#[cfg(target_arch = "x86_64")]
#[test]
fn expansion_in_the_ring_is_bitwise_the_two_kernels() {
    use super::conv::PackedConv;
    use super::dw_blocked::Expansion;
    use super::spec::{Clamp, ConvSpec};
    use super::strategy::ConvStrategy;
    if !choice::avx512_or_skip("expansion_in_the_ring_is_bitwise_the_two_kernels") {
        return;
    }
    let mut rng = SplitMix64(77);
    let choice = KernelChoice::default();
    for case in 0..40 {
        let threads = 1 + case % 2;
        pool::set_threads(threads).unwrap();
        let c_in = 1 + rng.below(40);
        let c = [16, 17, 32, 40, 96, 5][case % 6];
        let k = [3, 5, 7][rng.below(3)];
        let stride = 1 + rng.below(2);
        let (h, w) = (3 + rng.below(30), 3 + rng.below(40));
        let (pt, pl) = (rng.below(k), rng.below(k));
        let relu6 = Clamp { lo: 0.0, hi: 6.0 };
        let (clamp_e, clamp_d) = if case % 3 == 0 { (Clamp::NONE, Clamp::NONE) } else { (relu6, relu6) };
        let pw = ConvSpec { c_in, c_out: c, group: 1, kernel: [1, 1], stride: [1, 1], dilation: [1, 1], pad_before: [0, 0], pad_after: [0, 0] };
        let dw = ConvSpec { c_in: c, c_out: c, group: c, kernel: [k, k], stride: [stride; 2], dilation: [1, 1], pad_before: [pt, pl], pad_after: [k - 1 - pt, k / 2] };
        let Some((oh, ow)) = dw.output_hw(h, w) else { continue };
        let pw_w: Vec<f32> = (0..c * c_in).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
        let dw_w: Vec<f32> = (0..c * k * k).map(|_| rng.unit_f32() * 2.0 - 1.0).collect();
        let (pw_b, dw_b): (Vec<f32>, Vec<f32>) = ((0..c).map(|_| rng.unit_f32() - 0.5).collect(), (0..c).map(|_| rng.unit_f32() - 0.5).collect());
        let input: Vec<f32> = (0..c_in * h * w).map(|_| rng.unit_f32() * 4.0 - 2.0).collect();
        let pointwise = PackedConv::plan(pw, &pw_w, clamp_e, Isa::Avx512, h, w, &choice);
        let depthwise = PackedConv::with_strategy(dw, &dw_w, clamp_d, Isa::Avx512, h, w, ConvStrategy::DepthwiseBlocked).expect("blocked takes it");
        let par = |n: usize, f: &(dyn Fn(usize) + Sync)| pool::parallel(n, f);
        let mut mid = vec![f32::NAN; c * h * w];
        pointwise.run(&input, h, w, &pw_b, &mut mid, &par);
        let mut want = vec![f32::NAN; c * oh * ow];
        depthwise.run(&mid, h, w, &dw_b, &mut want, &par);
        let e = Expansion::new(c_in, c, &pointwise.oihw(), &pw_b, clamp_e);
        let mut got = vec![f32::NAN; c * oh * ow];
        depthwise.run_expanded(&e, &input, &dw_b, &mut got, &par).expect("blocked");
        for (i, (g, x)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), x.to_bits(), "case {case}: {c_in}->{c} k{k} s{stride} {h}x{w} pad {pt},{pl} at {i}: {g} vs {x}");
        }
    }
    pool::set_threads(1).unwrap();
}
