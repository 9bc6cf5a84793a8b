//! Strict, by-name access to a checkpoint's tensors while a graph is built: every key the
//! architecture asks for must exist with the expected shape, and every key in the file must be
//! asked for. All problems are collected and reported together, like `load_state_dict(strict=True)`.

use anyhow::{bail, Result};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// PyTorch's BatchNorm epsilon default, used by every BN in LitePose and BEVANet.
pub const BN_EPS: f32 = 1e-5;

pub struct Weights {
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    used: RefCell<BTreeSet<String>>,
    /// Every (name, shape) asked for, in build order.
    requested: RefCell<Vec<(String, Vec<usize>)>>,
    missing: RefCell<Vec<String>>,
    misshaped: RefCell<Vec<String>>,
}

/// A BatchNorm in inference form: y = x * scale + shift, per channel.
#[derive(Debug, Clone)]
pub struct Affine {
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

fn shape_str(s: &[usize]) -> String {
    if s.is_empty() {
        "scalar".into()
    } else {
        s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
    }
}

impl Weights {
    /// Entries as (name, shape, values as f32); integer buffers are converted.
    pub fn new(entries: Vec<(String, Vec<usize>, Vec<f32>)>) -> Weights {
        Weights {
            tensors: entries.into_iter().map(|(n, s, v)| (n, (s, v))).collect(),
            used: RefCell::default(),
            requested: RefCell::default(),
            missing: RefCell::default(),
            misshaped: RefCell::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|(s, _)| s.as_slice())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The values of `name`, which must have `shape`. On a problem, records it and returns
    /// zeros so that building goes on and every problem is found in one pass.
    pub fn take(&self, name: &str, shape: &[usize]) -> Vec<f32> {
        self.used.borrow_mut().insert(name.to_string());
        self.requested.borrow_mut().push((name.to_string(), shape.to_vec()));
        match self.tensors.get(name) {
            None => {
                self.missing.borrow_mut().push(format!("{name} ({})", shape_str(shape)));
                vec![0.0; shape.iter().product()]
            }
            Some((s, _)) if s.as_slice() != shape => {
                self.misshaped.borrow_mut().push(format!(
                    "{name}: checkpoint has {}, the architecture needs {}",
                    shape_str(s),
                    shape_str(shape)
                ));
                vec![0.0; shape.iter().product()]
            }
            Some((_, v)) => v.clone(),
        }
    }

    /// Every (name, shape) the architecture asked for so far, in build order.
    pub fn requested(&self) -> Vec<(String, Vec<usize>)> {
        self.requested.borrow().clone()
    }

    /// A buffer that may be absent (PyTorch tolerates a missing `num_batches_tracked`).
    pub fn take_optional(&self, name: &str, shape: &[usize]) {
        if self.tensors.contains_key(name) {
            self.take(name, shape);
        }
    }

    /// BatchNorm2d at `prefix` with `c` channels, as scale and shift.
    pub fn batch_norm(&self, prefix: &str, c: usize) -> Affine {
        let gamma = self.take(&format!("{prefix}.weight"), &[c]);
        let beta = self.take(&format!("{prefix}.bias"), &[c]);
        let mean = self.take(&format!("{prefix}.running_mean"), &[c]);
        let var = self.take(&format!("{prefix}.running_var"), &[c]);
        self.take_optional(&format!("{prefix}.num_batches_tracked"), &[]);
        let scale: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + BN_EPS).sqrt()).collect();
        let shift = beta.iter().zip(&mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
        Affine { scale, shift }
    }

    /// Marks every key under `prefix` as known but unused (e.g. training-only heads).
    pub fn skip_prefix(&self, prefix: &str) {
        let mut used = self.used.borrow_mut();
        for k in self.tensors.keys().filter(|k| k.starts_with(prefix)) {
            used.insert(k.clone());
        }
    }

