//! NumPy `.npy` arrays (format versions 1.0, 2.0, 3.0) and `.npz` archives of them.
//! The header is a Python dict literal, parsed by a tiny literal parser (no eval).

use std::io::{Read, Seek};

use anyhow::{anyhow, bail, Context, Result};

use super::tensor::{check_layout, gather, row_major_strides, DType, Layout, MAX_TENSOR_BYTES};
use super::zip::ZipArchive;
use super::{Array, NamedTensor};

const MAGIC: &[u8] = b"\x93NUMPY";
/// numpy itself refuses headers over 10 000 bytes by default; allow some slack.
const MAX_HEADER_BYTES: usize = 1 << 16;

/// Parses the bytes of one `.npy` file.
pub fn parse_npy(bytes: &[u8]) -> Result<Array> {
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        bail!("not a .npy file (no \\x93NUMPY magic)");
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, header_start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            let raw = bytes.get(8..12).ok_or_else(|| anyhow!("truncated header length"))?;
            (u32::from_le_bytes(raw.try_into()?) as usize, 12)
        }
        _ => bail!("format version {major}.{minor} is not supported (1.0 to 3.0 are)"),
    };
    if header_len > MAX_HEADER_BYTES {
        bail!("header of {header_len} bytes is over the {MAX_HEADER_BYTES}-byte limit");
    }
    let header = bytes
        .get(header_start..header_start + header_len)
        .ok_or_else(|| anyhow!("header of {header_len} bytes runs past the end of the file"))?;
    // Versions 1 and 2 are latin-1, version 3 UTF-8; the keys and values we accept are ASCII.
    let header = std::str::from_utf8(header).map_err(|_| anyhow!("header is not ASCII/UTF-8"))?;
    let (dtype, big_endian, fortran, shape) =
        parse_header(header).with_context(|| format!("header {:?}", header.trim_end()))?;
    let data = &bytes[header_start + header_len..];

    let mut numel = 1u64;
    for &d in &shape {
        numel = numel.checked_mul(d).ok_or_else(|| anyhow!("shape {shape:?} overflows"))?;
    }
    let needed = numel.checked_mul(dtype.size() as u64).filter(|&n| n <= MAX_TENSOR_BYTES);
    let Some(needed) = needed else {
        bail!("shape {shape:?} of {dtype} is over the {} GiB limit", MAX_TENSOR_BYTES >> 30);
    };
    if needed != data.len() as u64 {
        bail!("shape {shape:?} of {dtype} needs {needed} data bytes but the file holds {}", data.len());
    }
    // Fortran order is column-major: the reversed shape's row-major strides, reversed.
    let strides = if fortran {
        let rev: Vec<u64> = shape.iter().rev().copied().collect();
        let mut s = row_major_strides(&rev);
        s.reverse();
        s
    } else {
        row_major_strides(&shape)
    };
    let layout = Layout { offset: 0, shape: &shape, strides: &strides };
    check_layout(&layout, numel, dtype)?;
    Ok(Array { shape: shape.iter().map(|&d| d as usize).collect(), data: gather(dtype, data, big_endian, &layout) })
}

/// Reads an `.npz` archive; names lose their `.npy` suffix, order is the archive's.
pub fn read_npz<R: Read + Seek>(reader: R, label: &str) -> Result<Vec<NamedTensor>> {
    read_npz_inner(reader).map_err(|e| anyhow!("npz {label}: {e:#}"))
}

fn read_npz_inner<R: Read + Seek>(reader: R) -> Result<Vec<NamedTensor>> {
    let mut zip = ZipArchive::new(reader).context("not a valid zip archive")?;
    let names: Vec<String> = zip.entries().iter().map(|e| e.name.clone()).collect();
    let mut out = Vec::with_capacity(names.len());
    let mut total = 0u64;
    for entry in names {
        let name =
            entry.strip_suffix(".npy").ok_or_else(|| anyhow!("entry '{entry}' is not an .npy array"))?.to_string();
        let bytes = zip.read(&entry, MAX_TENSOR_BYTES + MAX_HEADER_BYTES as u64 + 12)?;
        total += bytes.len() as u64;
        if total > MAX_TENSOR_BYTES {
            bail!("arrays add up to more than the {} GiB limit", MAX_TENSOR_BYTES >> 30);
        }
        let a = parse_npy(&bytes).with_context(|| format!("entry '{entry}'"))?;
        out.push(NamedTensor { name, shape: a.shape, data: a.data });
    }
    Ok(out)
}

