//! Camera pictures in YUV 4:2:0 (Android's `YUV_420_888`: three planes with any row and pixel
//! strides, which covers I420, NV12 and NV21 buffers) -> RGB frames, turned upright.
//!
//! Camera2 delivers frames in the sensor's orientation; the Android app passes the rotation that
//! makes them upright for the screen, so the models see people standing up. Buffers come from a
//! driver: every size and stride is checked before reading, a bad one is an error, not a panic.

use crate::frame::{check_dims, Frame};
use anyhow::{bail, Result};

/// One plane of a YUV picture.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    /// Bytes from one row to the next.
    pub row_stride: usize,
    /// Bytes from one sample to the next in a row (1: planar, 2: interleaved U/V as in NV12/NV21).
    pub pixel_stride: usize,
}

/// A YUV 4:2:0 picture: full-resolution Y, U and V at half resolution in both directions
/// (rounded up).
#[derive(Debug, Clone, Copy)]
pub struct Yuv420<'a> {
    pub width: usize,
    pub height: usize,
    pub y: Plane<'a>,
    pub u: Plane<'a>,
    pub v: Plane<'a>,
}

/// Clockwise rotation that makes the picture upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    R0,
    R90,
    R180,
    R270,
}

impl Rotation {
    /// From degrees (any multiple of 90, negative too).
    pub fn from_degrees(deg: i32) -> Result<Rotation> {
        if deg % 90 != 0 {
            bail!("rotation {deg} is not a multiple of 90 degrees");
        }
        Ok(match deg.rem_euclid(360) {
            0 => Rotation::R0,
            90 => Rotation::R90,
            180 => Rotation::R180,
            _ => Rotation::R270,
        })
    }
}

fn check_plane(name: &str, p: &Plane, width: usize, height: usize) -> Result<()> {
    if p.pixel_stride == 0 || p.row_stride == 0 {
        bail!("{name} plane has a zero stride (row {}, pixel {})", p.row_stride, p.pixel_stride);
    }
    let row_bytes = (width - 1) * p.pixel_stride + 1;
    if p.row_stride < row_bytes {
        bail!("{name} plane: row stride {} is shorter than a row of {width} samples at pixel stride {}", p.row_stride, p.pixel_stride);
    }
    // The last row need not be padded to the full stride (Android buffers often are not).
    let needed = (height - 1) * p.row_stride + row_bytes;
    if p.data.len() < needed {
        bail!("{name} plane has {} bytes, {width}x{height} samples need {needed}", p.data.len());
    }
    Ok(())
}

/// Full-range BT.601 (JFIF, what Camera2 delivers) to RGB, in 16.16 fixed point.
#[inline]
fn to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let y = (y as i32) << 16;
    let (u, v) = (u as i32 - 128, v as i32 - 128);
    let clamp = |x: i32| ((x + (1 << 15)) >> 16).clamp(0, 255) as u8;
    // 1.402, 0.344136, 0.714136, 1.772 scaled by 65536.
    [clamp(y + 91881 * v), clamp(y - 22554 * u - 46802 * v), clamp(y + 116130 * u)]
}

