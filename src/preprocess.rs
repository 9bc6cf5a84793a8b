//! Frame -> input tensor in one pass: resize (bilinear), normalise, lay out, convert dtype.
//! Also returns the geometric transform so decoders can map outputs back to source pixels.

use crate::catalog::{ChannelOrder, DType, Layout, ModelSpec, ResizeMode};
use crate::tensor::{Tensor, TensorData};
use crate::frame::Frame;

/// Maps model-input pixel coordinates to source-frame pixel coordinates:
/// source = input * scale + offset, per axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    /// Input tensor size.
    pub input_w: usize,
    pub input_h: usize,
    /// Source frame size.
    pub frame_w: usize,
    pub frame_h: usize,
    /// Source pixels per input pixel.
    pub scale_x: f32,
    pub scale_y: f32,
    /// Source coordinate of input coordinate 0.
    pub offset_x: f32,
    pub offset_y: f32,
}

/// Where the source frame lies on a model output grid, in grid pixels (origin and extent).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameOnGrid {
    pub x0: f32,
    pub y0: f32,
    pub w: f32,
    pub h: f32,
}

impl FrameOnGrid {
    /// The whole grid covers the frame.
    pub fn full(w: usize, h: usize) -> FrameOnGrid {
        FrameOnGrid { x0: 0.0, y0: 0.0, w: w as f32, h: h as f32 }
    }

    /// Grid position (pixel-centre convention) of the centre of frame pixel (fx, fy).
    #[inline]
    pub fn grid_pos(&self, fx: f32, fy: f32, frame_w: usize, frame_h: usize) -> (f32, f32) {
        (self.x0 + (fx + 0.5) * self.w / frame_w as f32 - 0.5, self.y0 + (fy + 0.5) * self.h / frame_h as f32 - 0.5)
    }
}

impl Transform {
    pub fn new(spec: &ModelSpec, frame_w: usize, frame_h: usize) -> Transform {
        let (input_h, input_w) = spec.input_size(frame_w, frame_h);
        let (fw, fh, iw, ih) = (frame_w as f32, frame_h as f32, input_w as f32, input_h as f32);
        let (scale_x, scale_y, offset_x, offset_y) = match spec.input.resize {
            ResizeMode::Stretch => (fw / iw, fh / ih, 0.0, 0.0),
            ResizeMode::Letterbox => {
                let s = (fw / iw).max(fh / ih);
                (s, s, 0.0, 0.0)
            }
            ResizeMode::CenterPad => {
                // get_multi_scale_size: the short side fills the input; centre = int(w / 2 + 0.5).
                let s = if frame_w < frame_h { fw / iw } else { fh / ih };
                let (cx, cy) = ((fw / 2.0 + 0.5).floor(), (fh / 2.0 + 0.5).floor());
                (s, s, cx - iw * s / 2.0, cy - ih * s / 2.0)
            }
        };
        Transform { input_w, input_h, frame_w, frame_h, scale_x, scale_y, offset_x, offset_y }
    }

    /// A point in input pixels to source pixels.
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        (x * self.scale_x + self.offset_x, y * self.scale_y + self.offset_y)
    }

    /// Where the frame lies on an output grid of `grid_w` x `grid_h` spanning the input.
    pub fn frame_on_grid(&self, grid_w: usize, grid_h: usize) -> FrameOnGrid {
        let (gx, gy) = (grid_w as f32 / self.input_w as f32, grid_h as f32 / self.input_h as f32);
        FrameOnGrid {
            x0: -self.offset_x / self.scale_x * gx,
            y0: -self.offset_y / self.scale_y * gy,
            w: self.frame_w as f32 / self.scale_x * gx,
            h: self.frame_h as f32 / self.scale_y * gy,
        }
    }
}

/// Two bilinear taps along one axis; a weight of 0 marks padding.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    i0: usize,
    i1: usize,
    w0: f32,
    w1: f32,
}

