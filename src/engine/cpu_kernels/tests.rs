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

/// The modules of `cpu_kernels` name each other (`super::x`, `crate::engine::cpu_kernels::x`,
/// `super::super::x` from `ops/`) without a cycle, tests aside: shared types in `spec`, the
/// chooser in `strategy`, `conv` on top of the kernels.
#[test]
fn module_imports_are_acyclic() {
    use std::collections::{BTreeMap, BTreeSet};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine/cpu_kernels");
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("ops")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let module = |p: &std::path::Path| -> String {
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        if p.parent().unwrap().ends_with("ops") { "ops".into() } else { stem }
    };
    let names: BTreeSet<String> = files.iter().map(|p| module(p)).filter(|m| m != "mod" && m != "tests").collect();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &files {
        let m = module(p);
        if m == "mod" || m == "tests" {
            continue;
        }
        let in_ops = p.parent().unwrap().ends_with("ops");
        let text = std::fs::read_to_string(p).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let code: String = code.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n");
        let prefixes: &[&str] = if in_ops { &["super::super::", "crate::engine::cpu_kernels::"] } else { &["super::", "crate::engine::cpu_kernels::"] };
        let mut refs = BTreeSet::new();
        for prefix in prefixes {
            for (i, _) in code.match_indices(prefix) {
                // `super::super::x` seen from a top-level file is not a sibling.
                if !in_ops && *prefix == "super::" && code[..i].ends_with("super::") {
                    continue;
                }
                let rest = &code[i + prefix.len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    for part in group.split('}').next().unwrap().split(',') {
                        refs.insert(ident(part.trim()));
                    }
                } else {
                    refs.insert(ident(rest));
                }
            }
        }
        let edges = graph.entry(m.clone()).or_default();
        edges.extend(refs.into_iter().filter(|r| names.contains(r) && *r != m));
    }
    // Depth-first search for a back edge.
    fn visit(u: &str, graph: &BTreeMap<String, BTreeSet<String>>, state: &mut BTreeMap<String, u8>, path: &mut Vec<String>) {
        state.insert(u.into(), 1);
        path.push(u.into());
        for v in graph.get(u).into_iter().flatten() {
            match state.get(v.as_str()) {
                Some(1) => panic!("import cycle: {} -> {v}", path.join(" -> ")),
                Some(_) => {}
                None => visit(v, graph, state, path),
            }
        }
        path.pop();
        state.insert(u.into(), 2);
    }
    let mut state = BTreeMap::new();
    for u in graph.keys() {
        if !state.contains_key(u.as_str()) {
            visit(u, &graph, &mut state, &mut Vec::new());
        }
    }
    // The graph is read at all: conv names its kernels, winograd the direct kernel.
    assert!(graph["conv"].contains("strategy") && graph["conv"].contains("direct"), "{graph:?}");
    assert!(graph["winograd"].contains("direct") && !graph["direct"].contains("conv"), "{graph:?}");
}
