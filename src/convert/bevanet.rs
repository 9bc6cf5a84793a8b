//! BEVANet (maomao0819/BEVANet at 603205ba, MIT) for Cityscapes segmentation as an ONNX graph built
//! from an official checkpoint: the deploy model `BEVANet_SEG(..., seg_augment=False)` of
//! models/BEVANet.py, whose forward returns the main logits only.
//!
//! The graph follows the official forward op by op (models/BEVANet.py, EVAN.py, LSKA.py, FS.py,
//! FB.py, PPM.py, model_utils.py, conv.py). Rewrites, all exact up to float rounding:
//! - a BatchNorm right after a convolution is folded into it (conv -> BN, incl. CKS's depthwise
//!   conv -> BN, PagFM's f_x/f_y, the compressions, and `head.bn1` into `dfm.out`'s final conv,
//!   which is the only consumer of that conv);
//! - EVAN's `norm2` BatchNorm is folded into the MLP's first 1x1 conv (`fc1`), which is its only
//!   consumer; every other BatchNorm that feeds a ReLU or a shortcut is a per-channel Mul + Add;
//! - the channel LayerNorms (`flatten(2).transpose(1, 2)`, `nn.LayerNorm(C)`, reshape back) are
//!   computed directly on NCHW with ReduceMean over the channel axis (eps 1e-5, biased variance);
//! - layer scales are per-channel Mul constants; exact GELU is built from Erf;
//! - `F.interpolate(..., bilinear, align_corners=False)` is Resize linear / half_pixel with
//!   absolute sizes (an interpolation to the same size, an identity, is left out).
//!
//! Input "input" [1, 3, H, W]: RGB, /255, ImageNet mean/std (the official `input_transform`);
//! H and W multiples of 8. Output "out0" [1, classes, H/8, W/8]: raw logits; the official
//! post-processing upsamples them bilinearly with align_corners=True and takes the argmax.

use super::onnx::{Dim, OnnxGraph};
use super::weights::{fold_into_conv, Affine, Weights};
use anyhow::{bail, Result};
use tract_onnx::pb::ModelProto;

/// `nn.LayerNorm` default epsilon (BEVANet.py builds every LayerNorm with defaults).
pub const LN_EPS: f32 = 1e-5;
/// DLKPPM's LSKA kernel, fixed in PPM.py (`SpatialAttention(LSKA, branch_planes, 35, ...)`).
pub const PPM_LSKA_KERNEL: usize = 35;

/// The constructor arguments of `BEVANet_SEG` as the released configs set them
/// (configs/cityscapes/BEVANet_S.yaml and BEVANet.yaml; LKA SDLSKA, DWConv, PWConv, PPM DLKPPM,
/// FB BGAF in both).
#[derive(Debug, Clone, Copy)]
pub struct BevaNetConfig {
    /// "bevanet-s" or "bevanet".
    pub name: &'static str,
    /// MODEL.PLANES: channels at 1/4; the detail branch has 2x, the semantic branch 4x/8x/16x.
    pub planes: usize,
    /// MODEL.NUM_BLOCKS. With the released kernel layout only [0] (layer1, layer3_detail),
    /// [1] (layer2) and [2] (layer3_semantic) are used; [3] and [4] are read by the constructor
    /// only when a semantic kernel size is 0.
    pub blocks: [usize; 5],
    /// MODEL.SEMANTIC_KERNEL_SIZE: 0 = BasicBlocks, else EVAN blocks with an SDLSKA of that kernel.
    pub semantic_kernel: [usize; 3],
    /// MODEL.DETAIL_KERNEL_SIZE, same meaning for the detail branch.
    pub detail_kernel: [usize; 2],
    /// MODEL.MLP_EXPAND: EVAN MLP hidden = int(dim * expand).
    pub mlp_expand: [usize; 3],
    /// MODEL.PPM_PLANES: DLKPPM branch channels.
    pub ppm_planes: usize,
    /// MODEL.HEAD_PLANES: segmentation head hidden channels.
    pub head_planes: usize,
    /// DATASET.NUM_CLASSES (Cityscapes train ids).
    pub num_classes: usize,
}

pub const CONFIGS: [BevaNetConfig; 2] = [
    BevaNetConfig {
        name: "bevanet-s",
        planes: 32,
        blocks: [2, 2, 3, 3, 2],
        semantic_kernel: [0, 35, 35],
        detail_kernel: [0, 23],
        mlp_expand: [4, 4, 4],
        ppm_planes: 96,
        head_planes: 128,
        num_classes: 19,
    },
    BevaNetConfig {
        name: "bevanet",
        planes: 64,
        blocks: [2, 2, 4, 4, 2],
        semantic_kernel: [0, 35, 35],
        detail_kernel: [0, 23],
        mlp_expand: [4, 4, 4],
        ppm_planes: 96,
        head_planes: 128,
        num_classes: 19,
    },
];

pub fn config(name: &str) -> Option<&'static BevaNetConfig> {
    CONFIGS.iter().find(|c| c.name == name)
}

/// The loss buffer of the official training wrapper (`FullModel.sem_loss`), dropped.
pub const LOSS_BUFFER: &str = "sem_loss.criterion.weight";
/// The official wrapper's prefix on every network key, stripped.
pub const MODEL_PREFIX: &str = "model.";
/// Training-only auxiliary heads (built with `seg_augment=True`), dropped.
pub const AUX_HEADS: [&str; 2] = ["seghead_ds.", "seghead_db."];

/// Official checkpoint entries (as read from best.pt / final_state.pt, or from the 'state_dict'
/// of checkpoint.pth.tar) -> the deploy model's weights, as the official loader does it
/// (BEVANet.py `get_model`: `k[6:]`, keeping what the deploy model has):
/// - the prefix `model.` is stripped from every key that has it (keys without it are kept as
///   they are; a prefixed key whose stripped name is also present unprefixed keeps its prefix,
///   so the duplicate is reported instead of silently replacing the other);
/// - exactly these are dropped: the top-level key `sem_loss.criterion.weight` (the loss's class
///   weights) and every key under `seghead_ds.` / `seghead_db.` (after stripping), the auxiliary
///   heads of the training form.
///
/// Anything else, known or not, is kept, so that `Weights::finish` reports what does not belong.
pub fn deploy_entries(entries: Vec<(String, Vec<usize>, Vec<f32>)>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    strip_wrapper(entries).into_iter().filter(|(name, _, _)| !AUX_HEADS.iter().any(|p| name.starts_with(p))).collect()
}

/// Strips `model.` and drops the loss buffer, keeping the auxiliary heads (training form).
/// A prefixed key whose stripped name also exists without the prefix keeps its prefix, so that
/// neither silently replaces the other and the strictness check reports the extra one.
fn strip_wrapper(entries: Vec<(String, Vec<usize>, Vec<f32>)>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let entries: Vec<_> = entries.into_iter().filter(|(name, _, _)| name != LOSS_BUFFER).collect();
    let unprefixed: std::collections::HashSet<String> =
        entries.iter().filter(|(n, _, _)| !n.starts_with(MODEL_PREFIX)).map(|(n, _, _)| n.clone()).collect();
    entries
        .into_iter()
        .map(|(name, shape, data)| match name.strip_prefix(MODEL_PREFIX) {
            Some(s) if !unprefixed.contains(s) => (s.to_string(), shape, data),
            _ => (name, shape, data),
        })
        .collect()
}

/// A value of the graph with its (static) NCHW shape, N = 1.
#[derive(Debug, Clone)]
struct Feat {
    v: String,
    c: usize,
    h: usize,
    w: usize,
}

/// Output length of a convolution or pooling window along one axis (PyTorch, floor mode).
fn out_len(n: usize, k: usize, stride: usize, pad: usize, dil: usize) -> usize {
    (n + 2 * pad - dil * (k - 1) - 1) / stride + 1
}

