//! Official checkpoints -> ONNX graphs that edgesight's engines run.
//!
//! `edgesight convert` writes the ONNX file; a model description with an `arch` may also point
//! at the checkpoint itself, which is then converted in memory for each input size at load time.

pub mod bevanet;
pub mod litepose;
pub mod onnx;
pub mod weights;

use anyhow::{bail, Context, Result};
use std::path::Path;
use weights::Weights;

/// Entries as read from a checkpoint: (name, shape, values as f32).
pub type Entries = Vec<(String, Vec<usize>, Vec<f32>)>;

/// The architectures edgesight can build from official checkpoints.
#[derive(Debug, Clone, Copy)]
pub enum Arch {
    LitePose(&'static litepose::LitePoseConfig),
    BevaNet(&'static bevanet::BevaNetConfig),
}

pub fn arch_names() -> Vec<&'static str> {
    litepose::CONFIGS.iter().map(|c| c.name).chain(bevanet::CONFIGS.iter().map(|c| c.name)).collect()
}

pub fn arch(name: &str) -> Result<Arch> {
    if let Some(c) = litepose::config(name) {
        return Ok(Arch::LitePose(c));
    }
    if let Some(c) = bevanet::config(name) {
        return Ok(Arch::BevaNet(c));
    }
    bail!("unknown architecture '{name}' (known: {})", arch_names().join(", "))
}

/// The input size an architecture was trained at (LitePose graphs also accept other sizes).
pub fn default_input(arch: Arch) -> (usize, usize) {
    match arch {
        Arch::LitePose(c) => (c.input_size, c.input_size),
        // Cityscapes evaluation runs on the full 1024x2048 frame.
        Arch::BevaNet(_) => (1024, 2048),
    }
}

/// Whether `path` starts like a zip archive (torch.save writes zips; ONNX files never start so).
pub fn is_zip(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"PK\x03\x04"
}

/// Reads every tensor of an official checkpoint as f32 (integer buffers converted).
pub fn read_checkpoint(path: &Path) -> Result<Entries> {
    let sd = crate::checkpoint::load_torch(path)?;
    Ok(sd.tensors.into_iter().map(|t| (t.name, t.shape, t.data.f32_values())).collect())
}

/// What a built graph produces, for reports.
#[derive(Debug, Clone)]
pub struct Built {
    pub onnx: Vec<u8>,
    pub description: String,
}

/// Builds the ONNX graph of `arch` from checkpoint entries for an input of `height` x `width`.
pub fn build(arch: Arch, entries: &Entries, height: usize, width: usize) -> Result<Built> {
    match arch {
        Arch::LitePose(cfg) => {
            if height % 64 != 0 || width % 64 != 0 || height == 0 || width == 0 {
                bail!("{}: input {height}x{width} must be a positive multiple of 64 on both sides", cfg.name);
            }
            let head = entries.iter().find(|e| e.0 == "final_raw.1.conv.3.weight").map(|e| e.1.as_slice());
            let joints = litepose::joints_from_head(head)?;
            let w = Weights::new(entries.clone());
            let model = litepose::build(cfg, joints, &w)?;
            let schema = if joints == 17 { "COCO" } else { "CrowdPose" };
            Ok(Built { onnx: onnx::encode(&model), description: format!("{} ({joints} joints, {schema})", cfg.name) })
        }
        Arch::BevaNet(cfg) => {
            bevanet::check_input_size(height, width)?;
            let w = Weights::new(bevanet::deploy_entries(entries.clone()));
            let model = bevanet::build(cfg, &w, height, width)?;
            Ok(Built { onnx: onnx::encode(&model), description: format!("{} ({} classes)", cfg.name, cfg.num_classes) })
        }
    }
}

/// Converts a checkpoint file to an ONNX file.
pub fn convert_file(ckpt: &Path, arch_name: &str, out: &Path, height: usize, width: usize) -> Result<String> {
    let arch = arch(arch_name)?;
    if !ckpt.is_file() {
        bail!("checkpoint {} does not exist", ckpt.display());
    }
    let entries = read_checkpoint(ckpt)?;
    let built = build(arch, &entries, height, width).with_context(|| format!("checkpoint {}", ckpt.display()))?;
    std::fs::write(out, &built.onnx).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(built.description)
}

/// Seeded random entries with every key and shape `arch` needs: for speed measurements, which do
/// not depend on weight values. Scales keep activations in a normal range (no denormals).
pub fn random_entries(arch: Arch, seed: u64) -> Entries {
    // Build once against no weights: the strict loader lists every key it wanted, with shapes.
    let empty = Weights::new(vec![]);
    match arch {
        Arch::LitePose(cfg) => {
            let _ = litepose::build(cfg, 17, &empty);
        }
        Arch::BevaNet(cfg) => {
            let _ = bevanet::build(cfg, &empty, 64, 64);
        }
    }
    let mut rng = crate::rng::SplitMix64(seed);
    let mut next = move || rng.unit_f32();
    empty
        .requested()
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
            let values = if name.ends_with("running_var") || name.ends_with(".weight") && shape.len() == 1 {
                (0..n).map(|_| 0.5 + next()).collect()
            } else if name.ends_with("num_batches_tracked") {
                vec![0.0; n]
            } else {
                let a = (1.0 / fan_in as f32).sqrt();
                (0..n).map(|_| (next() * 2.0 - 1.0) * a).collect()
            };
            (name, shape, values)
        })
        .collect()
}