/// Sampling table for one axis of `out_len` outputs over `len` source pixels.
fn taps(out_len: usize, len: usize, scale: f32, offset: f32, mode: ResizeMode) -> Vec<Tap> {
    let last = len - 1;
    (0..out_len)
        .map(|i| match mode {
            // Half-pixel centres, edge replicated (cv2.resize / PIL); outside the picture: padding.
            ResizeMode::Stretch | ResizeMode::Letterbox => {
                let extent = len as f32 / scale;
                if i as f32 >= extent.round() {
                    return Tap { i0: 0, i1: 0, w0: 0.0, w1: 0.0 };
                }
                let s = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(last);
                let f = if i0 == last { 0.0 } else { s - i0 as f32 };
                Tap { i0, i1: (i0 + 1).min(last), w0: 1.0 - f, w1: f }
            }
            // cv2.warpAffine: src = dst * scale + offset, bilinear, constant black border.
            ResizeMode::CenterPad => {
                let s = i as f32 * scale + offset;
                let f0 = s.floor();
                let f = s - f0;
                let inside = |p: f32| p >= 0.0 && p <= last as f32;
                let (w0, w1) = (if inside(f0) { 1.0 - f } else { 0.0 }, if inside(f0 + 1.0) { f } else { 0.0 });
                let clamp = |p: f32| p.clamp(0.0, last as f32) as usize;
                Tap { i0: clamp(f0), i1: clamp(f0 + 1.0), w0, w1 }
            }
        })
        .collect()
}

/// The input mirrored left-right (for a flip-test pass).
pub fn flip_width(t: &Tensor, layout: Layout) -> Tensor {
    let (h, w, c) = match (layout, t.shape.as_slice()) {
        (Layout::Nchw, [_, c, h, w]) => (*h, *w, *c),
        (Layout::Nhwc, [_, h, w, c]) => (*h, *w, *c),
        _ => return t.clone(),
    };
    fn mirror<T: Copy>(v: &[T], layout: Layout, h: usize, w: usize, c: usize) -> Vec<T> {
        let mut out = v.to_vec();
        match layout {
            Layout::Nchw => {
                for row in 0..c * h {
                    let r = row * w;
                    for x in 0..w {
                        out[r + x] = v[r + w - 1 - x];
                    }
                }
            }
            Layout::Nhwc => {
                for y in 0..h {
                    for x in 0..w {
                        let (dst, src) = ((y * w + x) * c, (y * w + w - 1 - x) * c);
                        out[dst..dst + c].copy_from_slice(&v[src..src + c]);
                    }
                }
            }
        }
        out
    }
    let data = match &t.data {
        TensorData::F32(v) => TensorData::F32(mirror(v, layout, h, w, c)),
        TensorData::I32(v) => TensorData::I32(mirror(v, layout, h, w, c)),
    };
    Tensor { shape: t.shape.clone(), data }
}

/// Preprocesses `frame` for `spec`.
pub fn prepare(spec: &ModelSpec, frame: &Frame) -> (Tensor, Transform) {
    let t = Transform::new(spec, frame.width, frame.height);
    let cols = taps(t.input_w, frame.width, t.scale_x, t.offset_x, spec.input.resize);
    let rows = taps(t.input_h, frame.height, t.scale_y, t.offset_y, spec.input.resize);
    (sample(spec, frame, &cols, &rows), t)
}

/// One model's input for one frame, made on another thread.
pub struct Prepared {
    pub model: String,
    pub frame_index: u64,
    pub input: Tensor,
    pub transform: Transform,
}

impl Prepared {
    /// Whether this was made by `spec` from `frame` (same model, frame and size).
    pub fn fits(&self, spec: &ModelSpec, frame: &Frame) -> bool {
        self.model == spec.name
            && self.frame_index == frame.index
            && (self.transform.frame_w, self.transform.frame_h) == (frame.width, frame.height)
    }
}

/// The models whose inputs a stage ahead makes.
#[derive(Clone, Default)]
pub struct InputPlan {
    specs: Vec<ModelSpec>,
}