/// Folds a per-input-channel affine applied BEFORE a 1x1 convolution [O, I, 1, 1] into it:
/// W'[o, i] = W[o, i] * s[i], b'[o] = b[o] + sum_i W[o, i] * t[i].
fn fold_affine_into_next_1x1(weight: &mut [f32], bias: &[f32], a: &Affine) -> Vec<f32> {
    let i_ch = a.scale.len();
    weight
        .chunks_mut(i_ch)
        .zip(bias)
        .map(|(row, b)| {
            let mut acc = *b as f64;
            for (i, w) in row.iter_mut().enumerate() {
                acc += *w as f64 * a.shift[i] as f64;
                *w *= a.scale[i];
            }
            acc as f32
        })
        .collect()
}

/// The large-kernel attention variants used by the released models.
#[derive(Debug, Clone, Copy)]
enum Lka {
    /// LSKA.py `SDLSKA(dim, kernel_size)` (EVAN blocks).
    Sdlska(usize),
    /// LSKA.py `LSKA(dim, kernel_size, mode='a')` (DLKPPM).
    Lska(usize),
}

/// SDLSKA: (small depthwise kernel, dilated strip length, dilation) for a kernel size (LSKA.py:126-141).
fn sdlska_params(k: usize) -> Result<(usize, usize, usize)> {
    Ok(match k {
        7 => (3, 3, 2),
        11 => (3, 5, 2),
        23 => (5, 7, 3),
        35 => (5, 11, 3),
        _ => bail!("SDLSKA has no kernel size {k} (the official code defines 7, 11, 23, 35)"),
    })
}

/// LSKA mode 'a': (strip length, dilated strip length, dilation) for a kernel size (LSKA.py:55-84).
fn lska_params(k: usize) -> Result<(usize, usize, usize)> {
    Ok(match k {
        7 => (3, 3, 2),
        11 => (3, 5, 2),
        23 => (5, 7, 3),
        35 => (5, 11, 3),
        41 => (5, 13, 3),
        53 => (5, 17, 3),
        _ => bail!("LSKA has no kernel size {k} (the official code defines 7, 11, 23, 35, 41, 53)"),
    })
}

struct Builder<'a> {
    g: OnnxGraph,
    w: &'a Weights,
}

/// What follows a convolution inside one official module.
struct ConvSpec<'s> {
    /// Weight key prefix: `{p}.weight` (and `{p}.bias` when `bias`).
    p: &'s str,
    shape: [usize; 4],
    bias: bool,
    stride: usize,
    /// Padding (height, width).
    pad: [usize; 2],
    dil: usize,
    groups: usize,
}

impl<'s> ConvSpec<'s> {
    fn new(p: &'s str, shape: [usize; 4]) -> Self {
        ConvSpec { p, shape, bias: false, stride: 1, pad: [shape[2] / 2, shape[3] / 2], dil: 1, groups: 1 }
    }
    fn bias(mut self) -> Self {
        self.bias = true;
        self
    }
    fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }
    fn pad(mut self, ph: usize, pw: usize) -> Self {
        self.pad = [ph, pw];
        self
    }
    fn dil(mut self, d: usize) -> Self {
        self.dil = d;
        self
    }
    /// Depthwise: groups = output channels.
    fn dw(mut self) -> Self {
        self.groups = self.shape[0];
        self
    }
}

