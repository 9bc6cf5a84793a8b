//! A decoded picture: packed RGB8, row-major, plus where it came from in the stream.

use anyhow::{bail, Context, Result};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    /// width * height * 3 bytes, RGB.
    pub rgb: Vec<u8>,
    /// Position in the source (0-based) and presentation time in seconds.
    pub index: u64,
    pub timestamp_s: f64,
}

/// Largest picture accepted from any source (guards allocations driven by untrusted headers).
pub const MAX_SIDE: usize = 16384;

impl Frame {
    pub fn new(width: usize, height: usize, rgb: Vec<u8>) -> Result<Frame> {
        check_dims(width, height)?;
        if rgb.len() != width * height * 3 {
            bail!("frame buffer has {} bytes, expected {}x{}x3", rgb.len(), width, height);
        }
        Ok(Frame { width, height, rgb, index: 0, timestamp_s: 0.0 })
    }

    pub fn load_image(path: &Path) -> Result<Frame> {
        if !path.exists() {
            bail!("image {} does not exist", path.display());
        }
        let img = image::ImageReader::open(path)
            .with_context(|| format!("cannot open image {}", path.display()))?
            .with_guessed_format()
            .with_context(|| format!("cannot read image {}", path.display()))?;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_SIDE as u32);
        limits.max_image_height = Some(MAX_SIDE as u32);
        let mut img = img;
        img.limits(limits);
        let decoded = img
            .decode()
            .with_context(|| format!("{} is not an image edgesight can decode", path.display()))?
            .into_rgb8();
        let (w, h) = (decoded.width() as usize, decoded.height() as usize);
        Frame::new(w, h, decoded.into_raw())
    }

    pub fn save_png(&self, path: &Path) -> Result<()> {
        image::save_buffer(path, &self.rgb, self.width as u32, self.height as u32, image::ColorType::Rgb8)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

pub fn check_dims(width: usize, height: usize) -> Result<()> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        bail!("picture size {width}x{height} is outside 1..={MAX_SIDE}");
    }
    Ok(())
}
