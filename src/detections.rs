//! What the decoders produce, in source-frame pixels: people with keypoints, and masks.

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
}

/// A per-pixel person probability at the model's output resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    pub probs: Vec<f32>,
    /// The part of the mask that covers the frame (the rest is padding), in mask pixels.
    pub content_w: f32,
    pub content_h: f32,
}

impl Mask {
    /// Fraction of the frame where the person probability is at least one half.
    pub fn coverage(&self) -> f32 {
        let cw = (self.content_w.round() as usize).clamp(1, self.width);
        let ch = (self.content_h.round() as usize).clamp(1, self.height);
        let on: usize =
            (0..ch).map(|y| self.probs[y * self.width..y * self.width + cw].iter().filter(|&&p| p >= 0.5).count()).sum();
        on as f32 / (cw * ch) as f32
    }

    /// Bilinear probability at a source-frame pixel centre.
    pub fn sample(&self, fx: f32, fy: f32, frame_w: usize, frame_h: usize) -> f32 {
        let mx = ((fx + 0.5) * self.content_w / frame_w as f32 - 0.5).clamp(0.0, (self.width - 1) as f32);
        let my = ((fy + 0.5) * self.content_h / frame_h as f32 - 0.5).clamp(0.0, (self.height - 1) as f32);
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
