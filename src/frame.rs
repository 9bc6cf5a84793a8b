//! A decoded picture: packed RGB8, row-major, plus where it came from in the stream.

use anyhow::{bail, Context, Result};
use std::io::Read;
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

/// Largest image file read whole (its structure is checked before decoding): a 16384-pixel
/// square PNG of noise is about 800 MB.
const MAX_IMAGE_BYTES: u64 = 1 << 30;

impl Frame {
    pub fn new(width: usize, height: usize, rgb: Vec<u8>) -> Result<Frame> {
        check_dims(width, height)?;
        if rgb.len() != width * height * 3 {
            bail!("frame buffer has {} bytes, expected {}x{}x3", rgb.len(), width, height);
        }
        Ok(Frame { width, height, rgb, index: 0, timestamp_s: 0.0 })
    }

    /// Reads a JPEG or PNG file. A file that ends before its picture does (a truncated
    /// download or copy) is named in a warning on stderr when the decoder still gives a picture
    /// (the JPEG decoder fills in what is missing), and in the error when it does not.
    pub fn load_image(path: &Path) -> Result<Frame> {
        if !path.exists() {
            bail!("image {} does not exist", path.display());
        }
        let file = std::fs::File::open(path).with_context(|| format!("cannot open image {}", path.display()))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > MAX_IMAGE_BYTES {
            bail!("image {} is {len} bytes, larger than the {MAX_IMAGE_BYTES}-byte limit", path.display());
        }
        let mut bytes = Vec::new();
        // One byte past the limit, in case the file grew since its size was read.
        file.take(MAX_IMAGE_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read image {}", path.display()))?;
        if bytes.len() as u64 > MAX_IMAGE_BYTES {
            bail!("image {} is larger than the {MAX_IMAGE_BYTES}-byte limit", path.display());
        }
        let mut img = image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
            .with_guessed_format()
            .with_context(|| format!("cannot read image {}", path.display()))?;
        let truncated = img.format().and_then(|f| truncation(f, &bytes));
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_SIDE as u32);
        limits.max_image_height = Some(MAX_SIDE as u32);
        img.limits(limits);
        let decoded = match img.decode() {
            Ok(d) => d.into_rgb8(),
            Err(e) => {
                let e = anyhow::Error::new(e);
                return Err(match truncated {
                    Some(what) => e.context(format!("{} is truncated: {what}", path.display())),
                    None => e.context(format!("{} is not an image edgesight can decode", path.display())),
                });
            }
        };
        if let Some(what) = truncated {
            eprintln!("warning: {}: the file is truncated: {what}; the decoder filled in the missing part of the picture", path.display());
        }
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

/// Says how a JPEG or PNG file ends too early (None: it is whole, or not one whose structure is
/// checked here). Decoders may fill in a cut-off JPEG without an error, so the file's own
/// structure is walked: JPEG segments up to the end-of-image marker, PNG chunks up to IEND.
fn truncation(format: image::ImageFormat, bytes: &[u8]) -> Option<String> {
    let complete = match format {
        image::ImageFormat::Jpeg => jpeg_reaches_end(bytes),
        image::ImageFormat::Png => png_reaches_end(bytes),
        _ => return None,
    };
    match (complete, format) {
        (false, image::ImageFormat::Jpeg) => {
            Some(format!("its JPEG data ends after {} bytes, before the end-of-image marker", bytes.len()))
        }
        (false, _) => Some(format!("its PNG data ends after {} bytes, before the IEND chunk", bytes.len())),
        (true, _) => None,
    }
}

/// False when the JPEG data runs out before its end-of-image marker (FF D9). Segments are
/// skipped by their lengths (so an embedded thumbnail's marker does not count), entropy-coded
/// data up to the next marker; data that is not JPEG structure is left to the decoder (true).
fn jpeg_reaches_end(b: &[u8]) -> bool {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return true;
    }
    let mut i = 2;
    loop {
        if i >= b.len() {
            return false;
        }
        if b[i] != 0xFF {
            return true; // not a marker where one belongs: corrupt rather than cut, the decoder says
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1; // fill bytes
        }
        let Some(&marker) = b.get(i) else { return false };
        i += 1;
        match marker {
            0xD9 => return true,
            0xD0..=0xD7 | 0x01 => continue, // no length
            _ => {}
        }
        let Some(len) = b.get(i..i + 2).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else { return false };
        i += len;
        if i > b.len() {
            return false;
        }
        if marker == 0xDA {
            // Entropy-coded data: FF is followed by 00 (a stuffed byte) or a restart marker,
            // anything else is the next marker.
            loop {
                if i + 1 >= b.len() {
                    return false;
                }
                if b[i] == 0xFF && b[i + 1] != 0 && !(0xD0..=0xD7).contains(&b[i + 1]) {
                    break;
                }
                i += 1;
            }
        }
    }
}

/// False when the PNG data runs out before its IEND chunk.
fn png_reaches_end(b: &[u8]) -> bool {
    let mut i = 8; // the signature
    loop {
        let Some(head) = b.get(i..i + 8) else { return false };
        if &head[4..8] == b"IEND" {
            return true;
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        // length, type, data, CRC
        i = match i.checked_add(12).and_then(|n| n.checked_add(len)) {
            Some(n) if n <= b.len() => n,
            _ => return false,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coco_jpeg() -> Vec<u8> {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/coco/000000000785.jpg")).unwrap()
    }

    #[test]
    fn whole_and_cut_jpegs() {
        let b = coco_jpeg();
        assert!(jpeg_reaches_end(&b));
        for cut in [3, 20, b.len() / 3, b.len() / 2, b.len() - 2, b.len() - 1] {
            assert!(!jpeg_reaches_end(&b[..cut]), "cut at {cut} of {}", b.len());
        }
        // Bytes after the end-of-image marker (e.g. appended data) do not make it truncated.
        let mut longer = b.clone();
        longer.extend_from_slice(&[0u8; 100]);
        assert!(jpeg_reaches_end(&longer));
        assert!(truncation(image::ImageFormat::Jpeg, &b[..b.len() / 2]).unwrap().contains("end-of-image"));
    }

    #[test]
    fn whole_and_cut_pngs() {
        let frame = Frame::new(32, 24, (0..32 * 24 * 3).map(|i| (i % 251) as u8).collect()).unwrap();
        let mut png = Vec::new();
        image::write_buffer_with_format(
            &mut std::io::Cursor::new(&mut png),
            &frame.rgb,
            32,
            24,
            image::ColorType::Rgb8,
            image::ImageFormat::Png,
        )
        .unwrap();
        assert!(png_reaches_end(&png));
        for cut in [8, 20, png.len() / 2, png.len() - 12] {
            assert!(!png_reaches_end(&png[..cut]), "cut at {cut} of {}", png.len());
        }
    }

    #[test]
    fn structure_walks_never_panic_on_mutated_files() {
        // Untrusted bytes: cut, flipped and random files give an answer, never a panic or a hang.
        let jpeg = coco_jpeg();
        let mut rng = crate::rng::SplitMix64(7);
        for _ in 0..2000 {
            let mut b = jpeg.clone();
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] = rng.next_u64() as u8;
            }
            b.truncate(1 + rng.below(b.len()));
            let _ = jpeg_reaches_end(&b);
            let _ = png_reaches_end(&b);
        }
        for n in 0..64 {
            let b: Vec<u8> = (0..n).map(|_| [0xFF, 0xD8, 0xDA, 0x00, rng.next_u64() as u8][rng.below(5)]).collect();
            let _ = jpeg_reaches_end(&b);
            let _ = png_reaches_end(&b);
        }
    }
}
