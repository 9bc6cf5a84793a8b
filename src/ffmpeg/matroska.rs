//! Raw RGB frames with their own timestamps, as a Matroska stream for ffmpeg's input.
//!
//! A raw video pipe has one frame rate for all frames; a variable-frame-rate source (phone
//! recordings, concatenated clips) would come out of the encoder with other timing than it went
//! in. Matroska carries a timestamp per frame and is the simplest container ffmpeg reads from a
//! pipe: an EBML header, a Segment of unknown size (streamed), the track (V_UNCOMPRESSED,
//! RGB24), then one Cluster per frame holding one SimpleBlock.

use std::io::{self, Write};

/// Timestamps are written in microseconds (TimestampScale, in nanoseconds).
const TIMESTAMP_SCALE_NS: u64 = 1_000;

/// An element's size as an EBML variable-length integer (1-8 bytes).
fn size_vint(n: u64) -> Vec<u8> {
    for len in 1..=8u32 {
        // All ones is reserved ("unknown size").
        if n < (1u64 << (7 * len)) - 1 {
            let marker = 1u64 << (7 * len);
            return (n | marker).to_be_bytes()[(8 - len) as usize..].to_vec();
        }
    }
    unreachable!("element sizes fit in 56 bits")
}

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = b.iter().position(|&x| x != 0).unwrap_or(3);
    b[skip..].to_vec()
}

/// The head of an element (id and size), the payload follows.
fn head(id: u32, size: u64) -> Vec<u8> {
    let mut v = id_bytes(id);
    v.extend(size_vint(size));
    v
}

fn element(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = head(id, payload.len() as u64);
    v.extend_from_slice(payload);
    v
}

fn uint(id: u32, value: u64) -> Vec<u8> {
    let b = value.to_be_bytes();
    let skip = b.iter().position(|&x| x != 0).unwrap_or(7);
    element(id, &b[skip..])
}

fn text(id: u32, s: &str) -> Vec<u8> {
    element(id, s.as_bytes())
}

/// The stream's start: EBML header, Segment (unknown size), Info and the one video track.
pub fn header(width: usize, height: usize) -> Vec<u8> {
    let ebml = [uint(0x4286, 1), uint(0x42F7, 1), uint(0x42F2, 4), uint(0x42F3, 8), text(0x4282, "matroska"), uint(0x4287, 4), uint(0x4285, 2)].concat();
    let mut out = element(0x1A45_DFA3, &ebml);
    // Segment with the reserved "unknown size": a live stream.
    out.extend(id_bytes(0x1853_8067));
    out.extend([0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    let info = [uint(0x2A_D7B1, TIMESTAMP_SCALE_NS), text(0x4D80, "edgesight"), text(0x5741, "edgesight")].concat();
    out.extend(element(0x1549_A966, &info));
    // PixelWidth, PixelHeight; ColourSpace: the raw format's FourCC ("RGB" + bits per pixel).
    let video = [uint(0xB0, width as u64), uint(0xBA, height as u64), element(0x2E_B524, b"RGB\x18")].concat();
    let track = [uint(0xD7, 1), uint(0x73C5, 1), uint(0x83, 1), uint(0x9C, 0), text(0x86, "V_UNCOMPRESSED"), element(0xE0, &video)].concat();
    out.extend(element(0x1654_AE6B, &element(0xAE, &track)));
    out
}

/// Writes one frame (`rgb`: width * height * 3 bytes) at `time_us` as a Cluster with one
/// keyframe SimpleBlock; the pixels are written straight from the caller's buffer.
pub fn write_frame(out: &mut impl Write, time_us: u64, rgb: &[u8]) -> io::Result<()> {
    // SimpleBlock: track number 1 (as a vint), timestamp relative to the cluster (0), flags (key).
    let block_head = [0x81, 0, 0, 0x80];
    let block_size = (block_head.len() + rgb.len()) as u64;
    let timestamp = uint(0xE7, time_us);
    let block_element_head = head(0xA3, block_size);
    let cluster_size = timestamp.len() as u64 + block_element_head.len() as u64 + block_size;
    out.write_all(&head(0x1F43_B675, cluster_size))?;
    out.write_all(&timestamp)?;
    out.write_all(&block_element_head)?;
    out.write_all(&block_head)?;
    out.write_all(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_ebml_vints() {
        assert_eq!(size_vint(0), vec![0x80]);
        assert_eq!(size_vint(126), vec![0xFE]);
        // 127 would be all ones in one byte (reserved): two bytes.
        assert_eq!(size_vint(127), vec![0x40, 0x7F]);
        assert_eq!(size_vint(16_382), vec![0x7F, 0xFE]);
        assert_eq!(size_vint(6_220_800).len(), 4);
        assert_eq!(id_bytes(0x1A45_DFA3), vec![0x1A, 0x45, 0xDF, 0xA3]);
        assert_eq!(id_bytes(0xA3), vec![0xA3]);
        assert_eq!(uint(0xE7, 0), vec![0xE7, 0x81, 0x00]);
        assert_eq!(uint(0xE7, 300), vec![0xE7, 0x82, 0x01, 0x2C]);
    }

    #[test]
    fn a_frame_is_one_cluster_of_the_declared_size() {
        let mut v = Vec::new();
        write_frame(&mut v, 1_500_000, &[7u8; 12]).unwrap();
        assert_eq!(&v[..4], &[0x1F, 0x43, 0xB6, 0x75]);
        // Size byte, then the rest is exactly that long.
        assert_eq!((v[4] & 0x7F) as usize, v.len() - 5);
        assert_eq!(&v[v.len() - 12..], &[7u8; 12]);
    }
}
