//! Per-op time of edgesight's CPU plan for an ONNX file (as exported by `bench --export-onnx`).
//! usage: cargo run --release --example profile_ops -- MODEL_NAME FILE.onnx HxW [RUNS] [THREADS]
//! EDGESIGHT_DW, EDGESIGHT_DENSE, EDGESIGHT_TRACT_ONLY choose kernels (`KernelChoice::from_env`).
use edgesight::catalog::{Catalog, DType, SizeRule};
use edgesight::engine::cpu_kernels::KernelChoice;
use edgesight::engine::tract_cpu::{set_threads, CpuOptions, TractEngine};
use edgesight::engine::{Tensor, TensorData};
use std::collections::BTreeMap;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (name, file, hw) = (&args[1], &args[2], &args[3]);
    let runs: usize = args.get(4).map_or(5, |r| r.parse().unwrap());
    let threads = args.get(5).map_or(1, |t| t.parse().unwrap());
    set_threads(threads)?;
    let (h, w) = hw.split_once('x').map(|(h, w)| (h.parse().unwrap(), w.parse().unwrap())).unwrap();
    let mut spec = Catalog::builtin().get(name)?.clone();
    spec.input.size = SizeRule::Fixed { height: h, width: w };
    let shape = spec.input_shape(h, w).to_vec();
    let options = CpuOptions { threads, kernels: KernelChoice::from_env()? };
    let mut engine = TractEngine::load(std::path::Path::new(file), &spec, &shape, &options)?;
    let n: usize = shape.iter().product();
    let mut rng = edgesight::rng::SplitMix64(7);
    let data = match spec.input.dtype {
        DType::F32 => TensorData::F32((0..n).map(|_| rng.unit_f32()).collect()),
        DType::I32 => TensorData::I32((0..n).map(|_| (rng.unit_f32() * 255.0) as i32).collect()),
    };
    let input = Tensor { shape, data };
    engine.profile(&input, 1)?;
    let times = engine.profile(&input, runs)?;
    let total: f64 = times.iter().map(|t| t.seconds).sum();
    let mut by_op: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for t in &times {
        let e = by_op.entry(t.op.clone()).or_default();
        e.0 += t.seconds;
        e.1 += 1;
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1 .0.partial_cmp(&a.1 .0).unwrap());
    println!("total {:.2} ms per run", total * 1000.0 / runs as f64);
    for (op, (s, c)) in &ops {
        println!("{:>6.1}% {:>8.2} ms  {:>4} x {}", 100.0 * s / total, s * 1000.0 / runs as f64, c, op);
    }
    let mut nodes: Vec<_> = times.iter().filter(|t| t.seconds > 0.0).collect();
    nodes.sort_by(|a, b| b.seconds.partial_cmp(&a.seconds).unwrap());
    let top: usize = std::env::var("TOP").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
    for t in nodes.iter().take(top) {
        println!("{:>6.2} ms {:<20} {:?} {} | {}", t.seconds * 1000.0 / runs as f64, t.op, t.output_shape, t.node, t.info);
    }
    Ok(())
}
