//! Element types, tensor payloads, and the checked strided gather that turns raw storage
//! bytes into a row-major payload. Shared by the torch and npy readers.

use anyhow::{bail, Result};

/// Largest payload (in bytes) one tensor or array may decode to, and the cap for all tensors
/// of one checkpoint together. Anything bigger is refused before allocating.
pub const MAX_TENSOR_BYTES: u64 = 4 << 30;

/// Element type of a tensor, as stored on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F16,
    BF16,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    /// torch's name for the type (`float32`, `int64`, ...), as `str(tensor.dtype)` minus `torch.`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor's elements in row-major (C) order.
///
/// Half-precision types keep their raw bits (`F16`, `BF16` hold `u16`s) so nothing is lost;
/// [`TensorData::f32_values`] converts them exactly to `f32`.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F16(Vec<u16>),
    BF16(Vec<u16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F16(_) => DType::F16,
            TensorData::BF16(_) => DType::BF16,
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::I8(_) => DType::I8,
            TensorData::I16(_) => DType::I16,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::U8(_) => DType::U8,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F16(v) | TensorData::BF16(v) => v.len(),
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::I16(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every element as `f32`: exact for f32/f16/bf16 and small integers; f64 is rounded,
    /// integers beyond 2^24 lose precision, bools become 0.0/1.0.
    pub fn f32_values(&self) -> Vec<f32> {
        match self {
            TensorData::F16(v) => v.iter().map(|&h| f16_to_f32(h)).collect(),
            TensorData::BF16(v) => v.iter().map(|&h| bf16_to_f32(h)).collect(),
            TensorData::F32(v) => v.clone(),
            TensorData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I16(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect(),
        }
    }

    /// The elements when the type is `F32`, without copying.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The elements when the type is `I64`, without copying.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match self {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }
}

/// IEEE binary16 bits to f32 (exact: every half is representable as a float).
pub fn f16_to_f32(h: u16) -> f32 {
    let negative = h & 0x8000 != 0;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let magnitude = match exp {
        // Zero and subnormals: man * 2^-24, exact in f32.
        0 => man as f32 * (1.0 / 16_777_216.0),
        // Inf and NaN keep their payload.
        0x1f => f32::from_bits(0x7f80_0000 | (man << 13)),
        // Normal: rebias the exponent from 15 to 127.
        _ => f32::from_bits(((exp + 112) << 23) | (man << 13)),
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// bfloat16 bits to f32: bfloat16 is the top half of an f32.
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// Where a tensor's elements sit in a flat storage, in elements.
pub(crate) struct Layout<'a> {
    pub offset: u64,
    pub shape: &'a [u64],
    pub strides: &'a [u64],
}

/// Checks that a strided view fits its storage and the size limits, before anything is
/// allocated. Returns the element count of the view.
///
/// Views with more elements than their storage (expanded / stride-0 broadcasts) are refused:
/// state dicts never hold them, and allowing them would let a tiny file demand huge buffers.
pub(crate) fn check_layout(layout: &Layout, storage_numel: u64, dtype: DType) -> Result<u64> {
    if layout.shape.len() != layout.strides.len() {
        bail!("shape has {} dimensions but stride has {}", layout.shape.len(), layout.strides.len());
    }
    let mut numel: u64 = 1;
    for &d in layout.shape {
        numel = match numel.checked_mul(d) {
            Some(n) => n,
            None => bail!("shape {:?} has more elements than fit in 64 bits", layout.shape),
        };
    }
    let bytes = numel.checked_mul(dtype.size() as u64);
    if bytes.is_none_or(|b| b > MAX_TENSOR_BYTES) {
        bail!(
            "shape {:?} of {} needs {} elements, over the {} GiB limit",
            layout.shape,
            dtype,
            numel,
            MAX_TENSOR_BYTES >> 30
        );
    }
    if numel == 0 {
        return Ok(0);
    }
    if numel > storage_numel {
        bail!("shape {:?} has {} elements but its storage holds only {}", layout.shape, numel, storage_numel);
    }
    // Largest element index the view touches; every other index lies between offset and it.
    let mut last = layout.offset;
    for (&d, &s) in layout.shape.iter().zip(layout.strides) {
        last = (d - 1)
            .checked_mul(s)
            .and_then(|x| x.checked_add(last))
            .ok_or_else(|| anyhow::anyhow!("stride {:?} overflows", layout.strides))?;
    }
    if last >= storage_numel {
        bail!(
            "shape {:?} with stride {:?} at offset {} reaches element {} but the storage holds {}",
            layout.shape,
            layout.strides,
            layout.offset,
            last,
            storage_numel
        );
    }
    Ok(numel)
}

/// Decodes a view of `storage` (raw bytes of `dtype` elements) into row-major data.
/// The layout must have passed [`check_layout`] against `storage.len() / dtype.size()`.
pub(crate) fn gather(dtype: DType, storage: &[u8], big_endian: bool, layout: &Layout) -> TensorData {
    match dtype {
        DType::F16 => TensorData::F16(gather_as(storage, big_endian, layout, u16::from_le_bytes)),
        DType::BF16 => TensorData::BF16(gather_as(storage, big_endian, layout, u16::from_le_bytes)),
        DType::F32 => TensorData::F32(gather_as(storage, big_endian, layout, f32::from_le_bytes)),
        DType::F64 => TensorData::F64(gather_as(storage, big_endian, layout, f64::from_le_bytes)),
        DType::I8 => TensorData::I8(gather_as(storage, big_endian, layout, i8::from_le_bytes)),
        DType::I16 => TensorData::I16(gather_as(storage, big_endian, layout, i16::from_le_bytes)),
        DType::I32 => TensorData::I32(gather_as(storage, big_endian, layout, i32::from_le_bytes)),
        DType::I64 => TensorData::I64(gather_as(storage, big_endian, layout, i64::from_le_bytes)),
        DType::U8 => TensorData::U8(gather_as(storage, big_endian, layout, u8::from_le_bytes)),
        DType::Bool => TensorData::Bool(gather_as(storage, big_endian, layout, |b: [u8; 1]| b[0] != 0)),
    }
}

fn gather_as<T, const N: usize>(
    storage: &[u8],
    big_endian: bool,
    layout: &Layout,
    from_le: impl Fn([u8; N]) -> T,
) -> Vec<T> {
    // Big-endian files: reversing each element's bytes makes them little-endian.
    let read = |chunk: &[u8]| {
        let mut a: [u8; N] = chunk.try_into().expect("chunk has N bytes");
        if big_endian {
            a.reverse();
        }
        from_le(a)
    };
    let numel: u64 = layout.shape.iter().product();
    if numel == 0 {
        return Vec::new();
    }
    let (numel, offset) = (numel as usize, layout.offset as usize);
    if is_row_major(layout.shape, layout.strides) {
        return storage[offset * N..(offset + numel) * N].chunks_exact(N).map(read).collect();
    }
    // Odometer over the multi-index; `pos` tracks the storage index incrementally.
    let shape: Vec<usize> = layout.shape.iter().map(|&d| d as usize).collect();
    let strides: Vec<usize> = layout.strides.iter().map(|&s| s as usize).collect();
    let mut index = vec![0usize; shape.len()];
    let mut pos = offset;
    let mut out = Vec::with_capacity(numel);
    for _ in 0..numel {
        out.push(read(&storage[pos * N..pos * N + N]));
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            pos += strides[d];
            if index[d] < shape[d] {
                break;
            }
            pos -= strides[d] * shape[d];
            index[d] = 0;
        }
    }
    out
}

/// True when the strides are the row-major ones for the shape (size-1 dims may have any stride).
fn is_row_major(shape: &[u64], strides: &[u64]) -> bool {
    let mut expected = 1u64;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected *= d;
    }
    true
}

/// Row-major strides for a shape (the caller has checked the product fits).
pub(crate) fn row_major_strides(shape: &[u64]) -> Vec<u64> {
    let mut strides = vec![0u64; shape.len()];
    let mut acc = 1u64;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(d);
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc040), -3.0);
    }

    #[test]
    fn gather_transposed_and_offset() {
        // Storage 0..6 as i32; view a 3x2 transpose of the 2x3 matrix starting at 0.
        let storage: Vec<u8> = (0..8i32).flat_map(|v| v.to_le_bytes()).collect();
        let layout = Layout { offset: 0, shape: &[3, 2], strides: &[1, 3] };
        assert_eq!(check_layout(&layout, 8, DType::I32).unwrap(), 6);
        assert_eq!(gather(DType::I32, &storage, false, &layout), TensorData::I32(vec![0, 3, 1, 4, 2, 5]));
        let layout = Layout { offset: 2, shape: &[2, 3], strides: &[3, 1] };
        assert_eq!(gather(DType::I32, &storage, false, &layout), TensorData::I32(vec![2, 3, 4, 5, 6, 7]));
        let layout = Layout { offset: 3, shape: &[2, 3], strides: &[3, 1] };
        assert!(check_layout(&layout, 8, DType::I32).is_err());
    }

    #[test]
    fn layout_limits() {
        let huge = Layout { offset: 0, shape: &[1_000_000, 1_000_000], strides: &[1_000_000, 1] };
        let e = check_layout(&huge, 10, DType::F32).unwrap_err().to_string();
        assert!(e.contains("limit"), "{e}");
        let overflow = Layout { offset: 0, shape: &[u64::MAX, 3], strides: &[3, 1] };
        assert!(check_layout(&overflow, 10, DType::F32).is_err());
        let broadcast = Layout { offset: 0, shape: &[100], strides: &[0] };
        assert!(check_layout(&broadcast, 1, DType::F32).is_err());
        let empty = Layout { offset: 99, shape: &[0, 5], strides: &[5, 1] };
        assert_eq!(check_layout(&empty, 0, DType::F32).unwrap(), 0);
        let scalar = Layout { offset: 4, shape: &[], strides: &[] };
        assert_eq!(check_layout(&scalar, 5, DType::F32).unwrap(), 1);
        assert!(check_layout(&scalar, 4, DType::F32).is_err());
    }

    #[test]
    fn big_endian_swap() {
        let storage = [0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0];
        let layout = Layout { offset: 0, shape: &[2], strides: &[1] };
        assert_eq!(gather(DType::F32, &storage, true, &layout), TensorData::F32(vec![1.0, -2.0]));
    }
}