impl InputPlan {
    pub fn new(specs: Vec<ModelSpec>) -> InputPlan {
        InputPlan { specs }
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The planned models' names.
    pub fn models(&self) -> Vec<&str> {
        self.specs.iter().map(|s| s.name.as_str()).collect()
    }

    /// Every planned model's input for `frame`.
    pub fn make(&self, frame: &Frame) -> Vec<Prepared> {
        self.specs
            .iter()
            .map(|spec| {
                let (input, transform) = prepare(spec, frame);
                Prepared { model: spec.name.clone(), frame_index: frame.index, input, transform }
            })
            .collect()
    }
}

/// A square region of `frame` (corner `x0`, `y0`, side `side` in source pixels; it may reach
/// beyond the frame, which reads as black) resized to `spec`'s fixed input: a person's crop in
/// top-down pose.
pub fn prepare_crop(spec: &ModelSpec, frame: &Frame, x0: f32, y0: f32, side: f32) -> (Tensor, Transform) {
    let (input_h, input_w) = spec.input_size(frame.width, frame.height);
    let (scale_x, scale_y) = (side / input_w as f32, side / input_h as f32);
    let t = Transform { input_w, input_h, frame_w: frame.width, frame_h: frame.height, scale_x, scale_y, offset_x: x0, offset_y: y0 };
    let cols = crop_taps(input_w, frame.width, scale_x, x0);
    let rows = crop_taps(input_h, frame.height, scale_y, y0);
    (sample(spec, frame, &cols, &rows), t)
}

/// Sampling table of a crop: half-pixel centres, source = (i + 0.5) * scale - 0.5 + offset,
/// black outside the picture.
fn crop_taps(out_len: usize, len: usize, scale: f32, offset: f32) -> Vec<Tap> {
    let last = len as f32 - 1.0;
    (0..out_len)
        .map(|i| {
            let s = (i as f32 + 0.5) * scale - 0.5 + offset;
            if !s.is_finite() || s < -1.0 || s > last + 1.0 {
                return Tap { i0: 0, i1: 0, w0: 0.0, w1: 0.0 };
            }
            let f0 = s.floor();
            let f = s - f0;
            let inside = |p: f32| p >= 0.0 && p <= last;
            let (w0, w1) = (if inside(f0) { 1.0 - f } else { 0.0 }, if inside(f0 + 1.0) { f } else { 0.0 });
            let clamp = |p: f32| p.clamp(0.0, last) as usize;
            Tap { i0: clamp(f0), i1: clamp(f0 + 1.0), w0, w1 }
        })
        .collect()
}

/// Bilinear sampling through the column and row tables, normalised, laid out and converted
/// as `spec` says. Separable: each output row first blends its two source rows (only the
/// columns the taps read) into a float row, a straight pass the compiler vectorises; then each
/// output pixel blends two pixels of that row and goes through the per-channel affine.
fn sample(spec: &ModelSpec, frame: &Frame, cols: &[Tap], rows: &[Tap]) -> Tensor {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { sample_avx2(spec, frame, cols, rows) };
    }
    sample_any(spec, frame, cols, rows)
}

/// The same code compiled for AVX2 and FMA: 8-wide conversions and blends.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sample_avx2(spec: &ModelSpec, frame: &Frame, cols: &[Tap], rows: &[Tap]) -> Tensor {
    sample_any(spec, frame, cols, rows)
}

#[inline(always)]
fn sample_any(spec: &ModelSpec, frame: &Frame, cols: &[Tap], rows: &[Tap]) -> Tensor {
    let shape = spec.input_shape(rows.len(), cols.len()).to_vec();
    let bgr = spec.input.channels == ChannelOrder::Bgr;
    let data = match spec.input.dtype {
        DType::F32 if bgr => TensorData::F32(sample_into::<true, _>(spec, frame, cols, rows, |v| v)),
        DType::F32 => TensorData::F32(sample_into::<false, _>(spec, frame, cols, rows, |v| v)),
        DType::I32 if bgr => TensorData::I32(sample_into::<true, _>(spec, frame, cols, rows, round_to_i32)),
        DType::I32 => TensorData::I32(sample_into::<false, _>(spec, frame, cols, rows, round_to_i32)),
    };
    Tensor { shape, data }
}

/// Half away from zero, as f32::round, but as an add and a truncation that vectorise (round()
/// is a library call per value without SSE4.1).
#[inline(always)]
fn round_to_i32(v: f32) -> i32 {
    // Clamped first (NaN goes to the low end), so the plain conversion cannot overflow: no
    // saturation checks per value.
    let r = (v + 0.5f32.copysign(v)).max(-2.0e9).min(2.0e9);
    // SAFETY: r is finite and within i32's range.
    unsafe { r.to_int_unchecked::<i32>() }
}

