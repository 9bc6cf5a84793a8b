//! LitePose (mit-han-lab/litepose, lib/models/pose_mobilenet.py) as an ONNX graph built from an
//! official state dict. Batch norms are folded into the convolutions before them (and into both
//! deconvolutions of a fusion sum, since BN is affine); everything else is the official forward.

use super::onnx::{attr_ints, Dim, OnnxGraph};
use super::weights::{fold_into_conv, scale_deconv, Weights};
use anyhow::{bail, Result};
use tract_onnx::pb::ModelProto;

/// One of the released search-* configurations (mobile_configs/search-*.json).
#[derive(Debug, Clone, Copy)]
pub struct LitePoseConfig {
    pub name: &'static str,
    /// Training input size (short side).
    pub input_size: usize,
    /// `input_channel` of the config (after the stem).
    pub stem_channels: usize,
    /// Per stage: blocks, stride of the first block, output channels. All blocks: expansion 6, kernel 7.
    pub stages: [(usize, usize, usize); 4],
    pub deconv_filters: [usize; 3],
}

pub const EXPANSION: f64 = 6.0;
pub const KERNEL: usize = 7;

pub const CONFIGS: [LitePoseConfig; 4] = [
    LitePoseConfig {
        name: "litepose-xs",
        input_size: 256,
        stem_channels: 16,
        stages: [(6, 2, 16), (8, 2, 32), (10, 2, 48), (10, 1, 80)],
        deconv_filters: [16, 24, 24],
    },
    LitePoseConfig {
        name: "litepose-s",
        input_size: 448,
        stem_channels: 16,
        stages: [(6, 2, 16), (8, 2, 32), (10, 2, 48), (10, 1, 120)],
        deconv_filters: [32, 24, 32],
    },
    LitePoseConfig {
        name: "litepose-m",
        input_size: 448,
        stem_channels: 16,
        stages: [(6, 2, 24), (8, 2, 48), (10, 2, 72), (10, 1, 120)],
        deconv_filters: [64, 40, 32],
    },
    LitePoseConfig {
        name: "litepose-l",
        input_size: 512,
        stem_channels: 24,
        stages: [(6, 2, 24), (8, 2, 64), (10, 2, 96), (10, 1, 160)],
        deconv_filters: [64, 40, 32],
    },
];

pub fn config(name: &str) -> Option<&'static LitePoseConfig> {
    CONFIGS.iter().find(|c| c.name == name)
}

/// The official `_make_divisible(v, 8)`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = (((v + d / 2.0) as usize) / divisor * divisor).max(divisor);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

/// Joint count from the shape of `final_raw.1.conv.3.weight` ([J, C, 1, 1]): 17 (COCO) or 14 (CrowdPose).
pub fn joints_from_head(shape: Option<&[usize]>) -> Result<usize> {
    match shape {
        Some(s) if s.len() == 4 && (s[0] == 17 || s[0] == 14) => Ok(s[0]),
        Some(s) => bail!("final_raw.1.conv.3.weight has shape {s:?}: expected 17 (COCO) or 14 (CrowdPose) joints"),
        None => bail!("final_raw.1.conv.3.weight is missing: this is not a LitePose checkpoint"),
    }
}

struct Builder<'a> {
    g: OnnxGraph,
    w: &'a Weights,
}

impl Builder<'_> {
    /// Conv (no bias) + BatchNorm folded, optional ReLU6.
    fn conv_bn(&mut self, x: &str, conv: &str, bn: &str, shape: [usize; 4], stride: usize, groups: usize, relu6: bool) -> String {
        let mut wt = self.w.take(&format!("{conv}.weight"), &shape);
        let affine = self.w.batch_norm(bn, shape[0]);
        let bias = fold_into_conv(&mut wt, None, &affine);
        let p = shape[2] / 2;
        let y = self.g.conv(x, (&shape, &wt), Some(&bias), stride, [p; 4], [1, 1], groups);
        if relu6 {
            self.g.clip(&y, 0.0, 6.0)
        } else {
            y
        }
    }

    fn inv_bottleneck(&mut self, x: &str, p: &str, inp: usize, out: usize, stride: usize) -> String {
        let f = make_divisible((inp as f64 * EXPANSION).round(), 8);
        let y = self.conv_bn(x, &format!("{p}.inv.0"), &format!("{p}.inv.1"), [f, inp, 1, 1], 1, 1, true);
        let y = self.conv_bn(&y, &format!("{p}.depth_conv.0"), &format!("{p}.depth_conv.1"), [f, 1, KERNEL, KERNEL], stride, f, true);
        let y = self.conv_bn(&y, &format!("{p}.point_conv.0"), &format!("{p}.point_conv.1"), [out, f, 1, 1], 1, 1, false);
        if stride == 1 && inp == out {
            self.g.add(&y, x)
        } else {
            y
        }
    }

    /// SepConv2d(k5): depthwise 5x5 + BN + ReLU, then 1x1 without bias.
    fn sep_conv(&mut self, x: &str, p: &str, inp: usize, out: usize) -> String {
        let mut wt = self.w.take(&format!("{p}.conv.0.weight"), &[inp, 1, 5, 5]);
        let bn = self.w.batch_norm(&format!("{p}.conv.1"), inp);
        let bias = fold_into_conv(&mut wt, None, &bn);
        let y = self.g.conv(x, (&[inp, 1, 5, 5], &wt), Some(&bias), 1, [2; 4], [1, 1], inp);
        let y = self.g.relu(&y);
        let pw = self.w.take(&format!("{p}.conv.3.weight"), &[out, inp, 1, 1]);
        self.g.conv(&y, (&[out, inp, 1, 1], &pw), None, 1, [0; 4], [1, 1], 1)
    }

    /// ConvTranspose2d(k4, s2, p1, no bias) with an optional bias added after folding.
    fn deconv(&mut self, x: &str, wt: &[f32], shape: [usize; 4], bias: Option<&[f32]>) -> String {
        let w = self.g.constant("deconv_w", &shape, wt);
        let b = bias.map(|b| self.g.constant("deconv_b", &[b.len()], b));
        let mut inputs = vec![x, w.as_str()];
        if let Some(b) = &b {
            inputs.push(b);
        }
        let attrs = vec![attr_ints("kernel_shape", &[4, 4]), attr_ints("strides", &[2, 2]), attr_ints("pads", &[1, 1, 1, 1])];
        self.g.node("ConvTranspose", &inputs, attrs)
    }
}