/// Converts and rotates; the frame is `height` x `width` for 90 and 270 degrees.
pub fn to_frame(img: &Yuv420, rotation: Rotation) -> Result<Frame> {
    let (w, h) = (img.width, img.height);
    check_dims(w, h)?;
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    check_plane("Y", &img.y, w, h)?;
    check_plane("U", &img.u, cw, ch)?;
    check_plane("V", &img.v, cw, ch)?;
    let (ow, oh) = match rotation {
        Rotation::R0 | Rotation::R180 => (w, h),
        Rotation::R90 | Rotation::R270 => (h, w),
    };
    let mut rgb = vec![0u8; w * h * 3];
    // Walk the source row by row (cache-friendly reads) and place each pixel where the rotation puts it.
    for sy in 0..h {
        let yrow = &img.y.data[sy * img.y.row_stride..];
        let urow = &img.u.data[(sy / 2) * img.u.row_stride..];
        let vrow = &img.v.data[(sy / 2) * img.v.row_stride..];
        for sx in 0..w {
            let c = sx / 2;
            let px = to_rgb(yrow[sx * img.y.pixel_stride], urow[c * img.u.pixel_stride], vrow[c * img.v.pixel_stride]);
            let (ox, oy) = match rotation {
                Rotation::R0 => (sx, sy),
                Rotation::R90 => (h - 1 - sy, sx),
                Rotation::R180 => (w - 1 - sx, h - 1 - sy),
                Rotation::R270 => (sy, w - 1 - sx),
            };
            let o = (oy * ow + ox) * 3;
            rgb[o..o + 3].copy_from_slice(&px);
        }
    }
    Frame::new(ow, oh, rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A planar (I420) picture whose Y encodes the position, with neutral chroma (grey pixels).
    fn grey_i420(w: usize, h: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let y: Vec<u8> = (0..w * h).map(|i| (i * 10 + 5) as u8).collect();
        let c = w.div_ceil(2) * h.div_ceil(2);
        (y, vec![128; c], vec![128; c])
    }

    fn plane(data: &[u8], row_stride: usize, pixel_stride: usize) -> Plane<'_> {
        Plane { data, row_stride, pixel_stride }
    }

    #[test]
    fn known_colours() {
        assert_eq!(to_rgb(128, 128, 128), [128, 128, 128]);
        assert_eq!(to_rgb(0, 128, 128), [0, 0, 0]);
        assert_eq!(to_rgb(255, 128, 128), [255, 255, 255]);
        // JFIF red: Y 76, U 85, V 255 -> about (254, 0, 0).
        let [r, g, b] = to_rgb(76, 85, 255);
        assert!(r >= 250 && g <= 2 && b <= 2, "{r} {g} {b}");
        // Out of gamut clamps instead of wrapping.
        assert_eq!(to_rgb(255, 255, 255)[0], 255);
        assert_eq!(to_rgb(0, 0, 0)[1], 135);
    }

    #[test]
    fn rotations_place_pixels_upright() {
        // 3x2 source, Y values a..f:   a b c
        //                              d e f
        let (w, h) = (3, 2);
        let (y, u, v) = grey_i420(w, h);
        let img = Yuv420 { width: w, height: h, y: plane(&y, w, 1), u: plane(&u, 2, 1), v: plane(&v, 2, 1) };
        let luma = |f: &Frame| f.rgb.chunks(3).map(|p| p[0]).collect::<Vec<u8>>();
        let [a, b, c, d, e, f] = [5u8, 15, 25, 35, 45, 55];
        let r0 = to_frame(&img, Rotation::R0).unwrap();
        assert_eq!((r0.width, r0.height, luma(&r0)), (3, 2, vec![a, b, c, d, e, f]));
        // 90 clockwise: the left column (a, d) becomes the top row, read bottom-up.
        let r90 = to_frame(&img, Rotation::R90).unwrap();
        assert_eq!((r90.width, r90.height, luma(&r90)), (2, 3, vec![d, a, e, b, f, c]));
        let r180 = to_frame(&img, Rotation::R180).unwrap();
        assert_eq!(luma(&r180), vec![f, e, d, c, b, a]);
        let r270 = to_frame(&img, Rotation::R270).unwrap();
        assert_eq!((r270.width, r270.height, luma(&r270)), (2, 3, vec![c, f, b, e, a, d]));
        assert_eq!(Rotation::from_degrees(-90).unwrap(), Rotation::R270);
        assert_eq!(Rotation::from_degrees(450).unwrap(), Rotation::R90);
        assert!(Rotation::from_degrees(45).is_err());
    }

    #[test]
    fn interleaved_chroma_and_padded_rows_match_planar() {
        // A 4x4 picture with varied chroma, as I420 and as NV21 with padded rows (what many
        // Android cameras deliver: V and U interleaved, pixel stride 2, row stride > width).
        let (w, h) = (4, 4);
        let y: Vec<u8> = (0..16).map(|i| (i * 13 + 20) as u8).collect();
        let u = [60u8, 90, 160, 200];
        let v = [200u8, 40, 128, 90];
        let planar = Yuv420 { width: w, height: h, y: plane(&y, 4, 1), u: plane(&u, 2, 1), v: plane(&v, 2, 1) };
        let expected = to_frame(&planar, Rotation::R0).unwrap();

        let stride = 8;
        let mut ypad = vec![0u8; stride * h];
        for r in 0..h {
            ypad[r * stride..r * stride + w].copy_from_slice(&y[r * w..r * w + w]);
        }
        // NV21: V U V U per chroma row; the last row is not padded.
        let mut vu = vec![0u8; stride + 4];
        for r in 0..2 {
            for c in 0..2 {
                vu[r * stride + c * 2] = v[r * 2 + c];
                vu[r * stride + c * 2 + 1] = u[r * 2 + c];
            }
        }
        let nv21 = Yuv420 { width: w, height: h, y: plane(&ypad, stride, 1), u: plane(&vu[1..], stride, 2), v: plane(&vu, stride, 2) };
        let got = to_frame(&nv21, Rotation::R0).unwrap();
        assert_eq!(got.rgb, expected.rgb);
        // Colour actually came through (not all grey).
        assert!(got.rgb.chunks(3).any(|p| p[0] != p[2]));
    }

    #[test]
    fn odd_sizes_and_bad_buffers() {
        let (w, h) = (5, 3);
        let (y, u, v) = grey_i420(w, h);
        let ok = Yuv420 { width: w, height: h, y: plane(&y, w, 1), u: plane(&u, 3, 1), v: plane(&v, 3, 1) };
        assert_eq!(to_frame(&ok, Rotation::R90).unwrap().rgb.len(), 5 * 3 * 3);

        let short_y = Yuv420 { y: plane(&y[..y.len() - 1], w, 1), ..ok };
        assert!(to_frame(&short_y, Rotation::R0).unwrap_err().to_string().contains("Y plane has 14 bytes"));
        let short_u = Yuv420 { u: plane(&u[..5], 3, 1), ..ok };
        assert!(to_frame(&short_u, Rotation::R0).unwrap_err().to_string().contains("U plane"));
        let zero = Yuv420 { v: plane(&v, 3, 0), ..ok };
        assert!(to_frame(&zero, Rotation::R0).unwrap_err().to_string().contains("zero stride"));
        let narrow = Yuv420 { y: plane(&y, 4, 1), ..ok };
        assert!(to_frame(&narrow, Rotation::R0).unwrap_err().to_string().contains("row stride 4"));
        let empty = Yuv420 { width: 0, ..ok };
        assert!(to_frame(&empty, Rotation::R0).is_err());
        let huge = Yuv420 { width: usize::MAX / 2, ..ok };
        assert!(to_frame(&huge, Rotation::R0).is_err());
    }
}