#[inline(always)]
fn sample_into<const BGR: bool, T: Copy + Default>(spec: &ModelSpec, frame: &Frame, cols: &[Tap], rows: &[Tap], store: impl Fn(f32) -> T) -> Vec<T> {
    let (w, h) = (cols.len(), rows.len());
    let inp = &spec.input;
    // Per-channel affine: value = pixel * a[c] + b[c]; padding is a black pixel, i.e. b[c].
    let a: [f32; 3] = std::array::from_fn(|c| inp.scale / inp.std[c]);
    let b: [f32; 3] = std::array::from_fn(|c| -inp.mean[c] / inp.std[c]);
    let src = &frame.rgb;
    let stride = frame.width * 3;
    // Network channel c reads frame channel from[c] (a constant: the channel loop unrolls).
    let from: [usize; 3] = if BGR { [2, 1, 0] } else { [0, 1, 2] };
    // The source columns any tap reads (a crop reads a part of each row).
    let lo = cols.iter().map(|t| t.i0.min(t.i1)).min().unwrap_or(0) * 3;
    let hi = (cols.iter().map(|t| t.i0.max(t.i1)).max().unwrap_or(0) + 1) * 3;
    let mut blended = vec![0f32; stride];
    let mut values = vec![T::default(); w * h * 3];
    let plane = w * h;
    for (y, ry) in rows.iter().enumerate() {
        let r0 = &src[ry.i0 * stride + lo..ry.i0 * stride + hi];
        let r1 = &src[ry.i1 * stride + lo..ry.i1 * stride + hi];
        let (w0, w1) = (ry.w0, ry.w1);
        for ((o, &p0), &p1) in blended[lo..hi].iter_mut().zip(r0).zip(r1) {
            *o = p0 as f32 * w0 + p1 as f32 * w1;
        }
        let row = &blended;
        match inp.layout {
            Layout::Nhwc => {
                let out = &mut values[y * w * 3..(y + 1) * w * 3];
                for (px, cx) in out.chunks_exact_mut(3).zip(cols) {
                    let (s0, s1) = (cx.i0 * 3, cx.i1 * 3);
                    for c in 0..3 {
                        let f = from[c];
                        px[c] = store((row[s0 + f] * cx.w0 + row[s1 + f] * cx.w1) * a[c] + b[c]);
                    }
                }
            }
            Layout::Nchw => {
                for (x, cx) in cols.iter().enumerate() {
                    let (s0, s1) = (cx.i0 * 3, cx.i1 * 3);
                    for c in 0..3 {
                        let f = from[c];
                        values[c * plane + y * w + x] = store((row[s0 + f] * cx.w0 + row[s1 + f] * cx.w1) * a[c] + b[c]);
                    }
                }
            }
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, SizeRule};

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
        let spec = Catalog::builtin().get("movenet-multipose").unwrap().clone().with_side(256).unwrap();
        let f = gradient(200, 100);
        let (t, tr) = prepare(&spec, &f);
        assert_eq!(t.shape, vec![1, 128, 256, 3]);
        let TensorData::I32(v) = &t.data else { panic!("int32 expected") };
        // Blue channel is constant 77 everywhere in the picture.
        assert!(v.iter().skip(2).step_by(3).all(|&b| b == 77));
        // Red grows left to right.
        assert!(v[0] < v[(255) * 3]);
        assert_eq!(tr.to_source(128.0, 64.0), (100.0, 50.0));
        let g = tr.frame_on_grid(128, 64);
        assert_eq!((g.x0, g.y0, g.w, g.h), (0.0, 0.0, 128.0, 64.0));
    }

    #[test]
    fn letterbox_padding_region_is_black() {
        let spec = Catalog::builtin().get("movenet-multipose").unwrap().clone().with_side(64).unwrap();
        let f = gradient(64, 20); // 20 rows -> content 20, padded to 32
        let (t, tr) = prepare(&spec, &f);
        assert_eq!(t.shape, vec![1, 32, 64, 3]);
        assert_eq!(tr.frame_on_grid(64, 32).h, 20.0);
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
        assert_eq!((tr.scale_x, tr.scale_y), (2.0, 300.0 / 256.0));
        let TensorData::F32(v) = &t.data else { panic!() };
        assert!(v.iter().all(|&p| (0.0..=1.0001).contains(&p)));
        assert!((v[2] - 77.0 / 255.0).abs() < 1e-5);
    }

    /// Any frame size through every resize mode: the right shape, finite values, no panic.
    #[test]
    fn random_sizes_through_every_mode() {
        let mut rng = crate::rng::SplitMix64(12345);
        let mut rnd = move |n: usize| rng.below(n);
        for _ in 0..60 {
            let (w, h) = (1 + rnd(300), 1 + rnd(300));
            let f = Frame::new(w, h, (0..w * h * 3).map(|i| (i * 7) as u8).collect()).unwrap();
            for spec in [
                Catalog::builtin().get("movenet-multipose").unwrap().clone().with_side(32 * (1 + rnd(8))).unwrap(),
                Catalog::builtin().get("selfie").unwrap().clone(),
                litepose_like(64 * (1 + rnd(4))),
            ] {
                let (t, tr) = prepare(&spec, &f);
                let (ih, iw) = spec.input_size(w, h);
                assert_eq!(t.shape.iter().product::<usize>(), ih * iw * 3);
                assert_eq!((tr.input_w, tr.input_h), (iw, ih));
                if let TensorData::F32(v) = &t.data {
                    assert!(v.iter().all(|x| x.is_finite()));
                }
                // The frame's corners map inside the input, and back.
                let (x, y) = tr.to_source(0.0, 0.0);
                assert!(x <= 0.5 && y <= 0.5, "{x} {y}");
            }
        }
    }

    /// A crop reaching past the frame's corner: black outside, the frame's pixels inside, and
    /// the transform maps the crop's input pixels back onto the frame.
    #[test]
    fn crops_pad_outside_the_frame_with_black() {
        let spec = Catalog::builtin().get("movenet-thunder").unwrap().clone();
        let f = gradient(100, 80);
        let (t, tr) = prepare_crop(&spec, &f, -50.0, -50.0, 256.0);
        assert_eq!(t.shape, vec![1, 256, 256, 3]);
        let TensorData::I32(v) = &t.data else { panic!("int32 expected") };
        // Top-left is outside: black; pixel (60, 60) of the input is frame pixel (10, 10).
        assert_eq!(&v[..3], &[0, 0, 0]);
        let i = (60 * 256 + 60) * 3;
        assert_eq!(v[i + 2], 77);
        assert_eq!(v[i], (10 * 255 / 99) as i32);
        assert_eq!(tr.to_source(60.5, 60.5), (10.5, 10.5));
        // Beyond the frame's far edge: black again.
        assert_eq!(v[(200 * 256 + 200) * 3 + 2], 0);
        // Downscaling crop: 512 source pixels onto 256.
        let (_, tr) = prepare_crop(&spec, &f, 0.0, 0.0, 512.0);
        assert_eq!((tr.scale_x, tr.scale_y), (2.0, 2.0));
    }

    #[test]
    fn flip_width_mirrors_each_row() {
        let t = Tensor::f32(vec![1, 1, 2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(flip_width(&t, Layout::Nchw).as_f32().unwrap(), &[3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        let t = Tensor::f32(vec![1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(flip_width(&t, Layout::Nhwc).as_f32().unwrap(), &[3.0, 4.0, 1.0, 2.0]);
    }

    fn litepose_like(short: usize) -> ModelSpec {
        let mut spec = Catalog::builtin().get("selfie").unwrap().clone();
        spec.input.size = SizeRule::ShortSide { short_side: short, multiple_of: 64 };
        spec.input.resize = ResizeMode::CenterPad;
        spec.input.layout = Layout::Nchw;
        spec
    }

    #[test]
    fn short_side_rule_matches_get_multi_scale_size() {
        let spec = litepose_like(256);
        // w >= h: h_resized = 256, w_resized = int((256 / 425 * 640 + 63) // 64 * 64) = 448.
        assert_eq!(spec.input_size(640, 425), (256, 448));
        // w < h: w_resized = 256, h_resized = ceil64(256 / 480 * 640) = 384.
        assert_eq!(spec.input_size(480, 640), (384, 256));
        assert_eq!(litepose_like(448).input_size(768, 576), (448, 640));
    }

    #[test]
    fn center_pad_maps_about_the_image_centre() {
        let spec = litepose_like(256);
        let f = gradient(640, 425);
        let (t, tr) = prepare(&spec, &f);
        assert_eq!(t.shape, vec![1, 3, 256, 448]);
        // The input centre is the image centre int(w/2+0.5), int(h/2+0.5).
        let (x, y) = tr.to_source(224.0, 128.0);
        assert!((x - 320.0).abs() < 1e-3 && (y - 213.0).abs() < 1e-3, "{x} {y}");
        // Columns left of the picture are padding (black -> 0 after scale with zero mean).
        let TensorData::F32(v) = &t.data else { panic!() };
        let first_col_padding = (tr.offset_x < -tr.scale_x) as usize;
        assert_eq!(first_col_padding, 1);
        assert_eq!(v[0], 0.0);
        // Blue inside the picture stays 77 / 255.
        assert!((v[2 * 256 * 448 + 128 * 448 + 224] - 77.0 / 255.0).abs() < 1e-5);
        let g = tr.frame_on_grid(448, 256);
        assert!((g.w - 640.0 / tr.scale_x).abs() < 1e-3 && g.x0 > 0.0);
    }
}