    /// Fails listing missing, unexpected and mis-shaped keys, if any.
    pub fn finish(&self, what: &str) -> Result<()> {
        let used = self.used.borrow();
        let unexpected: Vec<&String> = self.tensors.keys().filter(|k| !used.contains(*k)).collect();
        let missing = self.missing.borrow();
        let misshaped = self.misshaped.borrow();
        if missing.is_empty() && unexpected.is_empty() && misshaped.is_empty() {
            return Ok(());
        }
        let mut msg = format!("the checkpoint does not match {what}:");
        let mut list = |title: &str, items: Vec<String>| {
            if !items.is_empty() {
                msg.push_str(&format!("\n  {title} ({}):", items.len()));
                for i in items.iter().take(40) {
                    msg.push_str(&format!("\n    {i}"));
                }
                if items.len() > 40 {
                    msg.push_str(&format!("\n    ... and {} more", items.len() - 40));
                }
            }
        };
        list("missing keys", missing.clone());
        list("unexpected keys", unexpected.iter().map(|s| s.to_string()).collect());
        list("mis-shaped keys", misshaped.clone());
        bail!(msg)
    }
}

/// Folds a per-output-channel affine into conv weights [O, ...] (and a bias).
pub fn fold_into_conv(weight: &mut [f32], bias: Option<&[f32]>, bn: &Affine) -> Vec<f32> {
    let o = bn.scale.len();
    let per = weight.len() / o;
    for (c, chunk) in weight.chunks_mut(per).enumerate() {
        chunk.iter_mut().for_each(|w| *w *= bn.scale[c]);
    }
    (0..o).map(|c| bias.map_or(0.0, |b| b[c]) * bn.scale[c] + bn.shift[c]).collect()
}

/// Folds a per-output-channel scale into ConvTranspose weights laid out [I, O, kh, kw].
pub fn scale_deconv(weight: &mut [f32], shape: &[usize], scale: &[f32]) {
    let (i_ch, o_ch) = (shape[0], shape[1]);
    let area = shape[2] * shape[3];
    debug_assert_eq!(scale.len(), o_ch);
    for i in 0..i_ch {
        for (o, s) in scale.iter().enumerate() {
            let start = (i * o_ch + o) * area;
            weight[start..start + area].iter_mut().for_each(|w| *w *= s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_checks_report_every_problem() {
        let w = Weights::new(vec![
            ("a.weight".into(), vec![2, 3], vec![0.0; 6]),
            ("b.weight".into(), vec![4], vec![0.0; 4]),
            ("extra".into(), vec![1], vec![0.0]),
        ]);
        w.take("a.weight", &[2, 3]);
        w.take("b.weight", &[5]);
        w.take("c.weight", &[1]);
        let e = w.finish("test-net").unwrap_err().to_string();
        assert!(e.contains("missing keys (1)") && e.contains("c.weight (1)"), "{e}");
        assert!(e.contains("unexpected keys (1)") && e.contains("extra"), "{e}");
        assert!(e.contains("b.weight: checkpoint has 4, the architecture needs 5"), "{e}");
    }

    #[test]
    fn batch_norm_folds_exactly() {
        let w = Weights::new(vec![
            ("bn.weight".into(), vec![1], vec![2.0]),
            ("bn.bias".into(), vec![1], vec![0.5]),
            ("bn.running_mean".into(), vec![1], vec![1.0]),
            ("bn.running_var".into(), vec![1], vec![4.0 - BN_EPS]),
        ]);
        let bn = w.batch_norm("bn", 1);
        assert!((bn.scale[0] - 1.0).abs() < 1e-6 && (bn.shift[0] + 0.5).abs() < 1e-6);
        w.finish("bn").unwrap();
        let mut conv = vec![1.0, 2.0];
        let b = fold_into_conv(&mut conv, None, &bn);
        assert_eq!(conv, vec![1.0, 2.0]);
        assert!((b[0] + 0.5).abs() < 1e-6);
    }
}
