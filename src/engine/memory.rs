//! The memory a plan will need, known before anything is allocated, so a size that cannot fit
//! (`--pose-size 8192` on one image took over 9.7 GB) is refused with a message instead of
//! driving the machine into swap or the OOM killer.
//!
//! The estimate walks the typed graph in evaluation order with every tensor's concrete size:
//! the weights, plus the largest set of intermediate tensors alive at once (each lives from the
//! node that makes it to its last reader), times a margin for the kernels' padded copies and
//! scratch. Typing a graph computes shapes only; nothing of that size is allocated.

use anyhow::{bail, Result};
use std::collections::HashMap;
use tract_onnx::prelude::*;

/// Planned memory over the walk's estimate: padded input copies of the convolutions, packed
/// weights, the runtime's scratch. Measured (peak RSS of a whole image run, MoveNet MultiPose):
/// at --pose-size 384 / 768 / 1536 / 2048 the walk gave 47 / 133 / 473 / 800 MB and the process
/// peaked at 80 / 168 / 467 / 626 MB, of which about 25 MB is the program itself.
pub const MARGIN: f64 = 1.2;

/// How much memory one plan may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryLimit {
    /// What the machine has available when the plan is made (MemAvailable on Linux; no limit
    /// where the system does not say).
    #[default]
    Available,
    /// At most this many bytes (`--max-memory`).
    Bytes(u64),
}

/// Bytes needed to run `model`: weights + peak of the live intermediate tensors, with `MARGIN`.
pub fn estimate(model: &TypedModel) -> Result<u64> {
    let order = model.eval_order()?;
    let size_of = |o: OutletId| -> u64 {
        model.outlet_fact(o).ok().and_then(|f| f.shape.as_concrete().map(|s| s.iter().product::<usize>() as u64 * f.datum_type.size_of() as u64)).unwrap_or(0)
    };
    // Where each intermediate tensor is last read (model outputs: the end).
    let mut last_use: HashMap<OutletId, usize> = HashMap::new();
    for (i, &n) in order.iter().enumerate() {
        for input in &model.node(n).inputs {
            let e = last_use.entry(*input).or_insert(i);
            *e = (*e).max(i);
        }
    }
    for o in &model.outputs {
        last_use.insert(*o, order.len());
    }
    let mut weights = 0u64;
    let mut live = 0u64;
    let mut peak = 0u64;
    let mut frees: Vec<u64> = vec![0; order.len() + 1];
    for (i, &n) in order.iter().enumerate() {
        let node = model.node(n);
        let is_const = node.op_is::<tract_onnx::tract_core::ops::konst::Const>();
        for slot in 0..node.outputs.len() {
            let o = OutletId::new(n, slot);
            let bytes = size_of(o);
            if is_const {
                weights += bytes;
            } else {
                live += bytes;
                frees[last_use.get(&o).copied().unwrap_or(i).max(i)] += bytes;
            }
        }
        peak = peak.max(live);
        live -= frees[i].min(live);
    }
    Ok(((weights + peak) as f64 * MARGIN) as u64)
}

/// Bytes the system can hand out now without swapping (Linux: MemAvailable).
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// "1.5 GB" style sizes for messages.
pub fn shown(bytes: u64) -> String {
    let gb = bytes as f64 / 1e9;
    if gb >= 1.0 {
        format!("{gb:.1} GB")
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}

/// Fails when `needed` bytes exceed `limit`; `what` names the model and its input.
pub fn check(needed: u64, limit: MemoryLimit, what: &str) -> Result<()> {
    let (cap, whose) = match limit {
        MemoryLimit::Bytes(b) => (b, "the --max-memory limit"),
        MemoryLimit::Available => match available() {
            Some(a) => (a, "the memory this machine has available"),
            None => return Ok(()),
        },
    };
    if needed > cap {
        bail!(
            "{what} needs about {} of memory, more than {whose} ({}); use a smaller input size (--pose-size, --seg-size) or raise --max-memory",
            shown(needed),
            shown(cap)
        );
    }
    Ok(())
}

/// Parses "512M", "2G", "1.5GB", "800MB" or a plain number of megabytes.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let t = t.strip_suffix('B').unwrap_or(&t);
    let (num, unit) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1e3),
        Some('M') => (&t[..t.len() - 1], 1e6),
        Some('G') => (&t[..t.len() - 1], 1e9),
        Some('T') => (&t[..t.len() - 1], 1e12),
        _ => (t, 1e6),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * unit >= 1e6 => Ok((v * unit) as u64),
        _ => Err(format!("'{s}' is not a memory size of at least 1 MB (e.g. 800M, 2G)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512M"), Ok(512_000_000));
        assert_eq!(parse_size("2g"), Ok(2_000_000_000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("800"), Ok(800_000_000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("10K").is_err());
    }

    #[test]
    fn a_limit_refuses_with_the_sizes() {
        assert!(check(100, MemoryLimit::Bytes(200), "m").is_ok());
        let e = check(3_000_000_000, MemoryLimit::Bytes(2_000_000_000), "movenet at 8192x6144").unwrap_err().to_string();
        assert!(e.contains("3.0 GB") && e.contains("2.0 GB") && e.contains("--max-memory"), "{e}");
    }

    /// A chain x -> relu -> relu -> output: two activations alive at once at most, the
    /// estimate grows with the input size.
    #[test]
    fn the_estimate_follows_live_tensors() {
        let build = |n: usize| -> TypedModel {
            let mut m = TypedModel::default();
            let x = m.add_source("x", f32::fact([n])).unwrap();
            let a = m.wire_node("a", tract_onnx::tract_core::ops::math::abs(), &[x]).unwrap();
            let b = m.wire_node("b", tract_onnx::tract_core::ops::math::abs(), &a).unwrap();
            m.select_output_outlets(&b).unwrap();
            m
        };
        let small = estimate(&build(1000)).unwrap();
        let big = estimate(&build(1_000_000)).unwrap();
        // Peak: two f32 tensors of n alive (input + one activation), times the margin.
        assert_eq!(small, (2.0 * 4000.0 * MARGIN) as u64);
        assert_eq!(big, (2.0 * 4_000_000.0 * MARGIN) as u64);
    }
}