/// Builds the ONNX graph of `cfg` with `joints` joints from `w`; input "input" [1, 3, H, W]
/// (ImageNet-normalised RGB, H and W multiples of 32), outputs "out0" [1, 2J, H/4, W/4] and
/// "out1" [1, J, H/2, W/2].
pub fn build(cfg: &LitePoseConfig, joints: usize, w: &Weights) -> Result<ModelProto> {
    let mut b = Builder { g: OnnxGraph::new(), w };
    let x = b.g.input("input", &[Dim::Fixed(1), Dim::Fixed(3), Dim::Named("height"), Dim::Named("width")]);
    let c0 = make_divisible(cfg.stem_channels as f64, 8);
    let y = b.conv_bn(&x, "first.0.0", "first.0.1", [32, 3, 3, 3], 2, 1, true);
    let y = b.conv_bn(&y, "first.1.0", "first.1.1", [32, 1, 3, 3], 1, 32, true);
    let y = b.conv_bn(&y, "first.2", "first.3", [c0, 32, 1, 1], 1, 1, false);
    let mut feats = vec![y];
    let mut channels = vec![c0];
    let mut inp = c0;
    for (i, &(blocks, stride, c)) in cfg.stages.iter().enumerate() {
        let c = make_divisible(c as f64, 8);
        let mut y = feats.last().unwrap().clone();
        for j in 0..blocks {
            y = b.inv_bottleneck(&y, &format!("stage.{i}.{j}"), inp, c, if j == 0 { stride } else { 1 });
            inp = c;
        }
        feats.push(y);
        channels.push(c);
    }
    // Fusion deconv head (forward() of pose_mobilenet.py).
    let n = feats.len();
    let mut refined = feats[n - 1].clone();
    let mut raw = feats[n - 2].clone();
    let (mut in_refined, mut in_raw) = (channels[n - 1], channels[n - 2]);
    let mut outputs = Vec::new();
    for i in 0..3 {
        let planes = cfg.deconv_filters[i];
        let shape_r = [in_refined, planes, 4, 4];
        let shape_w = [in_raw, planes, 4, 4];
        let mut wr = w.take(&format!("deconv_refined.{i}.weight"), &shape_r);
        let mut ww = w.take(&format!("deconv_raw.{i}.weight"), &shape_w);
        let bn = w.batch_norm(&format!("deconv_bnrelu.{i}.0"), planes);
        scale_deconv(&mut wr, &shape_r, &bn.scale);
        scale_deconv(&mut ww, &shape_w, &bn.scale);
        let a = b.deconv(&refined, &wr, shape_r, Some(&bn.shift));
        let c = b.deconv(&raw, &ww, shape_w, None);
        let sum = b.g.add(&a, &c);
        refined = b.g.relu(&sum);
        in_refined = planes;
        raw = feats[n - 3 - i].clone();
        in_raw = channels[n - 3 - i];
        if i > 0 {
            // LOSS.WITH_AE_LOSS = [True, False]: the first head also predicts one tag per joint.
            let out_c = if i == 1 { 2 * joints } else { joints };
            let fr = b.sep_conv(&refined, &format!("final_refined.{}", i - 1), planes, out_c);
            let fw = b.sep_conv(&raw, &format!("final_raw.{}", i - 1), in_raw, out_c);
            outputs.push((b.g.add(&fr, &fw), out_c));
        }
    }
    let (out0, c_out0) = &outputs[0];
    let (out1, c_out1) = &outputs[1];
    let d = |c: usize, n: &'static str, m: &'static str| [Dim::Fixed(1), Dim::Fixed(c as i64), Dim::Named(n), Dim::Named(m)];
    b.g.output(out0, "out0", &d(*c_out0, "height_4", "width_4"));
    b.g.output(out1, "out1", &d(*c_out1, "height_2", "width_2"));
    w.finish(&format!("{} ({joints} joints)", cfg.name))?;
    Ok(b.g.finish(cfg.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_the_official_rounding() {
        // _make_divisible(round(16 * 6), 8) = 96; 80 * 6 = 480; 48 * 6 = 288; 120 * 6 = 720.
        assert_eq!(make_divisible(96.0, 8), 96);
        assert_eq!(make_divisible(16.0, 8), 16);
        assert_eq!(make_divisible(3.0, 8), 8);
        assert_eq!(make_divisible(27.0, 8), 32); // 24 < 0.9 * 27 would round down too far
    }
}
