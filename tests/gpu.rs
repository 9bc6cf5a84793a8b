//! GPU backend (wgpu compute shaders) against tract on the same ONNX graphs. CI runs these on
//! Mesa's lavapipe (a CPU Vulkan driver); without any adapter they skip with a message, unless
//! EDGESIGHT_REQUIRE_GPU=1 (set by .ci/run) makes a missing adapter a failure.

mod common;

use common::{gpu_available, tract_outputs};
use edgesight::catalog::DType;
use edgesight::convert;
use edgesight::engine::gpu::graph::PlanOptions;
use edgesight::engine::gpu::GpuEngine;
use edgesight::engine::{Engine, Tensor, TensorData};
use edgesight::rng::SplitMix64;

/// Max |gpu - cpu| over the reference's range (max - min), per output.
fn compare(label: &str, onnx: &[u8], input: &Tensor, opts: &PlanOptions, tolerance: f32) -> GpuEngine {
    let dtype = match input.data {
        TensorData::F32(_) => DType::F32,
        TensorData::I32(_) => DType::I32,
    };
    let mut engine = GpuEngine::load_with(onnx, label, dtype, &input.shape, opts).unwrap_or_else(|e| panic!("{label}: {e:#}"));
    let got = engine.run(input).unwrap_or_else(|e| panic!("{label}: {e:#}"));
    let want = tract_outputs(onnx, input);
    assert_eq!(got.len(), want.len(), "{label}: output count");
    for (i, (g, (wshape, w))) in got.iter().zip(&want).enumerate() {
        assert_eq!(&g.shape, wshape, "{label}: output {i} shape");
        let g = g.as_f32().unwrap();
        let (lo, hi) = w.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let range = (hi - lo).max(1e-6);
        let mut worst = 0f32;
        for (a, b) in g.iter().zip(w) {
            let d = (a - b).abs();
            assert!(d.is_finite() || (a.is_nan() && b.is_nan()), "{label}: output {i}: {a} vs {b}");
            worst = worst.max(d);
        }
        eprintln!("{label}: output {i} {wshape:?}: max |diff| {worst:.3e}, range {range:.3e}, ratio {:.2e}", worst / range);
        assert!(worst <= tolerance * range, "{label}: output {i}: max |diff| {worst} > {tolerance} x range {range}");
    }
    eprintln!("{label}: {}", engine.summary());
    engine
}

fn random_f32(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
    let mut r = SplitMix64(seed);
    let n = shape.iter().product();
    Tensor::f32(shape.to_vec(), (0..n).map(|_| lo + (hi - lo) * r.unit_f32()).collect())
}

fn model_file(name: &str) -> Vec<u8> {
    std::fs::read(common::repo("models").join(name)).unwrap()
}

#[test]
fn selfie_matches_tract() {
    if !gpu_available() {
        return;
    }
    // A photograph with people (random noise gives a nearly constant mask).
    let spec = edgesight::catalog::Catalog::builtin().get("selfie").unwrap().clone();
    let frame = edgesight::frame::Frame::load_image(&common::data("coco/000000196141.jpg")).unwrap();
    let (x, _) = edgesight::preprocess::prepare(&spec, &frame);
    let e = compare("selfie", &model_file("selfie.onnx"), &x, &PlanOptions::default(), 1e-3);
    assert!(e.tail_ops().is_empty(), "selfie runs entirely on the GPU");
}

#[test]
fn meet_matches_tract() {
    if !gpu_available() {
        return;
    }
    let x = random_f32(&[1, 144, 256, 3], 2, 0.0, 1.0);
    compare("meet", &model_file("meet.onnx"), &x, &PlanOptions::default(), 1e-3);
}

#[test]
fn movenet_matches_tract() {
    if !gpu_available() {
        return;
    }
    let mut r = SplitMix64(3);
    // Not square, as frames are (the planner must not mix up height and width).
    let shape = vec![1, 256, 384, 3];
    let x = Tensor { shape: shape.clone(), data: TensorData::I32((0..256 * 384 * 3).map(|_| (r.unit_f32() * 255.0) as i32).collect()) };
    let e = compare("movenet", &model_file("movenet-multipose.onnx"), &x, &PlanOptions::default(), 1e-3);
    // The decoder (TopK, GatherND...) stays on the CPU; the backbone must not.
    let tail = e.tail_ops();
    assert!(tail.iter().any(|o| o == "TopK"), "{tail:?}");
    assert!(!tail.iter().any(|o| o == "Conv" || o == "Resize"), "backbone ops fell back to the CPU: {tail:?}");
}

fn built(arch: &str, h: usize, w: usize) -> Vec<u8> {
    let arch = convert::arch(arch).unwrap();
    convert::build(arch, &convert::random_entries(arch, 7), h, w).unwrap().onnx
}

#[test]
fn litepose_xs_matches_tract() {
    if !gpu_available() {
        return;
    }
    let x = random_f32(&[1, 3, 256, 256], 4, -2.0, 2.0);
    let e = compare("litepose-xs", &built("litepose-xs", 256, 256), &x, &PlanOptions::default(), 1e-3);
    assert!(e.tail_ops().is_empty());
}

