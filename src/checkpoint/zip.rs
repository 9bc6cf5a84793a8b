//! Minimal, defensive zip reader: central directory (with zip64), stored and deflated
//! entries, CRC-checked. Only what torch.save and numpy.savez write; no encryption,
//! no multi-disk archives. Every length read from the file is checked against the file
//! size (and a caller's limit) before anything is allocated.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use anyhow::{bail, Context, Result};

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const EOCD_LEN: u64 = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
/// Deflate cannot expand data by more than ~1032x; a larger claimed size is a lie.
const MAX_DEFLATE_RATIO: u64 = 1100;

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub name: String,
    /// Uncompressed size.
    pub size: u64,
    compressed_size: u64,
    method: u16,
    flags: u16,
    crc: u32,
    local_offset: u64,
}

pub(crate) struct ZipArchive<R> {
    reader: R,
    file_len: u64,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

impl<R> ZipArchive<R> {
    /// Entries in central-directory order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }
}

impl<R: Read + Seek> ZipArchive<R> {
    pub fn new(mut reader: R) -> Result<Self> {
        let file_len = reader.seek(SeekFrom::End(0))?;
        if file_len < EOCD_LEN {
            bail!("{file_len} bytes is too short for a zip archive");
        }
        // The end record sits in the last 22 + 65535 (max comment) bytes.
        let tail_len = file_len.min(EOCD_LEN + 0xffff);
        let tail_start = file_len - tail_len;
        let tail = read_at(&mut reader, tail_start, tail_len as usize)?;
        let eocd_pos = (0..=tail.len() - EOCD_LEN as usize)
            .rev()
            .find(|&i| le32(&tail, i) == EOCD_SIG && i as u64 + EOCD_LEN + u64::from(le16(&tail, i + 20)) <= tail_len)
            .context("no end-of-central-directory record: not a zip archive, or truncated")?;
        let eocd = &tail[eocd_pos..];
        if le16(eocd, 4) != 0 || le16(eocd, 6) != 0 {
            bail!("multi-disk zip archives are not supported");
        }
        let mut count = u64::from(le16(eocd, 10));
        let mut cd_size = u64::from(le32(eocd, 12));
        let mut cd_offset = u64::from(le32(eocd, 16));
        let eocd_abs = tail_start + eocd_pos as u64;
        if count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
            (count, cd_size, cd_offset) = read_zip64_end(&mut reader, eocd_abs, file_len)?;
        }
        if cd_offset.checked_add(cd_size).is_none_or(|end| end > eocd_abs) {
            bail!("central directory ({cd_size} bytes at {cd_offset}) lies outside the file");
        }
        if count > cd_size / CENTRAL_LEN as u64 {
            bail!("central directory of {cd_size} bytes cannot hold {count} entries");
        }
        let cd = read_at(&mut reader, cd_offset, cd_size as usize)?;
        let mut entries = Vec::with_capacity(count as usize);
        let mut by_name = HashMap::with_capacity(count as usize);
        let mut pos = 0usize;
        for i in 0..count {
            let entry = parse_central(&cd, &mut pos).with_context(|| format!("central directory entry {i}"))?;
            if entry.local_offset >= cd_offset {
                bail!("entry '{}' starts at {} inside the central directory", entry.name, entry.local_offset);
            }
            if by_name.insert(entry.name.clone(), entries.len()).is_some() {
                bail!("entry '{}' appears twice", entry.name);
            }
            entries.push(entry);
        }
        Ok(ZipArchive { reader, file_len, entries, by_name })
    }

    /// Reads one entry's bytes, refusing entries whose size is over `limit`.
    pub fn read(&mut self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let entry = self.find(name).with_context(|| format!("no entry '{name}'"))?.clone();
        self.read_entry(&entry, limit).with_context(|| format!("entry '{name}'"))
    }

