//! NanoDet's GFL head -> boxes of one class in source pixels.
//!
//! Per stride s, a grid of cells covers the input; cell i of a g-wide grid is centred at
//! ((i mod g + 0.5) s, (i div g + 0.5) s). Its class scores come with the sigmoid applied; its
//! box is 4 distances (left, top, right, bottom) from the centre, each a distribution over
//! `bins` bins: softmax, expectation over 0..bins-1, times s. Then a score threshold and
//! non-maximum suppression.

use crate::detections::BoxDetection;
use crate::preprocess::Transform;
use crate::tensor::Tensor;
use crate::detections::box_iou as iou;
use anyhow::{bail, Result};

/// Score threshold and NMS overlap of the detector's boxes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectParams {
    pub min_score: f32,
    /// A box overlapping a better one by more than this IoU is dropped.
    pub nms_iou: f32,
}

/// The level (stride, grid width) an output of `n` cells belongs to, for an input of `w` x `h`.
fn level_of(n: usize, strides: &[usize], w: usize, h: usize) -> Option<(usize, usize)> {
    strides.iter().map(|&s| (s, w.div_ceil(s), h.div_ceil(s))).find(|&(_, gw, gh)| gw * gh == n).map(|(s, gw, _)| (s, gw))
}

/// Checks at load time that the outputs are one score and one box tensor per stride.
pub fn check_shapes(shapes: &[Vec<usize>], strides: &[usize], bins: usize, class: usize, input_w: usize, input_h: usize) -> Result<()> {
    for &s in strides {
        let n = input_w.div_ceil(s) * input_h.div_ceil(s);
        let scores = shapes.iter().any(|sh| sh.len() == 3 && sh[0] == 1 && sh[1] == n && sh[2] > class && sh[2] != 4 * bins);
        let boxes = shapes.iter().any(|sh| sh.len() == 3 && sh[0] == 1 && sh[1] == n && sh[2] == 4 * bins);
        if !scores || !boxes {
            bail!("detector outputs {shapes:?} lack the scores [1, {n}, C] and boxes [1, {n}, {}] of stride {s}", 4 * bins);
        }
    }
    Ok(())
}

pub fn decode(outputs: &[Tensor], t: &Transform, class: usize, strides: &[usize], bins: usize, p: DetectParams) -> Result<Vec<BoxDetection>> {
    let (iw, ih) = (t.input_w, t.input_h);
    let mut found = Vec::new();
    for &s in strides {
        let n = iw.div_ceil(s) * ih.div_ceil(s);
        let pick = |want_boxes: bool| {
            outputs.iter().find(|o| o.shape.len() == 3 && o.shape[1] == n && (o.shape[2] == 4 * bins) == want_boxes)
        };
        let (Some(scores), Some(dists)) = (pick(false), pick(true)) else {
            bail!("detector outputs lack stride {s}");
        };
        let (Some(sv), Some(dv)) = (scores.as_f32(), dists.as_f32()) else { bail!("detector outputs are not float32") };
        let classes = scores.shape[2];
        let Some((_, gw)) = level_of(n, strides, iw, ih) else { continue };
        for i in 0..n {
            let score = sv[i * classes + class];
            if !(score >= p.min_score) {
                continue;
            }
            let (cx, cy) = (((i % gw) as f32 + 0.5) * s as f32, ((i / gw) as f32 + 0.5) * s as f32);
            let cell = &dv[i * 4 * bins..(i + 1) * 4 * bins];
            let d: [f32; 4] = std::array::from_fn(|k| expectation(&cell[k * bins..(k + 1) * bins]) * s as f32);
            let (x0, y0) = t.to_source(cx - d[0], cy - d[1]);
            let (x1, y1) = t.to_source(cx + d[2], cy + d[3]);
            let clamp_x = |x: f32| x.clamp(0.0, t.frame_w as f32);
            let clamp_y = |y: f32| y.clamp(0.0, t.frame_h as f32);
            let bbox = [clamp_x(x0), clamp_y(y0), clamp_x(x1), clamp_y(y1)];
            if bbox[2] > bbox[0] && bbox[3] > bbox[1] {
                found.push(BoxDetection { bbox, score });
            }
        }
    }
    Ok(nms(found, p.nms_iou))
}

/// Softmax over the bins, then the expected bin index.
fn expectation(logits: &[f32]) -> f32 {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !m.is_finite() {
        return 0.0;
    }
    let (mut sum, mut acc) = (0.0f32, 0.0f32);
    for (j, &l) in logits.iter().enumerate() {
        let e = (l - m).exp();
        sum += e;
        acc += e * j as f32;
    }
    acc / sum
}

/// Greedy non-maximum suppression, best score first.
pub fn nms(mut boxes: Vec<BoxDetection>, max_iou: f32) -> Vec<BoxDetection> {
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<BoxDetection> = Vec::new();
    for b in boxes {
        if kept.iter().all(|k| iou(&k.bbox, &b.bbox) <= max_iou) {
            kept.push(b);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transform(w: usize, h: usize) -> Transform {
        Transform { input_w: 416, input_h: 416, frame_w: w, frame_h: h, scale_x: w as f32 / 416.0, scale_y: h as f32 / 416.0, offset_x: 0.0, offset_y: 0.0 }
    }

    /// One confident cell at stride 8 with every distance peaked at bin 2 gives a box of
    /// 2 x 8 pixels on each side of the cell centre, mapped to the frame.
    #[test]
    fn a_peaked_cell_decodes_to_its_box() {
        let strides = [8, 16, 32];
        let mut outs = Vec::new();
        for s in strides {
            let n = (416 / s) * (416 / s);
            let mut scores = vec![0.0f32; n * 80];
            let mut dists = vec![-20.0f32; n * 44];
            if s == 8 {
                let i = 10 * 52 + 20; // row 10, column 20
                scores[i * 80] = 0.9;
                scores[i * 80 + 3] = 0.95; // another class: ignored
                for k in 0..4 {
                    dists[i * 44 + k * 11 + 2] = 20.0;
                }
            }
            outs.push(Tensor::f32(vec![1, n, 80], scores));
            outs.push(Tensor::f32(vec![1, n, 44], dists));
        }
        let shapes: Vec<Vec<usize>> = outs.iter().map(|o| o.shape.clone()).collect();
        check_shapes(&shapes, &strides, 11, 0, 416, 416).unwrap();
        let t = transform(832, 416);
        let found = decode(&outs, &t, 0, &strides, 11, DetectParams { min_score: 0.3, nms_iou: 0.5 }).unwrap();
        assert_eq!(found.len(), 1);
        let (cx, cy) = (20.5 * 8.0, 10.5 * 8.0);
        let want = [(cx - 16.0) * 2.0, cy - 16.0, (cx + 16.0) * 2.0, cy + 16.0];
        for (g, w) in found[0].bbox.iter().zip(want) {
            assert!((g - w).abs() < 1e-3, "{:?} vs {want:?}", found[0].bbox);
        }
        assert!(check_shapes(&shapes[..4], &strides, 11, 0, 416, 416).is_err());
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let b = |x: f32, score: f32| BoxDetection { bbox: [x, 0.0, x + 10.0, 10.0], score };
        let kept = nms(vec![b(0.0, 0.5), b(1.0, 0.9), b(30.0, 0.4)], 0.5);
        assert_eq!(kept.iter().map(|k| k.score).collect::<Vec<_>>(), vec![0.9, 0.4]);
        assert!((expectation(&[0.0, 0.0]) - 0.5).abs() < 1e-6);
    }
}