#[test]
fn bevanet_s_matches_tract() {
    if !gpu_available() {
        return;
    }
    let x = random_f32(&[1, 3, 256, 512], 5, -2.0, 2.0);
    let e = compare("bevanet-s", &built("bevanet-s", 256, 512), &x, &PlanOptions::default(), 1e-3);
    assert!(e.tail_ops().is_empty());
}

/// Raw outputs on real photographs, then the decoded people and masks, GPU against CPU.
#[test]
fn decoded_people_and_masks_agree_on_photos() {
    use edgesight::catalog::Catalog;
    use edgesight::decode::{PoseThresholds, Segmentation};
    use edgesight::engine::{Backend, EngineOptions};
    use edgesight::frame::Frame;
    use edgesight::session::{ModelSession, StageTimes};
    if !gpu_available() {
        return;
    }
    let catalog = Catalog::builtin();
    let open = |name: &str, backend: Backend| {
        let spec = catalog.get(name).unwrap().clone();
        let path = edgesight::catalog::models_dir().join(&spec.file);
        ModelSession::open(spec, &path, &EngineOptions { backend, ..Default::default() }).unwrap()
    };
    let th = PoseThresholds::default();
    let mut times = StageTimes::default();
    for file in ["000000000785.jpg", "000000196141.jpg"] {
        let frame = Frame::load_image(&common::data("coco").join(file)).unwrap();
        // Raw MoveNet outputs within 1e-3 of their range.
        let mut cpu = open("movenet-multipose", Backend::Cpu);
        let mut gpu = open("movenet-multipose", Backend::Gpu);
        let (input, _) = edgesight::preprocess::prepare(&cpu.spec, &frame);
        let want = cpu.prepare_for(frame.width, frame.height).unwrap().run(&input).unwrap();
        let got = gpu.prepare_for(frame.width, frame.height).unwrap().run(&input).unwrap();
        let (w, g) = (want[0].as_f32().unwrap(), got[0].as_f32().unwrap());
        let (lo, hi) = w.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let worst = w.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        eprintln!("{file}: movenet raw max |diff| {worst:.3e} over range {:.3e}", hi - lo);
        assert!(worst <= 1e-3 * (hi - lo), "{file}: movenet raw outputs differ by {worst}");
        // The same people, joints within a pixel.
        let a = cpu.pose(&frame, th, &mut times).unwrap();
        let b = gpu.pose(&frame, th, &mut times).unwrap();
        assert_eq!(a.len(), b.len(), "{file}: people");
        assert!(!a.is_empty(), "{file}: nobody found");
        for (p, q) in a.iter().zip(&b) {
            assert!((p.score - q.score).abs() < 0.01, "{file}: person score {} vs {}", p.score, q.score);
            for (k, l) in p.keypoints.iter().zip(&q.keypoints) {
                let d = ((k.x - l.x).powi(2) + (k.y - l.y).powi(2)).sqrt();
                assert!(d < 1.0 || k.score < 0.3, "{file}: a joint moved {d} px");
            }
        }
        // The same mask.
        let mut cpu = open("selfie", Backend::Cpu);
        let mut gpu = open("selfie", Backend::Gpu);
        let (Segmentation::Person(a), Segmentation::Person(b)) = (cpu.segment(&frame, &mut times).unwrap(), gpu.segment(&frame, &mut times).unwrap())
        else {
            panic!("selfie gives a person mask")
        };
        let worst = a.probs.iter().zip(&b.probs).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        eprintln!("{file}: selfie mask max |diff| {worst:.3e}");
        assert!(worst < 1e-3, "{file}: masks differ by {worst}");
    }
}

/// Top-down pose (detector, then a single-person model per crop) on the GPU gives the people it
/// gives on the CPU: the same count on a photo of five people, joints within a pixel.
#[test]
fn topdown_pose_agrees_on_the_gpu() {
    use edgesight::analyzer::{AnalysisTimes, Analyzer, ModelChoice};
    use edgesight::decode::PoseThresholds;
    use edgesight::engine::{Backend, EngineOptions};
    use edgesight::frame::Frame;
    if !gpu_available() {
        return;
    }
    let frame = Frame::load_image(&common::data("coco").join("000000197388.jpg")).unwrap();
    let people = |backend: Backend| {
        let choice = ModelChoice { pose: Some("topdown-lightning".into()), engine: EngineOptions { backend, ..Default::default() }, ..Default::default() };
        let mut a = Analyzer::new(&choice, PoseThresholds::default()).unwrap();
        a.analyze(&frame, &mut AnalysisTimes::default()).unwrap().people
    };
    let (cpu, gpu) = (people(Backend::Cpu), people(Backend::Gpu));
    eprintln!("top-down on the GPU: {} people (CPU {})", gpu.len(), cpu.len());
    assert_eq!(cpu.len(), gpu.len());
    assert!(cpu.len() >= 4, "only {} people", cpu.len());
    for (p, q) in cpu.iter().zip(&gpu) {
        assert!((p.score - q.score).abs() < 0.02, "person score {} vs {}", p.score, q.score);
        for (k, l) in p.keypoints.iter().zip(&q.keypoints) {
            let d = ((k.x - l.x).powi(2) + (k.y - l.y).powi(2)).sqrt();
            assert!(d < 1.0 || k.score < 0.3, "a joint moved {d} px");
        }
    }
}
