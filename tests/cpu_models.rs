//! edgesight's CPU engine (tract with edgesight's kernels and fusions swapped in) against plain
//! tract on the bundled trained models, on a photograph: the rewrites must not change what
//! the models compute beyond float rounding.

mod common;

use edgesight::catalog::Catalog;
use edgesight::engine::cpu_kernels::EdgesightConv;
use edgesight::engine::tract_cpu::{optimize, CpuOptions, TractEngine};
use edgesight::engine::{Engine, TensorData};
use std::sync::{Mutex, MutexGuard};
use tract_onnx::prelude::*;

/// The CPU worker pool is one per process and every plan sets its size: the tests take turns.
static POOL: Mutex<()> = Mutex::new(());

fn pool() -> MutexGuard<'static, ()> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Max |edgesight - tract| / max |tract| over every output, and the optimised model, with the
/// CPU engine on `threads` worker threads.
fn compare(name: &str, threads: usize) -> (f32, TypedModel) {
    let spec = Catalog::builtin().get(name).unwrap().clone();
    let frame = edgesight::frame::Frame::load_image(&common::data("coco/000000196141.jpg")).unwrap();
    let (x, _) = edgesight::preprocess::prepare(&spec, &frame);
    let path = common::repo("models").join(format!("{name}.onnx"));
    // The plan sets the process's worker count: planned for 1 thread, the pool would shrink to 1.
    let mut engine = TractEngine::load(&path, &spec, &x.shape, &CpuOptions { threads, ..Default::default() }).unwrap();
    let got = engine.run(&x).unwrap();

    let want = common::tract_outputs(&std::fs::read(&path).unwrap(), &x);
    assert_eq!(got.len(), want.len());
    let mut worst = 0f32;
    for (g, (_, w)) in got.iter().zip(&want) {
        let TensorData::F32(g) = &g.data else { panic!("outputs are f32") };
        assert_eq!(g.len(), w.len());
        let scale = w.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let diff = g.iter().zip(w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        worst = worst.max(diff / scale);
    }
    let dt = match &x.data {
        TensorData::F32(_) => f32::datum_type(),
        TensorData::I32(_) => i32::datum_type(),
    };
    let optimised = optimize(
        tract_onnx::onnx().model_for_path(&path).unwrap().with_input_fact(0, InferenceFact::dt_shape(dt, &x.shape)).unwrap(),
        &Default::default(),
    )
    .unwrap();
    (worst, optimised)
}

#[test]
fn selfie_with_fused_hard_swish_matches_tract() {
    let _pool = pool();
    let (worst, model) = compare("selfie", 1);
    eprintln!("selfie: max |diff| / max |tract| {worst:.3e}");
    assert!(worst <= 1e-4, "selfie differs from tract: {worst}");
    // Where edgesight's kernels run (AVX2 or AVX-512), the hard swishes are fused into them.
    let convs: Vec<&EdgesightConv> = model.nodes.iter().filter_map(|n| n.op_as::<EdgesightConv>()).collect();
    if !convs.is_empty() {
        let fused = convs.iter().filter(|c| c.hard_swish.is_some()).count();
        assert!(fused >= 10, "only {fused} hard swishes fused");
        let means = model.nodes.iter().filter(|n| n.op().name() == "EdgesightPlaneMean").count();
        assert_eq!(means, 10, "squeeze-and-excite pools not on edgesight's plane mean");
    }
}

#[test]
fn movenet_matches_tract() {
    let _pool = pool();
    let (worst, model) = compare("movenet-multipose", 1);
    eprintln!("movenet: max |diff| / max |tract| {worst:.3e}");
    assert!(worst <= 1e-4, "movenet differs from tract: {worst}");
    // Where edgesight's kernels run, the decoder's Exp, strided ArgMax and short-row product
    // are edgesight's ops, so the comparison above covers them.
    if model.nodes.iter().any(|n| n.op_as::<EdgesightConv>().is_some()) {
        let names: Vec<String> = model.nodes.iter().map(|n| n.op().name().to_string()).collect();
        for op in ["EdgesightExp", "EdgesightReduceArgMax", "EdgesightReduceMax"] {
            assert!(names.iter().any(|n| n == op), "no {op} in the plan");
        }
        assert!(names.iter().filter(|n| *n == "EdgesightMul").count() >= 3, "the short-row products stayed in tract");
    }
}

#[test]
fn selfie_on_two_threads_matches_tract() {
    // With threads to split over, more element-wise ops leave tract's fused chains for the pool.
    let _pool = pool();
    edgesight::engine::tract_cpu::set_threads(2).unwrap();
    let (worst, model) = compare("selfie", 2);
    edgesight::engine::tract_cpu::set_threads(1).unwrap();
    eprintln!("selfie, 2 threads: max |diff| / max |tract| {worst:.3e}");
    assert!(worst <= 1e-4, "selfie on 2 threads differs from tract: {worst}");
    if model.nodes.iter().any(|n| n.op_as::<EdgesightConv>().is_some()) {
        let split = model.nodes.iter().filter(|n| n.op().name().starts_with("EdgesightAdd")).count();
        assert!(split >= 5, "only {split} additions split over the pool");
    }
}