impl Builder<'_> {
    /// Emits a Conv with the given (already folded) weights.
    fn conv_with(&mut self, x: &Feat, s: &ConvSpec, wt: &[f32], bias: Option<&[f32]>) -> Feat {
        let [o, _, kh, kw] = s.shape;
        let [ph, pw] = s.pad;
        let v = self.g.conv(&x.v, (&s.shape, wt), bias, s.stride, [ph, pw, ph, pw], [s.dil, s.dil], s.groups);
        Feat { v, c: o, h: out_len(x.h, kh, s.stride, ph, s.dil), w: out_len(x.w, kw, s.stride, pw, s.dil) }
    }

    /// `nn.Conv2d` at `s.p`, optionally followed by the BatchNorm at `bn` (folded) and a ReLU.
    fn conv(&mut self, x: &Feat, s: ConvSpec, bn: Option<&str>, relu: bool) -> Feat {
        debug_assert_eq!(x.c, s.shape[1] * s.groups);
        let mut wt = self.w.take(&format!("{}.weight", s.p), &s.shape);
        let bias = s.bias.then(|| self.w.take(&format!("{}.bias", s.p), &[s.shape[0]]));
        let bias = match bn {
            Some(bn) => {
                let a = self.w.batch_norm(bn, s.shape[0]);
                Some(fold_into_conv(&mut wt, bias.as_deref(), &a))
            }
            None => bias,
        };
        let y = self.conv_with(x, &s, &wt, bias.as_deref());
        if relu {
            self.relu(&y)
        } else {
            y
        }
    }

    fn same(&self, x: &Feat, v: String) -> Feat {
        Feat { v, ..x.clone() }
    }

    fn relu(&mut self, x: &Feat) -> Feat {
        let v = self.g.relu(&x.v);
        self.same(x, v)
    }

    fn add(&mut self, a: &Feat, b: &Feat) -> Feat {
        debug_assert_eq!((a.c, a.h, a.w), (b.c, b.h, b.w));
        let v = self.g.add(&a.v, &b.v);
        self.same(a, v)
    }

    /// Element-wise product; `b` may broadcast (1 channel or 1x1).
    fn mul(&mut self, a: &Feat, b: &Feat) -> Feat {
        let v = self.g.mul(&a.v, &b.v);
        Feat { v, c: a.c.max(b.c), h: a.h.max(b.h), w: a.w.max(b.w) }
    }

    fn sigmoid(&mut self, x: &Feat) -> Feat {
        let v = self.g.sigmoid(&x.v);
        self.same(x, v)
    }

    fn gelu(&mut self, x: &Feat) -> Feat {
        let v = self.g.gelu(&x.v);
        self.same(x, v)
    }

    /// A BatchNorm2d (eval) that stays in the graph as a per-channel Mul + Add.
    fn bn(&mut self, x: &Feat, prefix: &str) -> Feat {
        let a = self.w.batch_norm(prefix, x.c);
        let v = self.g.channel_affine(&x.v, &a.scale, &a.shift);
        self.same(x, v)
    }

    /// `x * param[c]` for a per-channel parameter of the checkpoint (layer scales).
    fn layer_scale(&mut self, x: &Feat, key: &str) -> Feat {
        let s = self.w.take(key, &[x.c]);
        let v = self.g.channel_scale(&x.v, &s);
        self.same(x, v)
    }

    /// `F.interpolate(x, size=[h, w], mode='bilinear', align_corners=False)`.
    fn upsample(&mut self, x: &Feat, h: usize, w: usize) -> Feat {
        if (x.h, x.w) == (h, w) {
            return x.clone();
        }
        let v = self.g.resize_linear(&x.v, [1, x.c, h, w], "half_pixel");
        Feat { v, c: x.c, h, w }
    }

    /// Channel LayerNorm at `prefix` on NCHW, as BEVANet.py's flatten/transpose/LayerNorm/reshape.
    fn layer_norm(&mut self, x: &Feat, prefix: &str) -> Feat {
        let gamma = self.w.take(&format!("{prefix}.weight"), &[x.c]);
        let beta = self.w.take(&format!("{prefix}.bias"), &[x.c]);
        let mean = self.g.reduce_mean(&x.v, &[1], true);
        let d = self.g.sub(&x.v, &mean);
        let sq = self.g.mul(&d, &d);
        let var = self.g.reduce_mean(&sq, &[1], true);
        let eps = self.g.scalar("ln_eps", LN_EPS);
        let ve = self.g.add(&var, &eps);
        let den = self.g.sqrt(&ve);
        let n = self.g.div(&d, &den);
        let v = self.g.channel_affine(&n, &gamma, &beta);
        self.same(x, v)
    }

    /// model_utils.py BasicBlock (3x3 -> BN -> ReLU -> 3x3 -> BN, + residual, ReLU unless no_relu).
    fn basic_block(&mut self, x: &Feat, p: &str, planes: usize, stride: usize, downsample: bool, no_relu: bool) -> Feat {
        let inp = x.c;
        let c1 = format!("{p}.conv1");
        let out = self.conv(x, ConvSpec::new(&c1, [planes, inp, 3, 3]).stride(stride), Some(&format!("{p}.bn1")), true);
        let c2 = format!("{p}.conv2");
        let out = self.conv(&out, ConvSpec::new(&c2, [planes, planes, 3, 3]), Some(&format!("{p}.bn2")), false);
        self.residual_tail(x, &out, p, planes, stride, downsample, no_relu)
    }

    /// model_utils.py Bottleneck (expansion 2): 1x1 -> 3x3 (stride) -> 1x1 to 2*planes, + residual.
    fn bottleneck(&mut self, x: &Feat, p: &str, planes: usize, stride: usize, downsample: bool, no_relu: bool) -> Feat {
        let inp = x.c;
        let c1 = format!("{p}.conv1");
        let out = self.conv(x, ConvSpec::new(&c1, [planes, inp, 1, 1]), Some(&format!("{p}.bn1")), true);
        let c2 = format!("{p}.conv2");
        let out = self.conv(&out, ConvSpec::new(&c2, [planes, planes, 3, 3]).stride(stride), Some(&format!("{p}.bn2")), true);
        let c3 = format!("{p}.conv3");
        let out = self.conv(&out, ConvSpec::new(&c3, [planes * 2, planes, 1, 1]), Some(&format!("{p}.bn3")), false);
        self.residual_tail(x, &out, p, planes * 2, stride, downsample, no_relu)
    }

    /// The end of BasicBlock and Bottleneck: + shortcut (1x1 conv + BN when `downsample`), then
    /// ReLU unless `no_relu`.
    #[allow(clippy::too_many_arguments)]
    fn residual_tail(&mut self, x: &Feat, out: &Feat, p: &str, out_c: usize, stride: usize, downsample: bool, no_relu: bool) -> Feat {
        let residual = if downsample {
            let d = format!("{p}.downsample.0");
            self.conv(x, ConvSpec::new(&d, [out_c, x.c, 1, 1]).stride(stride), Some(&format!("{p}.downsample.1")), false)
        } else {
            x.clone()
        };
        let out = self.add(out, &residual);
        if no_relu {
            out
        } else {
            self.relu(&out)
        }
    }

    /// BEVANet_backbone._make_layer: the first block takes the stride and a downsample when the
    /// shape changes and keeps its class's default `no_relu` (BasicBlock False, Bottleneck True);
    /// later blocks have `no_relu` only for the last one.
    fn make_layer(&mut self, x: &Feat, p: &str, bottleneck: bool, planes: usize, n: usize, stride: usize) -> Feat {
        let expansion = if bottleneck { 2 } else { 1 };
        let downsample = stride != 1 || x.c != planes * expansion;
        let mut y = x.clone();
        for i in 0..n {
            let (s, ds, no_relu) = if i == 0 { (stride, downsample, bottleneck) } else { (1, false, i == n - 1) };
            let bp = format!("{p}.{i}");
            y = if bottleneck {
                self.bottleneck(&y, &bp, planes, s, ds, no_relu)
            } else {
                self.basic_block(&y, &bp, planes, s, ds, no_relu)
            };
        }
        y
    }

    /// conv.py DWConv at `{p}.dwconv` (bias) with an explicit kernel, padding and dilation.
    fn dwconv(&mut self, x: &Feat, p: &str, kh: usize, kw: usize, pad: [usize; 2], dil: usize) -> Feat {
        let key = format!("{p}.dwconv");
        self.conv(x, ConvSpec::new(&key, [x.c, 1, kh, kw]).bias().pad(pad[0], pad[1]).dil(dil).dw(), None, false)
    }

    /// conv.py PWConv at `{p}.pwconv` (1x1, bias).
    fn pwconv(&mut self, x: &Feat, p: &str, out: usize) -> Feat {
        let key = format!("{p}.pwconv");
        self.conv(x, ConvSpec::new(&key, [out, x.c, 1, 1]).bias(), None, false)
    }

    /// One CKS `fc_*` path on the pooled [1, C, 1, 1] map: PWConv, DWConv 3x3, BN (folded), ReLU.
    fn cks_fc(&mut self, x: &Feat, p: &str, out: usize) -> Feat {
        let y = self.pwconv(x, &format!("{p}.0"), out);
        let key = format!("{p}.1.dwconv");
        self.conv(&y, ConvSpec::new(&key, [out, 1, 3, 3]).bias().dw(), Some(&format!("{p}.2")), true)
    }

    /// FS.py CKS: fuses the small, horizontal and vertical kernels' outputs with channel weights
    /// (pooled squeeze path, sigmoid each) and spatial weights (7x7 conv on [mean, max] over
    /// channels, sigmoid, chunked in the order small, big_h, big_v).
    fn cks(&mut self, small: &Feat, big_h: &Feat, big_v: &Feat, p: &str) -> Feat {
        let dim = small.c;
        let hidden = (dim / 16).max(32);
        let s = self.add(small, big_h);
        let attn = self.add(&s, big_v);
        let pooled = self.g.global_average_pool(&attn.v);
        let pooled = Feat { v: pooled, c: dim, h: 1, w: 1 };
        let z = self.cks_fc(&pooled, &format!("{p}.fc_reduce"), hidden);
        let mut channel = Vec::new();
        for name in ["fc_expand_small", "fc_expand_big_h", "fc_expand_big_v"] {
            let e = self.cks_fc(&z, &format!("{p}.{name}"), dim);
            channel.push(self.sigmoid(&e));
        }
        let avg = self.g.reduce_mean(&attn.v, &[1], true);
        let max = self.g.reduce_max(&attn.v, &[1], true);
        let agg = self.g.concat(&[&avg, &max], 1);
        let agg = Feat { v: agg, c: 2, h: attn.h, w: attn.w };
        let key = format!("{p}.conv_squeeze");
        let sig = self.conv(&agg, ConvSpec::new(&key, [3, 2, 7, 7]).bias(), None, false);
        let sig = self.sigmoid(&sig);
        let mut out: Option<Feat> = None;
        for (i, branch) in [small, big_h, big_v].into_iter().enumerate() {
            let spatial = self.g.slice(&sig.v, 1, i as i64, i as i64 + 1);
            let spatial = Feat { v: spatial, c: 1, h: sig.h, w: sig.w };
            let t = self.mul(branch, &channel[i]);
            let t = self.mul(&t, &spatial);
            out = Some(match out {
                None => t,
                Some(acc) => self.add(&acc, &t),
            });
        }
        out.unwrap()
    }

    /// LSKA.py SDLSKA: depthwise small kernel, two dilated strips on its output, CKS, 1x1, gate.
    fn sdlska(&mut self, x: &Feat, p: &str, k: usize) -> Result<Feat> {
        let (ks, len, dil) = sdlska_params(k)?;
        let pad = (len / 2) * dil;
        let small = self.dwconv(x, &format!("{p}.DW_conv"), ks, ks, [ks / 2, ks / 2], 1);
        let big_h = self.dwconv(&small, &format!("{p}.DW_D_conv_h"), 1, len, [0, pad], dil);
        let big_v = self.dwconv(&small, &format!("{p}.DW_D_conv_v"), len, 1, [pad, 0], dil);
        let attn = self.cks(&small, &big_h, &big_v, &format!("{p}.FS_kernel"));
        let attn = self.pwconv(&attn, &format!("{p}.pwconv"), x.c);
        Ok(self.mul(x, &attn))
    }

    /// LSKA.py LSKA, mode 'a': 1xk, kx1, dilated 1xk, dilated kx1 (sequential), 1x1, gate.
    fn lska(&mut self, x: &Feat, p: &str, k: usize) -> Result<Feat> {
        let (len, dlen, dil) = lska_params(k)?;
        let (pad, dpad) = (len / 2, (dlen / 2) * dil);
        let a = self.dwconv(x, &format!("{p}.DW_conv_h"), 1, len, [0, pad], 1);
        let a = self.dwconv(&a, &format!("{p}.DW_conv_v"), len, 1, [pad, 0], 1);
        let a = self.dwconv(&a, &format!("{p}.DW_D_conv_h"), 1, dlen, [0, dpad], dil);
        let a = self.dwconv(&a, &format!("{p}.DW_D_conv_v"), dlen, 1, [dpad, 0], dil);
        let a = self.pwconv(&a, &format!("{p}.pwconv"), x.c);
        Ok(self.mul(x, &a))
    }

    /// EVAN.py SpatialAttention: proj_1, GELU, gating unit, proj_2, + the block's input.
    fn spatial_attention(&mut self, x: &Feat, p: &str, lka: Lka) -> Result<Feat> {
        let y = self.pwconv(x, &format!("{p}.proj_1"), x.c);
        let y = self.gelu(&y);
        let sgu = format!("{p}.spatial_gating_unit");
        let y = match lka {
            Lka::Sdlska(k) => self.sdlska(&y, &sgu, k)?,
            Lka::Lska(k) => self.lska(&y, &sgu, k)?,
        };
        let y = self.pwconv(&y, &format!("{p}.proj_2"), x.c);
        Ok(self.add(&y, x))
    }

    /// EVAN.py EVAN: x + g1 * SpatialAttention(BN1(x)); x + g2 * MLP(BN2(x)), MLP = fc1 (1x1,
    /// BN2 folded in), depthwise 3x3, GELU, fc2 (1x1).
    fn evan(&mut self, x: &Feat, p: &str, k: usize, mlp_expand: usize) -> Result<Feat> {
        let dim = x.c;
        let n1 = self.bn(x, &format!("{p}.norm1"));
        let a = self.spatial_attention(&n1, &format!("{p}.attn"), Lka::Sdlska(k))?;
        let a = self.layer_scale(&a, &format!("{p}.layer_scale_1"));
        let x = self.add(x, &a);

        let hidden = dim * mlp_expand;
        let norm2 = self.w.batch_norm(&format!("{p}.norm2"), dim);
        let fc1 = format!("{p}.mlp.fc1.pwconv");
        let mut w1 = self.w.take(&format!("{fc1}.weight"), &[hidden, dim, 1, 1]);
        let b1 = self.w.take(&format!("{fc1}.bias"), &[hidden]);
        let b1 = fold_affine_into_next_1x1(&mut w1, &b1, &norm2);
        let m = self.conv_with(&x, &ConvSpec::new(&fc1, [hidden, dim, 1, 1]), &w1, Some(&b1));
        let m = self.dwconv(&m, &format!("{p}.mlp.dwconv"), 3, 3, [1, 1], 1);
        let m = self.gelu(&m);
        let m = self.pwconv(&m, &format!("{p}.mlp.fc2"), dim);
        let m = self.layer_scale(&m, &format!("{p}.layer_scale_2"));
        Ok(self.add(&x, &m))
    }

    /// FS.py PagFM (after_relu=False, with_channel=False): sim = sigmoid(sum_c f_x(x) * up(f_y(y)));
    /// (1 - sim) * x + sim * up(y).
    fn pagfm(&mut self, x: &Feat, y: &Feat, p: &str, mid: usize) -> Feat {
        let fy = format!("{p}.f_y.0");
        let y_q = self.conv(y, ConvSpec::new(&fy, [mid, y.c, 1, 1]), Some(&format!("{p}.f_y.1")), false);
        let y_q = self.upsample(&y_q, x.h, x.w);
        let fx = format!("{p}.f_x.0");
        let x_k = self.conv(x, ConvSpec::new(&fx, [mid, x.c, 1, 1]), Some(&format!("{p}.f_x.1")), false);
        let prod = self.mul(&x_k, &y_q);
        let sum = self.g.reduce_sum(&prod.v, &[1], true);
        let sim = self.g.sigmoid(&sum);
        let sim = Feat { v: sim, c: 1, h: x.h, w: x.w };
        let y_up = self.upsample(y, x.h, x.w);
        let inv = self.g.one_minus(&sim.v);
        let inv = self.same(&sim, inv);
        let a = self.mul(&inv, x);
        let b = self.mul(&sim, &y_up);
        self.add(&a, &b)
    }

    /// PPM.py `BN -> ReLU -> PWConv(bias=False)` (the scale*, shortcut and compression heads).
    fn bn_relu_pw(&mut self, x: &Feat, bn: &str, pw: &str, out: usize) -> Feat {
        let y = self.bn(x, bn);
        let y = self.relu(&y);
        let key = format!("{pw}.pwconv");
        self.conv(&y, ConvSpec::new(&key, [out, x.c, 1, 1]), None, false)
    }

    /// PPM.py `BN -> ReLU -> Conv3x3(bias=False)` with a dilation (the process* blocks).
    fn bn_relu_conv3(&mut self, x: &Feat, p: &str, dil: usize) -> Feat {
        let y = self.bn(x, &format!("{p}.0"));
        let y = self.relu(&y);
        let key = format!("{p}.2");
        self.conv(&y, ConvSpec::new(&key, [x.c, x.c, 3, 3]).pad(dil, dil).dil(dil), None, false)
    }

    /// `nn.AdaptiveAvgPool2d((2, 2))` as an AveragePool: bins [floor(i*n/2), ceil((i+1)*n/2)).
    /// For even n: kernel n/2, stride n/2; odd n > 1: kernel (n+1)/2, stride (n-1)/2 (the bins
    /// overlap by one); n = 1: both bins are the single element, so the one-element map is kept
    /// (the bilinear upsampling back to size 1 averages two equal values: the same result).
    fn adaptive_avg_pool_2(&mut self, x: &Feat) -> Feat {
        let axis = |n: usize| -> (usize, usize, usize) {
            if n == 1 {
                (1, 1, 1)
            } else if n % 2 == 0 {
                (n / 2, n / 2, 2)
            } else {
                (n.div_ceil(2), (n - 1) / 2, 2)
            }
        };
        let (kh, sh, oh) = axis(x.h);
        let (kw, sw, ow) = axis(x.w);
        let v = self.g.average_pool(&x.v, [kh, kw], [sh, sw], [0; 4], true);
        Feat { v, c: x.c, h: oh, w: ow }
    }

    /// `nn.AvgPool2d(k, s, p)` (count_include_pad=True, floor mode).
    fn avg_pool(&mut self, x: &Feat, k: usize, s: usize, p: usize) -> Feat {
        let v = self.g.average_pool(&x.v, [k, k], [s, s], [p; 4], true);
        Feat { v, c: x.c, h: out_len(x.h, k, s, p, 1), w: out_len(x.w, k, s, p, 1) }
    }

    /// PPM.py DLKPPM (the released configs' PPM).
    fn dlkppm(&mut self, x: &Feat, p: &str, branch: usize, outplanes: usize) -> Result<Feat> {
        let (h, w) = (x.h, x.w);
        let scale0 = self.bn_relu_pw(x, &format!("{p}.scale0.0"), &format!("{p}.scale0.2"), branch);
        let l_in = self.bn(&scale0, &format!("{p}.bn"));
        let l = self.spatial_attention(&l_in, &format!("{p}.lska"), Lka::Lska(PPM_LSKA_KERNEL))?;
        let l = self.layer_scale(&l, &format!("{p}.layer_scale_lska"));
        let scale_lska = self.add(&scale0, &l);

        let s1 = self.avg_pool(x, 5, 2, 2);
        let s1 = self.bn_relu_pw(&s1, &format!("{p}.scale1.1"), &format!("{p}.scale1.3"), branch);
        let s1 = self.upsample(&s1, h, w);
        let t = self.add(&s1, &scale0);
        let x1 = self.bn_relu_conv3(&t, &format!("{p}.process1"), 2);

        let s2 = self.avg_pool(x, 9, 4, 4);
        let s2 = self.bn_relu_pw(&s2, &format!("{p}.scale2.1"), &format!("{p}.scale2.3"), branch);
        let s2 = self.upsample(&s2, h, w);
        let t = self.add(&s2, &x1);
        let x2 = self.bn_relu_conv3(&t, &format!("{p}.process2"), 2);

        let t = self.add(&scale_lska, &x2);
        let x3 = self.bn_relu_conv3(&t, &format!("{p}.process_lska"), 1);

        let s4 = self.adaptive_avg_pool_2(x);
        let s4 = self.bn_relu_pw(&s4, &format!("{p}.scale4.1"), &format!("{p}.scale4.3"), branch);
        let s4 = self.upsample(&s4, h, w);
        let t = self.add(&s4, &x3);
        let x4 = self.bn_relu_conv3(&t, &format!("{p}.process4"), 1);

        let s5 = self.g.global_average_pool(&x.v);
        let s5 = Feat { v: s5, c: x.c, h: 1, w: 1 };
        let s5 = self.bn_relu_pw(&s5, &format!("{p}.scale5.1"), &format!("{p}.scale5.3"), branch);
        let s5 = self.upsample(&s5, h, w);
        let t = self.add(&s5, &x4);
        let x5 = self.bn_relu_conv3(&t, &format!("{p}.process5"), 1);

        let cat = self.g.concat(&[&scale0.v, &x1.v, &x2.v, &x3.v, &x4.v, &x5.v], 1);
        let cat = Feat { v: cat, c: branch * 6, h, w };
        let out = self.bn_relu_pw(&cat, &format!("{p}.compression.0"), &format!("{p}.compression.2"), outplanes);
        let short = self.bn_relu_pw(x, &format!("{p}.shortcut.0"), &format!("{p}.shortcut.2"), outplanes);
        Ok(self.add(&out, &short))
    }

    /// FB.py BGAF: p' = conv_p(p), i' = conv_i(i) (BN ReLU 3x3 each), e = sigmoid(d);
    /// out(e * p' + (1 - e) * i' + (p' + i')). `next_bn` (the head's bn1, applied to this output
    /// only) is folded into the final 3x3 conv.
    fn bgaf(&mut self, p_: &Feat, i_: &Feat, d: &Feat, p: &str, out_c: usize, next_bn: &str) -> Feat {
        let pp = self.bn(p_, &format!("{p}.conv_p.0"));
        let pp = self.relu(&pp);
        let key = format!("{p}.conv_p.2");
        let pp = self.conv(&pp, ConvSpec::new(&key, [out_c, p_.c, 3, 3]), None, false);
        let ii = self.bn(i_, &format!("{p}.conv_i.0"));
        let ii = self.relu(&ii);
        let key = format!("{p}.conv_i.2");
        let ii = self.conv(&ii, ConvSpec::new(&key, [out_c, i_.c, 3, 3]), None, false);
        let edge = self.sigmoid(d);
        let sum = self.add(&pp, &ii);
        let a = self.mul(&edge, &pp);
        let inv = self.g.one_minus(&edge.v);
        let inv = self.same(&edge, inv);
        let b = self.mul(&inv, &ii);
        let f = self.add(&a, &b);
        let f = self.add(&f, &sum);
        let y = self.bn(&f, &format!("{p}.out.0"));
        let y = self.relu(&y);
        let key = format!("{p}.out.2");
        self.conv(&y, ConvSpec::new(&key, [out_c, out_c, 3, 3]), Some(next_bn), false)
    }

    /// model_utils.py segmenthead (scale_factor None): conv2(relu(bn2(conv1(relu(bn1(x)))))).
    /// With `bn1_folded`, `x` already has bn1 applied (folded into the conv that made it).
    fn seg_head(&mut self, x: &Feat, p: &str, inter: usize, out: usize, bn1_folded: bool) -> Feat {
        let y = if bn1_folded { x.clone() } else { self.bn(x, &format!("{p}.bn1")) };
        let y = self.relu(&y);
        let c1 = format!("{p}.conv1");
        let y = self.conv(&y, ConvSpec::new(&c1, [inter, x.c, 3, 3]), Some(&format!("{p}.bn2")), true);
        let c2 = format!("{p}.conv2");
        self.conv(&y, ConvSpec::new(&c2, [out, inter, 1, 1]).bias(), None, false)
    }
}

