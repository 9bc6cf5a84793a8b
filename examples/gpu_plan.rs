//! The GPU plans of the shipped models without a GPU (planning is host-only): kernel count per
//! model, kernels by shader and fused ops, and how often each fusion rule applied.
//!
//!   cargo run --release --example gpu_plan [MODEL]     (MODEL: also list its kernels)

use edgesight::engine::gpu::graph::{plan, PlanOptions};
use tract_onnx::pb;

fn main() {
    let dir = edgesight::catalog::models_dir();
    let mut models: Vec<(String, Vec<u8>, Vec<usize>)> = vec![
        ("selfie".into(), std::fs::read(dir.join("selfie.onnx")).expect("models/selfie.onnx"), vec![1, 256, 256, 3]),
        ("meet".into(), std::fs::read(dir.join("meet.onnx")).expect("models/meet.onnx"), vec![1, 144, 256, 3]),
        ("movenet-multipose".into(), std::fs::read(dir.join("movenet-multipose.onnx")).expect("models/movenet-multipose.onnx"), vec![1, 288, 384, 3]),
    ];
    for (name, h, w) in [("litepose-xs", 256, 256), ("litepose-s", 448, 448), ("bevanet-s", 1024, 2048)] {
        let arch = edgesight::convert::arch(name).expect("architecture");
        let onnx = edgesight::convert::build(arch, &edgesight::convert::random_entries(arch, 1), h, w).expect("graph").onnx;
        models.push((name.into(), onnx, vec![1, 3, h, w]));
    }
    let list = std::env::args().nth(1);
    for (name, bytes, shape) in models {
        let model = <pb::ModelProto as prost::Message>::decode(&bytes[..]).expect("ONNX");
        // The default shaders (a real GPU may swap some for another variant by timing them when
        // the engine is built; the kernel count stays).
        let opts = PlanOptions { workgroup_bytes: 16384, ..Default::default() };
        let p = plan(&model, &shape, &opts).expect("plan");
        let mut by_shader = std::collections::BTreeMap::new();
        for k in &p.kernels {
            *by_shader.entry(k.shader.name()).or_insert(0) += 1;
        }
        println!("{name} {shape:?}: {} kernels {:?}; fusions {:?}", p.kernels.len(), by_shader, p.fusions);
        if list.as_deref() == Some(name.as_str()) {
            for k in &p.kernels {
                println!("  {} {:?}", k.describe(), k.space);
            }
        }
    }
}