    fn read_entry(&mut self, e: &Entry, limit: u64) -> Result<Vec<u8>> {
        if e.flags & 1 != 0 {
            bail!("is encrypted");
        }
        if e.size > limit {
            bail!("is {} bytes, over the {limit}-byte limit", e.size);
        }
        let header =
            read_at(&mut self.reader, e.local_offset, LOCAL_LEN).context("local header lies outside the file")?;
        if le32(&header, 0) != LOCAL_SIG {
            bail!("bad local header signature at {}", e.local_offset);
        }
        let data_start =
            e.local_offset + LOCAL_LEN as u64 + u64::from(le16(&header, 26)) + u64::from(le16(&header, 28));
        if data_start.checked_add(e.compressed_size).is_none_or(|end| end > self.file_len) {
            bail!(
                "{} bytes at {} run past the end of the file ({} bytes)",
                e.compressed_size,
                data_start,
                self.file_len
            );
        }
        let data = match e.method {
            0 => {
                if e.compressed_size != e.size {
                    bail!("stored entry has compressed size {} but size {}", e.compressed_size, e.size);
                }
                read_at(&mut self.reader, data_start, e.size as usize)?
            }
            8 => {
                if e.size > e.compressed_size.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(64) {
                    bail!("claims {} bytes from {} compressed bytes", e.size, e.compressed_size);
                }
                self.reader.seek(SeekFrom::Start(data_start))?;
                let compressed = (&mut self.reader).take(e.compressed_size);
                // Grow with the data actually produced rather than trusting the claimed size.
                let mut out = Vec::with_capacity(e.size.min(e.compressed_size.saturating_mul(4)) as usize);
                // One byte more than promised reveals a lying size without unbounded output.
                flate2::read::DeflateDecoder::new(compressed)
                    .take(e.size + 1)
                    .read_to_end(&mut out)
                    .context("corrupt deflate data")?;
                if out.len() as u64 != e.size {
                    bail!(
                        "inflates to {}{} bytes, not {}",
                        out.len(),
                        if out.len() as u64 > e.size { "+" } else { "" },
                        e.size
                    );
                }
                out
            }
            m => bail!("compression method {m} is not supported (only stored and deflate)"),
        };
        let crc = crc32fast::hash(&data);
        if crc != e.crc {
            bail!("CRC mismatch (stored {:08x}, computed {:08x}): the file is corrupt", e.crc, crc);
        }
        Ok(data)
    }
}

/// Follows the zip64 locator just before the end record to the zip64 end record.
fn read_zip64_end<R: Read + Seek>(r: &mut R, eocd_abs: u64, file_len: u64) -> Result<(u64, u64, u64)> {
    let locator_pos = eocd_abs.checked_sub(20).context("zip64 locator missing")?;
    let loc = read_at(r, locator_pos, 20)?;
    if le32(&loc, 0) != ZIP64_LOCATOR_SIG {
        bail!("zip64 locator missing");
    }
    let end_pos = le64(&loc, 8);
    if end_pos.checked_add(56).is_none_or(|e| e > locator_pos) || end_pos >= file_len {
        bail!("zip64 end record offset {end_pos} is out of range");
    }
    let rec = read_at(r, end_pos, 56)?;
    if le32(&rec, 0) != ZIP64_EOCD_SIG {
        bail!("bad zip64 end record signature");
    }
    Ok((le64(&rec, 32), le64(&rec, 40), le64(&rec, 48)))
}

fn parse_central(cd: &[u8], pos: &mut usize) -> Result<Entry> {
    let p = *pos;
    if cd.len() - p < CENTRAL_LEN || le32(cd, p) != CENTRAL_SIG {
        bail!("missing or bad signature at directory offset {p}");
    }
    let flags = le16(cd, p + 8);
    let method = le16(cd, p + 10);
    let crc = le32(cd, p + 16);
    let mut compressed_size = u64::from(le32(cd, p + 20));
    let mut size = u64::from(le32(cd, p + 24));
    let name_len = usize::from(le16(cd, p + 28));
    let extra_len = usize::from(le16(cd, p + 30));
    let comment_len = usize::from(le16(cd, p + 32));
    let mut local_offset = u64::from(le32(cd, p + 42));
    let end = p + CENTRAL_LEN + name_len + extra_len + comment_len;
    if end > cd.len() {
        bail!("name/extra/comment run past the central directory");
    }
    let name_start = p + CENTRAL_LEN;
    let name = String::from_utf8_lossy(&cd[name_start..name_start + name_len]).into_owned();
    // Zip64 extra field: 64-bit values for exactly the 32-bit fields that are saturated.
    let mut extra = &cd[name_start + name_len..name_start + name_len + extra_len];
    while extra.len() >= 4 {
        let id = le16(extra, 0);
        let len = usize::from(le16(extra, 2));
        if len > extra.len() - 4 {
            bail!("extra field of entry '{name}' is truncated");
        }
        let mut field = &extra[4..4 + len];
        if id == 1 {
            for v in [&mut size, &mut compressed_size, &mut local_offset] {
                if *v == 0xffff_ffff {
                    if field.len() < 8 {
                        bail!("zip64 extra field of entry '{name}' is too short");
                    }
                    *v = le64(field, 0);
                    field = &field[8..];
                }
            }
        }
        extra = &extra[4 + len..];
    }
    *pos = end;
    Ok(Entry { name, size, compressed_size, method, flags, crc, local_offset })
}

/// Reads exactly `len` bytes at `offset`; the caller has bounded `len` by the file size.
fn read_at<R: Read + Seek>(r: &mut R, offset: u64, len: usize) -> Result<Vec<u8>> {
    r.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    let got = r.take(len as u64).read_to_end(&mut buf)?;
    if got != len {
        bail!("unexpected end of file reading {len} bytes at {offset}");
    }
    Ok(buf)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