/// Checks that `cfg` has the branch layout the released models use (and that this graph
/// implements): semantic kernels [0, k, k] with more than one layer3 block, detail kernels [0, k].
fn check_layout(cfg: &BevaNetConfig) -> Result<()> {
    let [s0, s1, s2] = cfg.semantic_kernel;
    let [d0, d1] = cfg.detail_kernel;
    if s0 != 0 || s1 == 0 || s2 == 0 || d0 != 0 || d1 == 0 || cfg.blocks[2] < 2 {
        bail!(
            "{}: only the released branch layout is implemented (SEMANTIC_KERNEL_SIZE [0, k, k], \
             DETAIL_KERNEL_SIZE [0, k], NUM_BLOCKS[2] > 1); got {:?}, {:?}, {:?}",
            cfg.name,
            cfg.semantic_kernel,
            cfg.detail_kernel,
            cfg.blocks
        );
    }
    for k in [s1, s2, d1] {
        sdlska_params(k)?;
    }
    Ok(())
}

/// Checks an input size: H and W positive multiples of 8. The official forward reshapes the
/// detail feature to (H/8, W/8) after its LayerNorm (BEVANet.py:194), which is only the
/// identity when the 1/8 feature (three stride-2 convs, ceil each) is exactly H/8 x W/8.
pub fn check_input_size(height: usize, width: usize) -> Result<()> {
    if height == 0 || width == 0 || height % 8 != 0 || width % 8 != 0 {
        bail!(
            "BEVANet needs an input height and width that are positive multiples of 8 (the official \
             forward reshapes the 1/8 detail feature to H/8 x W/8); got {height}x{width}"
        );
    }
    Ok(())
}

