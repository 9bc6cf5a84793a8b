//! What the decoders produce, in source-frame pixels: people with keypoints, and masks.

use crate::preprocess::FrameOnGrid;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Keypoint {
    pub x: f32,
    pub y: f32,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// In the model's keypoint schema order.
    pub keypoints: Vec<Keypoint>,
    /// [x0, y0, x1, y1] in source pixels.
    pub bbox: [f32; 4],
    pub score: f32,
    /// Identity over a video (`track`), never reused within a run; `None` when not tracked.
    pub track_id: Option<u64>,
}

/// A detector's box around one object (top-down pose: a person), in source pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxDetection {
    /// [x0, y0, x1, y1].
    pub bbox: [f32; 4],
    pub score: f32,
}

/// Intersection over union of two [x0, y0, x1, y1] boxes (0 for empty or NaN ones).
pub fn box_iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 && inter.is_finite() {
        inter / union
    } else {
        0.0
    }
}

/// A per-pixel person probability at the model's output resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    pub probs: Vec<f32>,
    /// Where the frame lies on the mask grid (the rest is padding).
    pub region: FrameOnGrid,
}

/// Per-pixel class labels (semantic segmentation) with the classes' names and colours.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMap {
    pub width: usize,
    pub height: usize,
    pub labels: Vec<u8>,
    pub region: FrameOnGrid,
    pub classes: Vec<String>,
    pub palette: Vec<[u8; 3]>,
}

/// Grid cells covered by the frame: [x0, x1) x [y0, y1), clamped to the grid.
fn covered(region: &FrameOnGrid, width: usize, height: usize) -> (usize, usize, usize, usize) {
    let clamp = |v: f32, n: usize| (v.round().max(0.0) as usize).min(n);
    let (x0, y0) = (clamp(region.x0, width), clamp(region.y0, height));
    let (x1, y1) = (clamp(region.x0 + region.w, width), clamp(region.y0 + region.h, height));
    (x0, x1.max(x0 + 1).min(width), y0, y1.max(y0 + 1).min(height))
}

impl Mask {
    /// Fraction of the frame where the person probability is at least one half.
    pub fn coverage(&self) -> f32 {
        let (x0, x1, y0, y1) = covered(&self.region, self.width, self.height);
        let on: usize = (y0..y1)
            .map(|y| self.probs[y * self.width + x0..y * self.width + x1].iter().filter(|&&p| p >= 0.5).count())
            .sum();
        on as f32 / ((x1 - x0) * (y1 - y0)).max(1) as f32
    }

    /// Bilinear probability at a source-frame pixel centre.
    pub fn sample(&self, fx: f32, fy: f32, frame_w: usize, frame_h: usize) -> f32 {
        let (mx, my) = self.region.grid_pos(fx, fy, frame_w, frame_h);
        let mx = mx.clamp(0.0, (self.width - 1) as f32);
        let my = my.clamp(0.0, (self.height - 1) as f32);
        let (x0, y0) = (mx as usize, my as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (ax, ay) = (mx - x0 as f32, my - y0 as f32);
        let p = |x: usize, y: usize| self.probs[y * self.width + x];
        let top = p(x0, y0) + (p(x1, y0) - p(x0, y0)) * ax;
        let bot = p(x0, y1) + (p(x1, y1) - p(x0, y1)) * ax;
        top + (bot - top) * ay
    }

    /// The mask resampled to the frame size as 8-bit probabilities (for PNG output).
    pub fn to_frame_u8(&self, frame_w: usize, frame_h: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(frame_w * frame_h);
        for y in 0..frame_h {
            for x in 0..frame_w {
                out.push((self.sample(x as f32, y as f32, frame_w, frame_h) * 255.0).round().clamp(0.0, 255.0) as u8);
            }
        }
        out
    }
}

impl ClassMap {
    /// Nearest label at a source-frame pixel centre.
    pub fn label_at(&self, fx: f32, fy: f32, frame_w: usize, frame_h: usize) -> u8 {
        let (mx, my) = self.region.grid_pos(fx, fy, frame_w, frame_h);
        let x = (mx.round().max(0.0) as usize).min(self.width - 1);
        let y = (my.round().max(0.0) as usize).min(self.height - 1);
        self.labels[y * self.width + x]
    }

    /// Fraction of the frame per class, in class order.
    pub fn fractions(&self) -> Vec<f32> {
        let (x0, x1, y0, y1) = covered(&self.region, self.width, self.height);
        let mut counts = vec![0usize; self.classes.len()];
        for y in y0..y1 {
            for &l in &self.labels[y * self.width + x0..y * self.width + x1] {
                if let Some(c) = counts.get_mut(l as usize) {
                    *c += 1;
                }
            }
        }
        let n = ((x1 - x0) * (y1 - y0)).max(1) as f32;
        counts.iter().map(|&c| c as f32 / n).collect()
    }
}
