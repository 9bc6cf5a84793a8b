//! Semantic segmentation from NCHW logits [1, C, h, w] (BEVANet): as the official evaluation does,
//! logits are upsampled bilinearly with align_corners=True to the input size, then argmax.

use crate::detections::ClassMap;
use crate::tensor::Tensor;
use crate::preprocess::Transform;
use anyhow::{bail, Result};

pub fn check_shape(shape: &[usize], classes: usize) -> Result<()> {
    if shape.len() != 4 || shape[0] != 1 || shape[1] != classes || shape[2] == 0 || shape[3] == 0 {
        bail!("segmentation output has shape {shape:?}, expected [1, {classes}, H, W] logits");
    }
    if classes > 256 {
        bail!("{classes} classes do not fit 8-bit labels");
    }
    Ok(())
}

/// align_corners=True source position and weight for output index `i` of `out` over `len`.
#[inline]
fn corner_tap(i: usize, out: usize, len: usize) -> (usize, usize, f32) {
    if out <= 1 || len <= 1 {
        return (0, 0, 0.0);
    }
    let s = i as f32 * (len - 1) as f32 / (out - 1) as f32;
    let i0 = (s.floor() as usize).min(len - 1);
    let i1 = (i0 + 1).min(len - 1);
    (i0, i1, s - i0 as f32)
}

pub fn decode(out: &Tensor, t: &Transform, classes: &[String], palette: &[[u8; 3]]) -> Result<ClassMap> {
    check_shape(&out.shape, classes.len())?;
    let Some(v) = out.as_f32() else { bail!("segmentation output is not float32") };
    let (c, h, w) = (out.shape[1], out.shape[2], out.shape[3]);
    let (oh, ow) = (t.input_h, t.input_w);
    let plane = h * w;
    let cols: Vec<(usize, usize, f32)> = (0..ow).map(|x| corner_tap(x, ow, w)).collect();
    let mut labels = vec![0u8; oh * ow];
    for y in 0..oh {
        let (y0, y1, fy) = corner_tap(y, oh, h);
        for (x, &(x0, x1, fx)) in cols.iter().enumerate() {
            let (mut best, mut best_v) = (0usize, f32::NEG_INFINITY);
            for k in 0..c {
                let p = &v[k * plane..(k + 1) * plane];
                let top = p[y0 * w + x0] + (p[y0 * w + x1] - p[y0 * w + x0]) * fx;
                let bot = p[y1 * w + x0] + (p[y1 * w + x1] - p[y1 * w + x0]) * fx;
                let val = top + (bot - top) * fy;
                // First maximum wins, as torch.argmax.
                if val > best_v {
                    best_v = val;
                    best = k;
                }
            }
            labels[y * ow + x] = best as u8;
        }
    }
    Ok(ClassMap {
        width: ow,
        height: oh,
        labels,
        region: t.frame_on_grid(ow, oh),
        classes: classes.to_vec(),
        palette: palette.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_corners_upsampling_then_argmax() {
        assert_eq!(corner_tap(0, 5, 3), (0, 1, 0.0));
        assert_eq!(corner_tap(4, 5, 3), (2, 2, 0.0));
        assert_eq!(corner_tap(1, 5, 3), (0, 1, 0.5));
        // Two classes on a 1x2 grid: class 0 wins on the left, class 1 on the right.
        let logits = Tensor::f32(vec![1, 2, 1, 2], vec![1.0, 0.0, 0.0, 1.0]);
        let t = Transform { input_w: 4, input_h: 1, frame_w: 4, frame_h: 1, scale_x: 1.0, scale_y: 1.0, offset_x: 0.0, offset_y: 0.0 };
        let names = vec!["a".to_string(), "b".to_string()];
        let m = decode(&logits, &t, &names, &[[0, 0, 0], [255, 255, 255]]).unwrap();
        assert_eq!(m.labels, vec![0, 0, 1, 1]);
        assert_eq!(m.fractions(), vec![0.5, 0.5]);
        assert!(check_shape(&[1, 3, 1, 2], 2).is_err());
    }
}