/// The ONNX graph of the deploy model for a fixed input size: input "input" [1, 3, H, W]
/// (float32, RGB normalised as the official pipeline feeds it), output "out0"
/// [1, classes, H/8, W/8] (logits); all shapes static. `w` must hold exactly the deploy keys
/// (see [`deploy_entries`]).
pub fn build(cfg: &BevaNetConfig, w: &Weights, height: usize, width: usize) -> Result<ModelProto> {
    Ok(build_graph(cfg, w, height, width, false)?.0)
}

/// Builds the graph; with `aux`, also the training form's auxiliary heads, as the official
/// `seg_augment=True` forward returns them: out0 = seghead_ds(xds_inter), out1 = main logits,
/// out2 = seghead_db(xd). Returns the model and its node count.
fn build_graph(cfg: &BevaNetConfig, w: &Weights, height: usize, width: usize, aux: bool) -> Result<(ModelProto, usize)> {
    let built = build_unchecked(cfg, w, height, width, aux)?;
    w.finish(cfg.name)?;
    Ok(built)
}

/// [`build_graph`] without the final strictness check (missing weights read as zeros).
fn build_unchecked(cfg: &BevaNetConfig, w: &Weights, height: usize, width: usize, aux: bool) -> Result<(ModelProto, usize)> {
    check_layout(cfg)?;
    check_input_size(height, width)?;
    let p = cfg.planes;
    let mut b = Builder { g: OnnxGraph::new(), w };
    let v = b.g.input("input", &[Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(height as i64), Dim::Fixed(width as i64)]);
    let x = Feat { v, c: 3, h: height, w: width };

    // BEVANet_backbone.forward (BEVANet.py:154-202) with kernels [0, k, k] / [0, k].
    let x = b.conv(&x, ConvSpec::new("conv1.0", [p, 3, 3, 3]).bias().stride(2), Some("conv1.1"), true);
    let x = b.conv(&x, ConvSpec::new("conv1.3", [p, p, 3, 3]).bias().stride(2), Some("conv1.4"), true);
    let x = b.make_layer(&x, "layer1", false, p, cfg.blocks[0], 1);
    let x = b.relu(&x); // 1/4, p
    let x = b.make_layer(&x, "layer2", false, 2 * p, cfg.blocks[1], 2);
    let x = b.relu(&x); // 1/8, 2p
    let xs = b.make_layer(&x, "layer3_semantic", false, 4 * p, cfg.blocks[2], 2);
    let xs = b.relu(&xs); // 1/16, 4p
    let xd = b.make_layer(&x, "layer3_detail", false, 2 * p, cfg.blocks[0], 1);
    let c3 = b.conv(&xs, ConvSpec::new("compression3.0", [2 * p, 4 * p, 1, 1]), Some("compression3.1"), false);
    let xd = b.pagfm(&xd, &c3, "fuse_sd_3", p);
    let xs = b.make_layer(&xs, "layer4_down_semantic", false, 8 * p, 1, 2); // 1/32, 8p
    let xs = b.evan(&xs, "layer4_semantic_1", cfg.semantic_kernel[1], cfg.mlp_expand[1])?;
    let xs = b.layer_norm(&xs, "norm4_semantic_1");
    let xs = b.evan(&xs, "layer4_semantic_2", cfg.semantic_kernel[1], cfg.mlp_expand[1])?;
    let xs = b.layer_norm(&xs, "norm4_semantic_2");
    // `xds_inter = xd` (BEVANet.py:175) aliases the tensor that `self.relu` (inplace=True) then
    // rectifies (:188), so the training form's seghead_ds sees the rectified feature.
    let xd = b.relu(&xd);
    let xds_inter = xd.clone();
    let xd = b.make_layer(&xd, "layer4_detail_conv", false, 2 * p, 1, 1);
    let xd = b.evan(&xd, "layer4_detail", cfg.detail_kernel[1], cfg.mlp_expand[1])?;
    let xd = b.layer_norm(&xd, "norm4_detail");
    let c4 = b.conv(&xs, ConvSpec::new("compression4.0", [2 * p, 8 * p, 1, 1]), Some("compression4.1"), false);
    let xd = b.pagfm(&xd, &c4, "fuse_sd_4", p);
    let xds = b.make_layer(&xd, "layer5_detail_semantic", true, 2 * p, 1, 1); // 1/8, 4p

    // BEVANet_SEG.forward (BEVANet.py:427-452).
    let xs = b.make_layer(&xs, "layer5_down_semantic_seg", false, 16 * p, 1, 2); // 1/64, 16p
    let xs = b.evan(&xs, "layer5_semantic_1_seg", cfg.semantic_kernel[2], cfg.mlp_expand[2])?;
    let xs = b.layer_norm(&xs, "norm5_semantic_1_seg");
    let xs = b.evan(&xs, "layer5_semantic_2_seg", cfg.semantic_kernel[2], cfg.mlp_expand[2])?;
    let xs = b.layer_norm(&xs, "norm5_semantic_2_seg");
    let xdb = b.make_layer(&xd, "layer5_detail_boundary", true, 2 * p, 1, 1);
    let spp = b.dlkppm(&xs, "spp", cfg.ppm_planes, 4 * p)?;
    let xs = b.upsample(&spp, xds.h, xds.w);
    let f = b.bgaf(&xds, &xs, &xdb, "dfm", 4 * p, "head.bn1");
    let out = b.seg_head(&f, "head", cfg.head_planes, cfg.num_classes, true);
    debug_assert_eq!((out.h, out.w), (height / 8, width / 8));

    let dims = |c: usize| [Dim::Fixed(1), Dim::Fixed(c as i64), Dim::Fixed((height / 8) as i64), Dim::Fixed((width / 8) as i64)];
    if aux {
        let ds = b.seg_head(&xds_inter, "seghead_ds", cfg.head_planes, cfg.num_classes, false);
        let db = b.seg_head(&xd, "seghead_db", p, 1, false);
        b.g.output(&ds.v, "out0", &dims(cfg.num_classes));
        b.g.output(&out.v, "out1", &dims(cfg.num_classes));
        b.g.output(&db.v, "out2", &dims(1));
    } else {
        b.g.output(&out.v, "out0", &dims(cfg.num_classes));
    }
    let nodes = b.g.node_count();
    Ok((b.g.finish(cfg.name), nodes))
}

