//! Person masks from [1, H, W, C] outputs: a probability channel, or softmax over logits.

use crate::detections::Mask;
use crate::tensor::Tensor;
use crate::preprocess::Transform;
use anyhow::{bail, Result};

pub fn check_shape(shape: &[usize], channel: usize) -> Result<()> {
    if shape.len() != 4 || shape[0] != 1 || shape[1] == 0 || shape[2] == 0 || shape[3] <= channel {
        bail!("segmentation output has shape {shape:?}, expected [1, H, W, C] with C > {channel}");
    }
    Ok(())
}

pub fn decode(out: &Tensor, t: &Transform, channel: usize, softmax: bool) -> Result<Mask> {
    check_shape(&out.shape, channel)?;
    let Some(v) = out.as_f32() else { bail!("segmentation output is not float32") };
    let (h, w, c) = (out.shape[1], out.shape[2], out.shape[3]);
    let probs = v
        .chunks_exact(c)
        .map(|px| {
            if softmax {
                let m = px.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = px.iter().map(|&l| (l - m).exp()).sum();
                (px[channel] - m).exp() / sum
            } else {
                px[channel].clamp(0.0, 1.0)
            }
        })
        .collect();
    Ok(Mask { width: w, height: h, probs, region: t.frame_on_grid(w, h) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn softmax_picks_channel_and_coverage_counts_half() {
        let spec = Catalog::builtin().get("meet").unwrap().clone();
        let t = Transform::new(&spec, 256, 144);
        // 2x2 logits: two pixels person, two background.
        let v = vec![0.0, 5.0, 0.0, 5.0, 5.0, 0.0, 5.0, 0.0];
        let out = Tensor::f32(vec![1, 2, 2, 2], v);
        let m = decode(&out, &t, 1, true).unwrap();
        assert!((m.probs[0] - 0.9933).abs() < 1e-3);
        assert_eq!(m.coverage(), 0.5);
        assert!((m.sample(0.0, 0.0, 256, 144) - m.probs[0]).abs() < 1e-6);
        assert!(check_shape(&[1, 2, 2, 1], 1).is_err());
    }
}