/// Extracts (dtype, big endian, fortran order, shape) from the header dict.
fn parse_header(header: &str) -> Result<(DType, bool, bool, Vec<u64>)> {
    let mut p = LitParser { s: header.as_bytes(), pos: 0 };
    let dict = p.value(0)?;
    p.skip_ws();
    if p.pos != p.s.len() {
        bail!("unexpected text after the header dict");
    }
    let Lit::Dict(items) = dict else { bail!("header is not a dict") };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in items {
        match (k, v) {
            (Lit::Str(k), Lit::Str(d)) if k == "descr" => descr = Some(d),
            (Lit::Str(k), Lit::Bool(f)) if k == "fortran_order" => fortran = Some(f),
            (Lit::Str(k), Lit::Tuple(dims)) if k == "shape" => {
                shape = Some(
                    dims.into_iter()
                        .map(|d| match d {
                            Lit::Int(n) => Ok(n),
                            _ => Err(anyhow!("shape holds a non-integer")),
                        })
                        .collect::<Result<Vec<u64>>>()?,
                )
            }
            (Lit::Str(k), _) if k == "descr" => {
                bail!("descr is not a simple type string (structured dtypes are not supported)")
            }
            (k, _) => bail!("unexpected or malformed header key {k:?}"),
        }
    }
    let descr = descr.ok_or_else(|| anyhow!("no 'descr'"))?;
    let fortran = fortran.ok_or_else(|| anyhow!("no 'fortran_order'"))?;
    let shape = shape.ok_or_else(|| anyhow!("no 'shape'"))?;
    let (dtype, big_endian) = parse_descr(&descr)?;
    Ok((dtype, big_endian, fortran, shape))
}

/// `<f4`, `>i8`, `|u1`, `|b1`...
fn parse_descr(descr: &str) -> Result<(DType, bool)> {
    let mut chars = descr.chars();
    let big_endian = match chars.next() {
        Some('<') | Some('|') => false,
        Some('>') => true,
        Some('=') => cfg!(target_endian = "big"),
        _ => bail!("dtype '{descr}' has no byte-order mark"),
    };
    let dtype = match chars.as_str() {
        "f2" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        "i1" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "u1" => DType::U8,
        "b1" => DType::Bool,
        _ => bail!("dtype '{descr}' is not supported (f2/f4/f8, i1/i2/i4/i8, u1, b1 are)"),
    };
    Ok((dtype, big_endian))
}

/// The Python literals a header uses.
#[derive(Debug)]
enum Lit {
    Str(String),
    Bool(bool),
    Int(u64),
    None,
    Tuple(Vec<Lit>),
    /// Lists are parsed but never meaningful in the keys numpy writes.
    List,
    Dict(Vec<(Lit, Lit)>),
}

struct LitParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl LitParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Lit> {
        if depth > 8 {
            bail!("header nests too deeply");
        }
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut items = Vec::new();
                while !self.eat(b'}') {
                    let k = self.value(depth + 1)?;
                    if !self.eat(b':') {
                        bail!("expected ':' at header byte {}", self.pos);
                    }
                    items.push((k, self.value(depth + 1)?));
                    if !self.eat(b',') && self.peek() != Some(b'}') {
                        bail!("expected ',' or '}}' at header byte {}", self.pos);
                    }
                }
                Ok(Lit::Dict(items))
            }
            Some(open @ (b'(' | b'[')) => {
                self.pos += 1;
                let close = if open == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                let mut trailing_comma = false;
                while !self.eat(close) {
                    items.push(self.value(depth + 1)?);
                    trailing_comma = self.eat(b',');
                    if !trailing_comma && self.peek() != Some(close) {
                        bail!("expected ',' or '{}' at header byte {}", close as char, self.pos);
                    }
                }
                // `(3)` is just 3 in Python; numpy always writes `(3,)`.
                if open == b'(' && items.len() == 1 && !trailing_comma {
                    return Ok(items.pop().expect("one item"));
                }
                Ok(if open == b'(' { Lit::Tuple(items) } else { Lit::List })
            }
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let start = self.pos;
                let len = self.s[start..]
                    .iter()
                    .position(|&c| c == q || c == b'\\')
                    .ok_or_else(|| anyhow!("unterminated string"))?;
                if self.s[start + len] == b'\\' {
                    bail!("escapes in header strings are not supported");
                }
                self.pos = start + len + 1;
                Ok(Lit::Str(String::from_utf8_lossy(&self.s[start..start + len]).into_owned()))
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.pos])?;
                let n = digits.parse::<u64>().map_err(|_| anyhow!("integer {digits} is too large"))?;
                // Python 2 long suffix.
                if self.s.get(self.pos) == Some(&b'L') {
                    self.pos += 1;
                }
                Ok(Lit::Int(n))
            }
            Some(_) => {
                for (word, lit) in [("True", Lit::Bool(true)), ("False", Lit::Bool(false)), ("None", Lit::None)] {
                    if self.s[self.pos..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(lit);
                    }
                }
                bail!("unexpected character at header byte {}", self.pos)
            }
            None => bail!("header ends early"),
        }
    }
}