#[cfg(test)]
mod tests {
    use super::super::onnx::encode;
    use super::*;
    use crate::checkpoint;
    use tract_onnx::prelude::*;

    /// Runs an ONNX model with tract on one float input; returns every output as (shape, values).
    fn run_tract(model: &ModelProto, shape: &[usize], data: Vec<f32>) -> Vec<(Vec<usize>, Vec<f32>)> {
        let bytes = encode(model);
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .expect("tract plans the graph");
        let input = tract_onnx::prelude::Tensor::from_shape(shape, &data).unwrap();
        let outputs = plan.run(tvec!(input.into())).expect("tract runs the graph");
        outputs
            .iter()
            .map(|o| {
                let v: Vec<f32> = o.to_plain_array_view::<f32>().unwrap().iter().copied().collect();
                (o.shape().to_vec(), v)
            })
            .collect()
    }

    /// A deterministic pseudo-random sequence in [-1, 1).
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// PyTorch's upsample_bilinear2d, align_corners=False, output size given (scale = in/out,
    /// source index clamped at 0, upper neighbour clamped at the last element).
    fn torch_bilinear(x: &[f32], c: usize, (ih, iw): (usize, usize), (oh, ow): (usize, usize)) -> Vec<f32> {
        let src = |dst: usize, i: usize, o: usize| -> (usize, usize, f32) {
            let s = ((dst as f32 + 0.5) * (i as f32 / o as f32) - 0.5).max(0.0);
            let i0 = s as usize;
            let i1 = if i0 < i - 1 { i0 + 1 } else { i0 };
            (i0, i1, s - i0 as f32)
        };
        let mut out = vec![0.0; c * oh * ow];
        for ch in 0..c {
            let plane = &x[ch * ih * iw..];
            for y in 0..oh {
                let (y0, y1, ly) = src(y, ih, oh);
                for xx in 0..ow {
                    let (x0, x1, lx) = src(xx, iw, ow);
                    let v = (1.0 - ly) * ((1.0 - lx) * plane[y0 * iw + x0] + lx * plane[y0 * iw + x1])
                        + ly * ((1.0 - lx) * plane[y1 * iw + x0] + lx * plane[y1 * iw + x1]);
                    out[ch * oh * ow + y * ow + xx] = v;
                }
            }
        }
        out
    }

