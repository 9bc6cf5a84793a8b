//! Frame -> input tensor in one pass: resize (bilinear), normalise, lay out, convert dtype.
//! Also returns the geometric transform so decoders can map outputs back to source pixels.

use crate::catalog::{DType, Layout, ModelSpec, ResizeMode};
use crate::engine::{Tensor, TensorData};
use crate::frame::Frame;

/// Maps model-input pixel coordinates to source-frame pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    /// Input tensor size.
    pub input_w: usize,
    pub input_h: usize,
    /// Region of the input that holds the picture (the rest is padding), in input pixels.
    pub content_w: f32,
    pub content_h: f32,
    /// Source frame size.
    pub frame_w: usize,
    pub frame_h: usize,
}

impl Transform {
    pub fn new(spec: &ModelSpec, frame_w: usize, frame_h: usize) -> Transform {
        let (input_h, input_w) = spec.input_size(frame_w, frame_h);
        let (content_w, content_h) = match spec.input.resize {
            ResizeMode::Stretch => (input_w as f32, input_h as f32),
            ResizeMode::Letterbox => {
                let s = (input_w as f32 / frame_w as f32).min(input_h as f32 / frame_h as f32);
                (frame_w as f32 * s, frame_h as f32 * s)
            }
        };
        Transform { input_w, input_h, content_w, content_h, frame_w, frame_h }
    }

    /// Source pixels per input pixel, per axis.
    pub fn scale(&self) -> (f32, f32) {
        (self.frame_w as f32 / self.content_w, self.frame_h as f32 / self.content_h)
    }

    /// A point in input pixels to source pixels.
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        let (sx, sy) = self.scale();
        (x * sx, y * sy)
    }
}

/// Preprocesses `frame` for `spec`.
pub fn prepare(spec: &ModelSpec, frame: &Frame) -> (Tensor, Transform) {
    let t = Transform::new(spec, frame.width, frame.height);
    let (w, h) = (t.input_w, t.input_h);
    let inp = &spec.input;
    // Per-channel affine: value = pixel * a[c] + b[c].
    let a: [f32; 3] = std::array::from_fn(|c| inp.scale / inp.std[c]);
    let b: [f32; 3] = std::array::from_fn(|c| -inp.mean[c] / inp.std[c]);
    let mut values = vec![0f32; w * h * 3];
    // Zero padding is a zero *value* after normalisation would be wrong for mean != 0; the
    // padding holds the normalised value of a black pixel, as a zero-padded image would.
    for c in 0..3 {
        let pad = b[c];
        if pad != 0.0 {
            match inp.layout {
                Layout::Nhwc => values.iter_mut().skip(c).step_by(3).for_each(|v| *v = pad),
                Layout::Nchw => values[c * w * h..(c + 1) * w * h].iter_mut().for_each(|v| *v = pad),
            }
        }
    }
    let cw = (t.content_w.round() as usize).clamp(1, w);
    let ch = (t.content_h.round() as usize).clamp(1, h);
    let (sx, sy) = (frame.width as f32 / t.content_w, frame.height as f32 / t.content_h);
    // Column sample positions and weights, computed once per call (half-pixel centres).
    let cols: Vec<(usize, usize, f32)> = (0..cw).map(|x| sample_pos(x, sx, frame.width)).collect();
    let src = &frame.rgb;
    let stride = frame.width * 3;
    for y in 0..ch {
        let (y0, y1, fy) = sample_pos(y, sy, frame.height);
        let r0 = &src[y0 * stride..(y0 + 1) * stride];
        let r1 = &src[y1 * stride..(y1 + 1) * stride];
        for (x, &(x0, x1, fx)) in cols.iter().enumerate() {
            for c in 0..3 {
                let p00 = r0[x0 * 3 + c] as f32;
                let p01 = r0[x1 * 3 + c] as f32;
                let p10 = r1[x0 * 3 + c] as f32;
                let p11 = r1[x1 * 3 + c] as f32;
                let top = p00 + (p01 - p00) * fx;
                let bot = p10 + (p11 - p10) * fx;
                let p = top + (bot - top) * fy;
                let idx = match inp.layout {
                    Layout::Nhwc => (y * w + x) * 3 + c,
                    Layout::Nchw => c * w * h + y * w + x,
                };
                values[idx] = p * a[c] + b[c];
            }
        }
    }
    let shape = spec.input_shape(h, w).to_vec();
    let data = match inp.dtype {
        DType::F32 => TensorData::F32(values),
        DType::I32 => TensorData::I32(values.iter().map(|v| v.round() as i32).collect()),
    };
    (Tensor { shape, data }, t)
}

/// Bilinear source indices and weight for output index `i` at `scale` source pixels per output pixel.
#[inline]
fn sample_pos(i: usize, scale: f32, len: usize) -> (usize, usize, f32) {
    let s = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(len - 1);
    let i1 = (i0 + 1).min(len - 1);
    (i0, i1, s - i0 as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn gradient(w: usize, h: usize) -> Frame {
        let mut rgb = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) * 3;
                rgb[i] = (x * 255 / (w - 1)) as u8;
                rgb[i + 1] = (y * 255 / (h - 1)) as u8;
                rgb[i + 2] = 77;
            }
        }
        Frame::new(w, h, rgb).unwrap()
    }

    #[test]
    fn letterbox_pads_and_keeps_aspect() {
        let spec = Catalog::builtin().get("movenet-multipose").unwrap().clone().with_longest_side(256).unwrap();
        let f = gradient(200, 100);
        let (t, tr) = prepare(&spec, &f);
        assert_eq!(t.shape, vec![1, 128, 256, 3]);
        assert_eq!((tr.content_w, tr.content_h), (256.0, 128.0));
        let TensorData::I32(v) = &t.data else { panic!("int32 expected") };
        // Blue channel is constant 77 everywhere in the picture.
        assert!(v.iter().skip(2).step_by(3).all(|&b| b == 77));
        // Red grows left to right.
        assert!(v[0] < v[(255) * 3]);
        assert_eq!(tr.to_source(128.0, 64.0), (100.0, 50.0));
    }

    #[test]
    fn letterbox_padding_region_is_black() {
        let spec = Catalog::builtin().get("movenet-multipose").unwrap().clone().with_longest_side(64).unwrap();
        let f = gradient(64, 20); // 20 rows -> content 20, padded to 32
        let (t, tr) = prepare(&spec, &f);
        assert_eq!(t.shape, vec![1, 32, 64, 3]);
        assert_eq!(tr.content_h, 20.0);
        let TensorData::I32(v) = &t.data else { panic!() };
        assert!(v[20 * 64 * 3..].iter().all(|&p| p == 0));
        assert!(v[19 * 64 * 3 + 2] == 77);
    }

    #[test]
    fn stretch_normalises_to_unit_range() {
        let spec = Catalog::builtin().get("selfie").unwrap().clone();
        let f = gradient(512, 300);
        let (t, tr) = prepare(&spec, &f);
        assert_eq!(t.shape, vec![1, 256, 256, 3]);
        assert_eq!(tr.scale(), (2.0, 300.0 / 256.0));
        let TensorData::F32(v) = &t.data else { panic!() };
        assert!(v.iter().all(|&p| (0.0..=1.0001).contains(&p)));
        assert!((v[2] - 77.0 / 255.0).abs() < 1e-5);
    }
}