    /// PyTorch's adaptive_avg_pool2d to (o, o): bins [floor(i*n/o), ceil((i+1)*n/o)).
    fn torch_adaptive_avg(x: &[f32], c: usize, (h, w): (usize, usize), o: usize) -> Vec<f32> {
        let bin = |i: usize, n: usize| (i * n / o, ((i + 1) * n).div_ceil(o));
        let mut out = vec![0.0; c * o * o];
        for ch in 0..c {
            for oy in 0..o {
                let (y0, y1) = bin(oy, h);
                for ox in 0..o {
                    let (x0, x1) = bin(ox, w);
                    let mut s = 0.0;
                    for y in y0..y1 {
                        for xx in x0..x1 {
                            s += x[ch * h * w + y * w + xx];
                        }
                    }
                    out[ch * o * o + oy * o + ox] = s / ((y1 - y0) * (x1 - x0)) as f32;
                }
            }
        }
        out
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn resize_half_pixel_is_torch_bilinear_align_corners_false() {
        // Upsampling as the model does it, identity, and a shrink to length 1 (where ONNX's
        // pytorch_half_pixel would differ from PyTorch).
        let c = 3;
        for &(ih, iw, oh, ow) in &[(1, 1, 4, 6), (2, 2, 4, 8), (2, 3, 5, 7), (3, 5, 9, 16), (4, 8, 32, 64), (5, 2, 5, 9), (4, 6, 1, 3)] {
            let x = noise(c * ih * iw, (ih * 31 + iw) as u64);
            let w = Weights::new(vec![]);
            let mut b = Builder { g: OnnxGraph::new(), w: &w };
            let v = b.g.input("input", &[Dim::Fixed(1), Dim::Fixed(c as i64), Dim::Fixed(ih as i64), Dim::Fixed(iw as i64)]);
            let y = b.upsample(&Feat { v, c, h: ih, w: iw }, oh, ow);
            b.g.output(&y.v, "out", &[Dim::Fixed(1), Dim::Fixed(c as i64), Dim::Fixed(oh as i64), Dim::Fixed(ow as i64)]);
            let out = run_tract(&b.g.finish("resize"), &[1, c, ih, iw], x.clone());
            let want = torch_bilinear(&x, c, (ih, iw), (oh, ow));
            let d = max_abs_diff(&out[0].1, &want);
            assert!(d < 1e-6, "{ih}x{iw} -> {oh}x{ow}: max diff {d}");
        }
    }

    #[test]
    fn adaptive_pool_decomposition_matches_torch() {
        let c = 2;
        for &(h, w) in &[(1, 1), (1, 4), (2, 3), (4, 8), (5, 7), (3, 16), (6, 9)] {
            let x = noise(c * h * w, (h * 17 + w) as u64);
            let wt = Weights::new(vec![]);
            let mut b = Builder { g: OnnxGraph::new(), w: &wt };
            let v = b.g.input("input", &[Dim::Fixed(1), Dim::Fixed(c as i64), Dim::Fixed(h as i64), Dim::Fixed(w as i64)]);
            let p = b.adaptive_avg_pool_2(&Feat { v, c, h, w });
            // What the model does next: bilinear back to the map's size.
            let y = b.upsample(&p, h, w);
            b.g.output(&y.v, "out", &[Dim::Fixed(1), Dim::Fixed(c as i64), Dim::Fixed(h as i64), Dim::Fixed(w as i64)]);
            let out = run_tract(&b.g.finish("pool"), &[1, c, h, w], x.clone());
            let pooled = torch_adaptive_avg(&x, c, (h, w), 2);
            let want = torch_bilinear(&pooled, c, (2, 2), (h, w));
            let d = max_abs_diff(&out[0].1, &want);
            assert!(d < 1e-6, "{h}x{w}: max diff {d}");
        }
    }

    /// PyTorch's avg_pool2d(k, s, p), count_include_pad=True, floor mode: the divisor is k*k.
    fn torch_avg_pool(x: &[f32], c: usize, (h, w): (usize, usize), k: usize, s: usize, p: usize) -> (usize, usize, Vec<f32>) {
        let (oh, ow) = (out_len(h, k, s, p, 1), out_len(w, k, s, p, 1));
        let mut out = vec![0.0; c * oh * ow];
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = 0.0;
                    for dy in 0..k {
                        for dx in 0..k {
                            let (y, xx) = ((oy * s + dy) as isize - p as isize, (ox * s + dx) as isize - p as isize);
                            if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                                sum += x[ch * h * w + y as usize * w + xx as usize];
                            }
                        }
                    }
                    out[ch * oh * ow + oy * ow + ox] = sum / (k * k) as f32;
                }
            }
        }
        (oh, ow, out)
    }

    #[test]
    fn average_pool_counts_padding_like_torch() {
        let c = 2;
        for &(h, w) in &[(1, 1), (2, 3), (4, 8), (5, 7), (9, 4)] {
            for &(k, s, p) in &[(5, 2, 2), (9, 4, 4)] {
                let x = noise(c * h * w, (h * 13 + w + k) as u64);
                let wt = Weights::new(vec![]);
                let mut b = Builder { g: OnnxGraph::new(), w: &wt };
                let v = b.g.input("input", &[Dim::Fixed(1), Dim::Fixed(c as i64), Dim::Fixed(h as i64), Dim::Fixed(w as i64)]);
                let y = b.avg_pool(&Feat { v, c, h, w }, k, s, p);
                let (oh, ow, want) = torch_avg_pool(&x, c, (h, w), k, s, p);
                assert_eq!((y.h, y.w), (oh, ow));
                b.g.output(&y.v, "out", &[Dim::Fixed(1), Dim::Fixed(c as i64), Dim::Fixed(oh as i64), Dim::Fixed(ow as i64)]);
                let out = run_tract(&b.g.finish("avgpool"), &[1, c, h, w], x.clone());
                let d = max_abs_diff(&out[0].1, &want);
                assert!(d < 1e-6, "{h}x{w} k{k} s{s} p{p}: max diff {d}");
            }
        }
    }

    /// Every key (without `num_batches_tracked`) and shape the graph of `cfg` asks for, read off
    /// the strictness report of builds with ever more zero-filled entries (it lists 40 at a time).
    fn keys_asked_for(cfg: &BevaNetConfig) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut entries: Vec<(String, Vec<usize>, Vec<f32>)> = vec![];
        loop {
            let w = Weights::new(entries.clone());
            let Err(e) = build(cfg, &w, 16, 16) else { return entries };
            let msg = e.to_string();
            let before = entries.len();
            let mut in_missing = false;
            for line in msg.lines() {
                if line.trim_start().starts_with("missing keys") {
                    in_missing = true;
                } else if !line.starts_with("    ") {
                    in_missing = false;
                } else if in_missing && !line.contains("... and") {
                    let (k, sh) = line.trim().rsplit_once(" (").unwrap();
                    let shape: Vec<usize> = sh.trim_end_matches(')').split('x').map(|d| d.parse().unwrap()).collect();
                    let n = shape.iter().product();
                    entries.push((k.to_string(), shape, vec![0.0; n]));
                }
            }
            assert!(entries.len() > before, "{msg}");
        }
    }

    #[test]
    fn parameter_counts_are_the_official_ones() {
        // BEVANet-S: 15090784 (fixture io.txt, deploy model); BEVANet: 58.6M (README / paper).
        for (name, keys, params) in [("bevanet-s", 647, 15_090_784), ("bevanet", 657, 58_599_296)] {
            let entries = keys_asked_for(config(name).unwrap());
            let n: usize = entries
                .iter()
                .filter(|(k, _, _)| !k.ends_with(".running_mean") && !k.ends_with(".running_var"))
                .map(|(_, s, _)| s.iter().product::<usize>())
                .sum();
            assert_eq!((entries.len(), n), (keys, params), "{name}");
        }
        // The full-size model's shapes are consistent end to end (zero weights).
        let cfg = config("bevanet").unwrap();
        let w = Weights::new(keys_asked_for(cfg));
        let out = run_tract(&build(cfg, &w, 64, 128).unwrap(), &[1, 3, 64, 128], vec![0.0; 3 * 64 * 128]);
        assert_eq!(out[0].0, [1, 19, 8, 16]);
    }

    use crate::shared_fixtures::reference as fixture;

    /// The official BEVANet-S fixture checkpoint as (name, shape, f32 values), on-disk order.
    fn fixture_entries() -> Option<Vec<(String, Vec<usize>, Vec<f32>)>> {
        let sd = checkpoint::load_torch(&fixture("BEVANet-S.pth")?).expect("the fixture checkpoint loads");
        Some(sd.tensors.into_iter().map(|t| (t.f32_values(), t)).map(|(v, t)| (t.name, t.shape, v)).collect())
    }

    fn fixture_input() -> (Vec<usize>, Vec<f32>) {
        let a = checkpoint::load_npy(&fixture("BEVANet-S.input.npy").unwrap()).unwrap();
        (a.shape.clone(), a.f32_values())
    }

    fn fixture_outputs(file: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let npz = checkpoint::load_npz(&fixture(file).unwrap()).unwrap();
        npz.into_iter().map(|t| (t.f32_values(), t)).map(|(v, t)| (t.name, t.shape, v)).collect()
    }

    /// Compares outputs with the official ones: max |diff| <= 1e-4 * max |official|, per output.
    fn assert_parity(got: &[(Vec<usize>, Vec<f32>)], want: &[(String, Vec<usize>, Vec<f32>)], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: output count");
        for ((shape, v), (name, wshape, w)) in got.iter().zip(want) {
            assert_eq!(shape, wshape, "{what} {name}: shape");
            let d = max_abs_diff(v, w);
            let m = w.iter().fold(0.0f32, |a, x| a.max(x.abs()));
            println!("{what} {name} {shape:?}: max |diff| {d:.3e}, max |official| {m:.6}, ratio {:.2e}", d / m);
            assert!(d <= 1e-4 * m, "{what} {name}: max |diff| {d} > 1e-4 * {m}");
        }
    }

    #[test]
    fn fixture_parity_with_the_official_forward() {
        let Some(entries) = fixture_entries() else { return };
        assert_eq!(entries.len(), 766);
        let w = Weights::new(deploy_entries(entries));
        assert_eq!(w.len(), 739, "BEVANet-S.deploy_keys.tsv lists 739 keys");
        let (model, nodes) = build_graph(config("bevanet-s").unwrap(), &w, 256, 512, false).unwrap();
        println!("BEVANet-S at 256x512: {nodes} ONNX nodes");
        if let Ok(out) = std::env::var("BEVANET_ONNX_OUT") {
            // For checks by hand with other runtimes (e.g. onnxruntime).
            std::fs::write(&out, encode(&model)).unwrap();
        }
        let (shape, x) = fixture_input();
        assert_eq!(shape, [1, 3, 256, 512]);
        let got = run_tract(&model, &shape, x);
        assert_parity(&got, &fixture_outputs("BEVANet-S.outputs.npz"), "deploy");
    }

    #[test]
    fn fixture_parity_of_the_training_form_aux_heads() {
        // seg_augment=True returns [seghead_ds(xds_inter), x, seghead_db(xd)]: the aux heads
        // check the branch features at two more points.
        let Some(entries) = fixture_entries() else { return };
        let w = Weights::new(strip_wrapper(entries));
        let (model, _) = build_graph(config("bevanet-s").unwrap(), &w, 256, 512, true).unwrap();
        let (shape, x) = fixture_input();
        let got = run_tract(&model, &shape, x);
        assert_parity(&got, &fixture_outputs("BEVANet-S.aux_outputs.npz"), "training form");
    }

    #[test]
    fn strictness_names_exactly_the_bad_key() {
        let Some(entries) = fixture_entries() else { return };
        let cfg = config("bevanet-s").unwrap();
        let deploy = deploy_entries(entries);
        let attempt = |entries: Vec<(String, Vec<usize>, Vec<f32>)>| -> String {
            build(cfg, &Weights::new(entries), 64, 64).unwrap_err().to_string()
        };
        // Only the named section, with exactly one item.
        let only = |e: &str, section: &str, item: &str| {
            assert!(e.contains(&format!("{section} (1):\n    {item}")), "{e}");
            for other in ["missing keys", "unexpected keys", "mis-shaped keys"] {
                assert!(other == section || !e.contains(other), "{e}");
            }
        };

        let key = "layer4_detail.attn.spatial_gating_unit.FS_kernel.conv_squeeze.bias";
        let e = attempt(deploy.iter().filter(|(n, _, _)| n != key).cloned().collect());
        only(&e, "missing keys", &format!("{key} (3)"));

        let mut extra = deploy.clone();
        extra.push(("spp.lska.bogus".into(), vec![2], vec![0.0; 2]));
        only(&attempt(extra), "unexpected keys", "spp.lska.bogus");

        let mut reshaped = deploy.clone();
        let t = reshaped.iter_mut().find(|(n, _, _)| n == "spp.process1.2.weight").unwrap();
        t.1 = vec![96, 96, 1, 9];
        only(
            &attempt(reshaped),
            "mis-shaped keys",
            "spp.process1.2.weight: checkpoint has 96x96x1x9, the architecture needs 96x96x3x3",
        );

        // What deploy_entries does not know stays, and is reported.
        let mut unknown = fixture_entries().unwrap();
        unknown.push(("epoch".into(), vec![], vec![1.0]));
        only(&attempt(deploy_entries(unknown)), "unexpected keys", "epoch");
    }

    #[test]
    fn input_sizes_must_be_multiples_of_8() {
        assert!(check_input_size(256, 512).is_ok());
        assert!(check_input_size(264, 520).is_ok());
        for (h, w) in [(260, 512), (256, 500), (0, 512), (4, 8)] {
            let e = check_input_size(h, w).unwrap_err().to_string();
            assert!(e.contains("multiples of 8") && e.contains(&format!("{h}x{w}")), "{e}");
        }
        let w = Weights::new(vec![]);
        let e = build(config("bevanet-s").unwrap(), &w, 260, 512).unwrap_err().to_string();
        assert!(e.contains("260x512"), "{e}");
    }

    #[test]
    fn configs_are_the_released_ones() {
        let s = config("bevanet-s").unwrap();
        assert_eq!((s.planes, s.blocks), (32, [2, 2, 3, 3, 2]));
        let m = config("bevanet").unwrap();
        assert_eq!((m.planes, m.blocks), (64, [2, 2, 4, 4, 2]));
        assert!(config("bevanet-l").is_none());
        let mut odd = *s;
        odd.detail_kernel = [23, 23];
        let e = build(&odd, &Weights::new(vec![]), 256, 512).unwrap_err().to_string();
        assert!(e.contains("branch layout"), "{e}");
    }

    #[test]
    fn deploy_entries_strip_the_wrapper_and_drop_only_aux_heads_and_loss() {
        let e = |n: &str| (n.to_string(), vec![1], vec![0.0]);
        let out = deploy_entries(vec![
            e("model.conv1.0.weight"),
            e("model.seghead_ds.conv1.weight"),
            e("model.seghead_db.bn1.weight"),
            e("sem_loss.criterion.weight"),
            e("optimizer.state"),
            e("head.conv2.bias"),
            e("model.sem_loss.criterion.weight"),
            e("model.head.conv2.bias"),
        ]);
        let names: Vec<&str> = out.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["conv1.0.weight", "optimizer.state", "head.conv2.bias", "sem_loss.criterion.weight", "model.head.conv2.bias"]
        );
    }
}
