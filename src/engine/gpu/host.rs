//! Constants of an ONNX graph on the host: initializers, `Constant` nodes, and everything the
//! planner folds from them (shape arithmetic such as Shape -> Gather -> Concat -> Resize sizes).
//! Only small integer and float tensors go through here; the heavy work is on the GPU.

use anyhow::{bail, Context, Result};
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

/// Elements a folded constant may have (folding is for shapes and parameters, not activations).
const MAX_FOLD_ELEMENTS: usize = 1 << 26;

#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    F(Vec<f32>),
    /// Every integer type and bool (0/1).
    I(Vec<i64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// The ONNX element type (`DataType as i32`), kept so a constant can be written back.
    pub dt: i32,
    pub shape: Vec<usize>,
    pub data: HostData,
}

fn is_float(dt: i32) -> bool {
    dt == DataType::Float as i32 || dt == DataType::Double as i32 || dt == DataType::Float16 as i32
}

fn numel(shape: &[usize]) -> Result<usize> {
    let mut n: usize = 1;
    for &d in shape {
        n = n.checked_mul(d).context("tensor size overflows")?;
    }
    Ok(n)
}

impl HostTensor {
    pub fn f32(shape: Vec<usize>, v: Vec<f32>) -> HostTensor {
        HostTensor { dt: DataType::Float as i32, shape, data: HostData::F(v) }
    }

    pub fn i64(shape: Vec<usize>, v: Vec<i64>) -> HostTensor {
        HostTensor { dt: DataType::Int64 as i32, shape, data: HostData::I(v) }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            HostData::F(v) => v.len(),
            HostData::I(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_f32(&self) -> Vec<f32> {
        match &self.data {
            HostData::F(v) => v.clone(),
            HostData::I(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    pub fn as_i64(&self) -> Vec<i64> {
        match &self.data {
            HostData::F(v) => v.iter().map(|&x| x as i64).collect(),
            HostData::I(v) => v.clone(),
        }
    }

    /// Reads an initializer or `Constant` value (raw or typed fields; external data is refused).
    pub fn from_proto(t: &pb::TensorProto) -> Result<HostTensor> {
        if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
            bail!("tensor '{}' keeps its data in an external file, which is not supported", t.name);
        }
        let mut shape = Vec::with_capacity(t.dims.len());
        for &d in &t.dims {
            if d < 0 {
                bail!("tensor '{}' has a negative dimension {d}", t.name);
            }
            shape.push(d as usize);
        }
        let n = numel(&shape).with_context(|| format!("tensor '{}'", t.name))?;
        let dt = t.data_type;
        let raw = &t.raw_data;
        let width = match DataType::try_from(dt) {
            Ok(DataType::Float) | Ok(DataType::Int32) | Ok(DataType::Uint32) => 4,
            Ok(DataType::Double) | Ok(DataType::Int64) | Ok(DataType::Uint64) => 8,
            Ok(DataType::Float16) | Ok(DataType::Int16) | Ok(DataType::Uint16) => 2,
            Ok(DataType::Int8) | Ok(DataType::Uint8) | Ok(DataType::Bool) => 1,
            _ => bail!("tensor '{}' has an unsupported element type {dt}", t.name),
        };
        if !raw.is_empty() && raw.len() != n * width {
            bail!("tensor '{}' has {} bytes of data for {n} elements of {width} bytes", t.name, raw.len());
        }
        let data = match DataType::try_from(dt).expect("checked above") {
            DataType::Float => HostData::F(if raw.is_empty() {
                t.float_data.clone()
            } else {
                raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
            }),
            DataType::Double => HostData::F(if raw.is_empty() {
                t.double_data.iter().map(|&v| v as f32).collect()
            } else {
                raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
            }),
            DataType::Float16 => {
                let bits: Vec<u16> = if raw.is_empty() {
                    t.int32_data.iter().map(|&v| v as u16).collect()
                } else {
                    raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
                };
                HostData::F(bits.into_iter().map(f16_to_f32).collect())
            }
            DataType::Int64 => HostData::I(if raw.is_empty() {
                t.int64_data.clone()
            } else {
                raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
            }),
            DataType::Uint64 => HostData::I(if raw.is_empty() {
                t.uint64_data.iter().map(|&v| v as i64).collect()
            } else {
                raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap()) as i64).collect()
            }),
            DataType::Int32 | DataType::Uint32 => HostData::I(if raw.is_empty() {
                t.int32_data.iter().map(|&v| v as i64).collect()
            } else if dt == DataType::Int32 as i32 {
                raw.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect()
            } else {
                raw.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64).collect()
            }),
            DataType::Int16 | DataType::Uint16 => HostData::I(if raw.is_empty() {
                t.int32_data.iter().map(|&v| v as i64).collect()
            } else if dt == DataType::Int16 as i32 {
                raw.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as i64).collect()
            } else {
                raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as i64).collect()
            }),
            DataType::Int8 => HostData::I(if raw.is_empty() {
                t.int32_data.iter().map(|&v| v as i64).collect()
            } else {
                raw.iter().map(|&b| b as i8 as i64).collect()
            }),
            DataType::Uint8 | DataType::Bool => HostData::I(if raw.is_empty() {
                t.int32_data.iter().map(|&v| v as i64).collect()
            } else {
                raw.iter().map(|&b| b as i64).collect()
            }),
            _ => unreachable!(),
        };
        let out = HostTensor { dt, shape, data };
        if out.len() != n {
            bail!("tensor '{}' has {} values for shape {:?}", t.name, out.len(), out.shape);
        }
        Ok(out)
    }

    /// Writes the tensor back as an initializer called `name`, in its element type.
    pub fn to_proto(&self, name: &str) -> pb::TensorProto {
        let raw: Vec<u8> = match DataType::try_from(self.dt).unwrap_or(DataType::Float) {
            DataType::Double => self.as_f32().iter().flat_map(|v| (*v as f64).to_le_bytes()).collect(),
            DataType::Int64 | DataType::Uint64 => self.as_i64().iter().flat_map(|v| v.to_le_bytes()).collect(),
            DataType::Int32 | DataType::Uint32 => self.as_i64().iter().flat_map(|v| (*v as i32).to_le_bytes()).collect(),
            DataType::Int16 | DataType::Uint16 => self.as_i64().iter().flat_map(|v| (*v as i16).to_le_bytes()).collect(),
            DataType::Int8 | DataType::Uint8 | DataType::Bool => self.as_i64().iter().map(|v| *v as u8).collect(),
            _ => self.as_f32().iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        // Float16 constants are written as float32.
        let dt = if self.dt == DataType::Float16 as i32 { DataType::Float as i32 } else { self.dt };
        pb::TensorProto {
            dims: self.shape.iter().map(|&d| d as i64).collect(),
            data_type: dt,
            raw_data: raw,
            name: name.to_string(),
            ..Default::default()
        }
    }

    fn with_data(&self, shape: Vec<usize>, data: HostData) -> HostTensor {
        HostTensor { dt: self.dt, shape, data }
    }

    /// Elements at `indices` (flat), keeping the type.
    fn pick(&self, shape: Vec<usize>, indices: &[usize]) -> HostTensor {
        let data = match &self.data {
            HostData::F(v) => HostData::F(indices.iter().map(|&i| v[i]).collect()),
            HostData::I(v) => HostData::I(indices.iter().map(|&i| v[i]).collect()),
        };
        self.with_data(shape, data)
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if frac == 0 => sign,
        0 => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = frac;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
        0x1f => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Numpy broadcasting of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => bail!("shapes {a:?} and {b:?} do not broadcast"),
        };
    }
    Ok(out)
}

/// Strides of `shape` seen through the broadcast `out` shape (0 on broadcast axes).
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len()).map(|i| if i < off || shape[i - off] == 1 { 0 } else { s[i - off] }).collect()
}

/// Flat source index for every element of `out`, reading through `st` strides.
fn gather_indices(out: &[usize], st: &[usize]) -> Vec<usize> {
    let n: usize = out.iter().product();
    let mut idx = Vec::with_capacity(n);
    let mut coord = vec![0usize; out.len()];
    for _ in 0..n {
        idx.push(coord.iter().zip(st).map(|(c, s)| c * s).sum());
        for ax in (0..out.len()).rev() {
            coord[ax] += 1;
            if coord[ax] < out[ax] {
                break;
            }
            coord[ax] = 0;
        }
    }
    idx
}

pub fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a as usize >= rank {
        bail!("axis {axis} out of range for rank {rank}");
    }
    Ok(a as usize)
}

/// Output shape of the view ops (Reshape, Flatten, Squeeze, Unsqueeze); `extra` is their
/// second input where the opset moved an attribute to an input.
pub fn reshaped(op: &str, node: &pb::NodeProto, shape: &[usize], extra: Option<&HostTensor>) -> Result<Vec<usize>> {
    let rank = shape.len();
    Ok(match op {
        "Reshape" => {
            let target = extra.context("Reshape needs a constant shape")?.as_i64();
            let allow_zero = super::attrs::attr_i(node, "allowzero").unwrap_or(0) != 0;
            let total: usize = shape.iter().product();
            let mut out = Vec::with_capacity(target.len());
            let mut infer = None;
            for (i, &d) in target.iter().enumerate() {
                match d {
                    0 if !allow_zero => out.push(*shape.get(i).context("Reshape copies a missing axis")?),
                    -1 => {
                        if infer.is_some() {
                            bail!("Reshape with two -1");
                        }
                        infer = Some(i);
                        out.push(1);
                    }
                    d if d < 0 => bail!("Reshape to a negative extent {d}"),
                    d => out.push(d as usize),
                }
            }
            let known: usize = out.iter().product();
            if let Some(i) = infer {
                if known == 0 || total % known != 0 {
                    bail!("cannot reshape {shape:?} to {target:?}");
                }
                out[i] = total / known;
            }
            if out.iter().product::<usize>() != total {
                bail!("cannot reshape {shape:?} to {target:?}");
            }
            out
        }
        "Flatten" => {
            let axis = norm_axis(super::attrs::attr_i(node, "axis").unwrap_or(1), rank + 1)?;
            vec![shape[..axis].iter().product(), shape[axis..].iter().product()]
        }
        "Squeeze" => {
            let axes = match extra {
                Some(a) => Some(a.as_i64()),
                None => super::attrs::attr_is(node, "axes"),
            };
            match axes {
                None => shape.iter().copied().filter(|&d| d != 1).collect(),
                Some(axes) => {
                    let axes: std::collections::HashSet<usize> = axes.iter().map(|&a| norm_axis(a, rank)).collect::<Result<_>>()?;
                    for &a in &axes {
                        if shape[a] != 1 {
                            bail!("Squeeze of axis {a} with extent {}", shape[a]);
                        }
                    }
                    shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
                }
            }
        }
        "Unsqueeze" => {
            let axes = match extra {
                Some(a) => a.as_i64(),
                None => super::attrs::attr_is(node, "axes").context("Unsqueeze needs axes")?,
            };
            let out_rank = rank + axes.len();
            let axes: std::collections::HashSet<usize> = axes.iter().map(|&a| norm_axis(a, out_rank)).collect::<Result<_>>()?;
            let mut it = shape.iter();
            (0..out_rank).map(|i| if axes.contains(&i) { 1 } else { *it.next().unwrap_or(&1) }).collect()
        }
        _ => bail!("{op} is not a view op"),
    })
}

/// A Transpose permutation (default: reversed axes), checked to be one.
pub fn permutation(perm: Option<Vec<i64>>, rank: usize) -> Result<Vec<usize>> {
    let p: Vec<usize> = match perm {
        Some(p) => p.iter().map(|&a| norm_axis(a, rank)).collect::<Result<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    for &a in &p {
        if std::mem::replace(&mut seen[a], true) {
            bail!("perm {p:?} repeats axis {a}");
        }
    }
    if p.len() != rank {
        bail!("perm {p:?} does not cover rank {rank}");
    }
    Ok(p)
}

/// Per-axis (start, step, length) of an ONNX Slice on a dimension of extent `dim`.
pub fn slice_axis(dim: usize, start: i64, end: i64, step: i64) -> Result<(i64, i64, usize)> {
    if step == 0 {
        bail!("Slice step 0");
    }
    let d = dim as i64;
    let clampi = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
    let fix = |v: i64| if v < 0 { v + d } else { v };
    let (s, e) = if step > 0 {
        (clampi(fix(start), 0, d), clampi(fix(end), 0, d))
    } else {
        (clampi(fix(start), -1, d - 1), clampi(fix(end), -1, d - 1))
    };
    let len = if step > 0 { ((e - s).max(0) + step - 1) / step } else { ((s - e).max(0) + (-step) - 1) / (-step) };
    Ok((s, step, len as usize))
}

/// Evaluates `op` on constant inputs; `None` when the op is not one the planner folds.
pub fn eval(op: &str, node: &pb::NodeProto, inputs: &[Option<&HostTensor>]) -> Result<Option<Vec<HostTensor>>> {
    let get = |i: usize| -> Result<&HostTensor> {
        inputs.get(i).copied().flatten().with_context(|| format!("{op} needs input {i}"))
    };
    let out = match op {
        "Identity" => vec![get(0)?.clone()],
        "Cast" => {
            let to = super::attrs::attr_i(node, "to").unwrap_or(1) as i32;
            let x = get(0)?;
            let data = if is_float(to) {
                HostData::F(x.as_f32())
            } else if to == DataType::Bool as i32 {
                HostData::I(x.as_f32().iter().map(|&v| (v != 0.0) as i64).collect())
            } else {
                HostData::I(match &x.data {
                    HostData::F(v) => v.iter().map(|&f| f.trunc() as i64).collect(),
                    HostData::I(v) => v.clone(),
                })
            };
            vec![HostTensor { dt: to, shape: x.shape.clone(), data }]
        }
        "Unsqueeze" | "Squeeze" | "Reshape" | "Flatten" => {
            let x = get(0)?;
            let extra = inputs.get(1).copied().flatten();
            let shape = reshaped(op, node, &x.shape, extra)?;
            vec![x.with_data(shape, x.data.clone())]
        }
        "Concat" => {
            let axis = super::attrs::attr_i(node, "axis").context("Concat needs an axis")?;
            let parts: Vec<&HostTensor> = (0..inputs.len()).map(get).collect::<Result<_>>()?;
            let rank = parts.first().context("Concat of nothing")?.shape.len();
            if parts.iter().any(|p| p.shape.len() != rank) {
                bail!("Concat of tensors of different ranks");
            }
            let axis = norm_axis(axis, rank)?;
            let mut shape = parts[0].shape.clone();
            shape[axis] = parts.iter().map(|p| p.shape.get(axis).copied().unwrap_or(0)).sum();
            let outer: usize = shape[..axis].iter().product();
            let float = parts.iter().any(|p| matches!(p.data, HostData::F(_)));
            let mut f = Vec::new();
            let mut iv = Vec::new();
            for o in 0..outer {
                for p in &parts {
                    let chunk: usize = p.shape[axis..].iter().product();
                    let (a, b) = (o * chunk, (o + 1) * chunk);
                    if float {
                        f.extend_from_slice(&p.as_f32()[a..b]);
                    } else {
                        iv.extend_from_slice(&p.as_i64()[a..b]);
                    }
                }
            }
            let data = if float { HostData::F(f) } else { HostData::I(iv) };
            vec![HostTensor { dt: parts[0].dt, shape, data }]
        }
        "Shape" => {
            let x = get(0)?;
            let r = x.shape.len() as i64;
            let start = super::attrs::attr_i(node, "start").unwrap_or(0);
            let end = super::attrs::attr_i(node, "end").unwrap_or(r);
            let (s, _, len) = slice_axis(x.shape.len(), start, end, 1)?;
            let v: Vec<i64> = x.shape[s as usize..s as usize + len].iter().map(|&d| d as i64).collect();
            vec![HostTensor::i64(vec![v.len()], v)]
        }
        "Size" => vec![HostTensor::i64(vec![], vec![get(0)?.len() as i64])],
        "Gather" => {
            let x = get(0)?;
            let ind = get(1)?;
            let axis = norm_axis(super::attrs::attr_i(node, "axis").unwrap_or(0), x.shape.len())?;
            let d = x.shape[axis] as i64;
            let inner: usize = x.shape[axis + 1..].iter().product();
            let outer: usize = x.shape[..axis].iter().product();
            let mut shape = x.shape[..axis].to_vec();
            shape.extend_from_slice(&ind.shape);
            shape.extend_from_slice(&x.shape[axis + 1..]);
            let mut idx = Vec::new();
            for o in 0..outer {
                for &k in &ind.as_i64() {
                    let k = if k < 0 { k + d } else { k };
                    if k < 0 || k >= d {
                        bail!("Gather index {k} out of range {d}");
                    }
                    for j in 0..inner {
                        idx.push((o * d as usize + k as usize) * inner + j);
                    }
                }
            }
            vec![x.pick(shape, &idx)]
        }
        "Slice" => {
            let x = get(0)?;
            let starts = get(1)?.as_i64();
            let ends = get(2)?.as_i64();
            let rank = x.shape.len();
            if ends.len() != starts.len() {
                bail!("Slice starts and ends differ in length");
            }
            let axes: Vec<i64> = match inputs.get(3).copied().flatten() {
                Some(a) => a.as_i64(),
                None => (0..starts.len() as i64).collect(),
            };
            let steps: Vec<i64> = match inputs.get(4).copied().flatten() {
                Some(s) => s.as_i64(),
                None => vec![1; starts.len()],
            };
            if axes.len() != starts.len() || steps.len() != starts.len() {
                bail!("Slice axes or steps differ in length from starts");
            }
            let st = strides(&x.shape);
            let mut shape = x.shape.clone();
            let mut base = 0i64;
            let mut sst: Vec<i64> = st.iter().map(|&s| s as i64).collect();
            for (k, &a) in axes.iter().enumerate() {
                let a = norm_axis(a, rank)?;
                let (s, step, len) = slice_axis(x.shape[a], starts[k], ends[k], steps[k])?;
                shape[a] = len;
                base += s * st[a] as i64;
                sst[a] = step * st[a] as i64;
            }
            let n = numel(&shape)?;
            let mut idx = Vec::with_capacity(n);
            let mut coord = vec![0usize; rank];
            for _ in 0..n {
                idx.push((base + coord.iter().zip(&sst).map(|(&c, &s)| c as i64 * s).sum::<i64>()) as usize);
                for ax in (0..rank).rev() {
                    coord[ax] += 1;
                    if coord[ax] < shape[ax] {
                        break;
                    }
                    coord[ax] = 0;
                }
            }
            vec![x.pick(shape, &idx)]
        }
        "Range" => {
            let (s, l, d) = (get(0)?, get(1)?, get(2)?);
            if s.is_empty() || l.is_empty() || d.is_empty() {
                bail!("Range of empty tensors");
            }
            if matches!(s.data, HostData::F(_)) {
                let (s0, l0, d0) = (s.as_f32()[0], l.as_f32()[0], d.as_f32()[0]);
                let n = (((l0 - s0) / d0).ceil().max(0.0)).min(MAX_FOLD_ELEMENTS as f32) as usize;
                vec![s.with_data(vec![n], HostData::F((0..n).map(|i| s0 + i as f32 * d0).collect()))]
            } else {
                let (s0, l0, d0) = (s.as_i64()[0], l.as_i64()[0], d.as_i64()[0]);
                if d0 == 0 {
                    bail!("Range delta 0");
                }
                let n = ((l0 - s0 + d0 - d0.signum()) / d0).clamp(0, MAX_FOLD_ELEMENTS as i64) as usize;
                vec![s.with_data(vec![n], HostData::I((0..n as i64).map(|i| s0 + i * d0).collect()))]
            }
        }
        "ConstantOfShape" => {
            let shape: Vec<usize> = get(0)?.as_i64().iter().map(|&d| d.max(0) as usize).collect();
            let n = numel(&shape)?;
            if n > MAX_FOLD_ELEMENTS {
                bail!("ConstantOfShape of {n} elements");
            }
            let value = match super::attrs::attr_t(node, "value") {
                Some(t) => HostTensor::from_proto(t)?,
                None => HostTensor::f32(vec![1], vec![0.0]),
            };
            let data = match &value.data {
                HostData::F(v) => HostData::F(vec![*v.first().context("empty ConstantOfShape value")?; n]),
                HostData::I(v) => HostData::I(vec![*v.first().context("empty ConstantOfShape value")?; n]),
            };
            vec![HostTensor { dt: value.dt, shape, data }]
        }
        "Transpose" => {
            let x = get(0)?;
            let rank = x.shape.len();
            let perm = permutation(super::attrs::attr_is(node, "perm"), rank)?;
            let st = strides(&x.shape);
            let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
            let pst: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
            vec![x.pick(shape.clone(), &gather_indices(&shape, &pst))]
        }
        "Expand" => {
            let x = get(0)?;
            let target: Vec<usize> = get(1)?.as_i64().iter().map(|&d| d.max(0) as usize).collect();
            let shape = broadcast_shape(&x.shape, &target)?;
            if numel(&shape)? > MAX_FOLD_ELEMENTS {
                bail!("Expand to {shape:?}");
            }
            vec![x.pick(shape.clone(), &gather_indices(&shape, &broadcast_strides(&x.shape, &shape)))]
        }
        "Add" | "Sub" | "Mul" | "Div" | "Min" | "Max" | "Pow" | "Equal" | "Less" | "Greater" | "LessOrEqual"
        | "GreaterOrEqual" | "And" | "Or" => {
            let (a, b) = (get(0)?, get(1)?);
            let shape = broadcast_shape(&a.shape, &b.shape)?;
            if numel(&shape)? > MAX_FOLD_ELEMENTS {
                bail!("{op} result {shape:?} too large to fold");
            }
            let ia = gather_indices(&shape, &broadcast_strides(&a.shape, &shape));
            let ib = gather_indices(&shape, &broadcast_strides(&b.shape, &shape));
            let cmp = matches!(op, "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or");
            if matches!(a.data, HostData::F(_)) || matches!(b.data, HostData::F(_)) {
                let (av, bv) = (a.as_f32(), b.as_f32());
                let f = |x: f32, y: f32| -> f32 {
                    match op {
                        "Add" => x + y,
                        "Sub" => x - y,
                        "Mul" => x * y,
                        "Div" => x / y,
                        "Min" => x.min(y),
                        "Max" => x.max(y),
                        "Pow" => x.powf(y),
                        "Equal" => (x == y) as i32 as f32,
                        "Less" => (x < y) as i32 as f32,
                        "Greater" => (x > y) as i32 as f32,
                        "LessOrEqual" => (x <= y) as i32 as f32,
                        "GreaterOrEqual" => (x >= y) as i32 as f32,
                        _ => unreachable!(),
                    }
                };
                let v: Vec<f32> = ia.iter().zip(&ib).map(|(&i, &j)| f(av[i], bv[j])).collect();
                if cmp {
                    vec![HostTensor { dt: DataType::Bool as i32, shape, data: HostData::I(v.iter().map(|&x| x as i64).collect()) }]
                } else {
                    vec![HostTensor { dt: if is_float(a.dt) { a.dt } else { b.dt }, shape, data: HostData::F(v) }]
                }
            } else {
                let (av, bv) = (a.as_i64(), b.as_i64());
                let mut v = Vec::with_capacity(ia.len());
                for (&i, &j) in ia.iter().zip(&ib) {
                    let (x, y) = (av[i], bv[j]);
                    v.push(match op {
                        "Add" => x.wrapping_add(y),
                        "Sub" => x.wrapping_sub(y),
                        "Mul" => x.wrapping_mul(y),
                        "Div" => {
                            if y == 0 {
                                bail!("integer division by zero while folding constants");
                            }
                            // Truncation, as onnxruntime divides integers.
                            x / y
                        }
                        "Min" => x.min(y),
                        "Max" => x.max(y),
                        "Pow" => x.pow(y.clamp(0, 62) as u32),
                        "Equal" => (x == y) as i64,
                        "Less" => (x < y) as i64,
                        "Greater" => (x > y) as i64,
                        "LessOrEqual" => (x <= y) as i64,
                        "GreaterOrEqual" => (x >= y) as i64,
                        "And" => (x != 0 && y != 0) as i64,
                        "Or" => (x != 0 || y != 0) as i64,
                        _ => unreachable!(),
                    });
                }
                let dt = if cmp { DataType::Bool as i32 } else { a.dt };
                vec![HostTensor { dt, shape, data: HostData::I(v) }]
            }
        }
        "Neg" | "Abs" | "Sqrt" | "Floor" | "Ceil" | "Reciprocal" | "Not" | "Relu" | "Sigmoid" | "Exp" => {
            let x = get(0)?;
            match &x.data {
                HostData::I(v) if op == "Not" => vec![x.with_data(x.shape.clone(), HostData::I(v.iter().map(|&b| (b == 0) as i64).collect()))],
                HostData::I(v) if matches!(op, "Neg" | "Abs" | "Relu") => {
                    let f = |b: i64| match op {
                        "Neg" => -b,
                        "Abs" => b.abs(),
                        _ => b.max(0),
                    };
                    vec![x.with_data(x.shape.clone(), HostData::I(v.iter().map(|&b| f(b)).collect()))]
                }
                _ => {
                    let f = |v: f32| match op {
                        "Neg" => -v,
                        "Abs" => v.abs(),
                        "Sqrt" => v.sqrt(),
                        "Floor" => v.floor(),
                        "Ceil" => v.ceil(),
                        "Reciprocal" => 1.0 / v,
                        "Relu" => v.max(0.0),
                        "Sigmoid" => 1.0 / (1.0 + (-v).exp()),
                        "Exp" => v.exp(),
                        _ => v,
                    };
                    vec![HostTensor { dt: DataType::Float as i32, shape: x.shape.clone(), data: HostData::F(x.as_f32().into_iter().map(f).collect()) }]
                }
            }
        }
        "ReduceProd" | "ReduceSum" | "ReduceMin" | "ReduceMax" if get(0)?.shape.len() <= 1 => {
            let x = get(0)?;
            let keep = super::attrs::attr_i(node, "keepdims").unwrap_or(1) != 0;
            let shape = if keep { vec![1; x.shape.len()] } else { vec![] };
            let data = match &x.data {
                HostData::I(v) => HostData::I(vec![match op {
                    "ReduceProd" => v.iter().product(),
                    "ReduceSum" => v.iter().sum(),
                    "ReduceMin" => *v.iter().min().context("empty reduction")?,
                    _ => *v.iter().max().context("empty reduction")?,
                }]),
                HostData::F(v) => HostData::F(vec![match op {
                    "ReduceProd" => v.iter().product(),
                    "ReduceSum" => v.iter().sum(),
                    "ReduceMin" => v.iter().copied().fold(f32::INFINITY, f32::min),
                    _ => v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                }]),
            };
            vec![x.with_data(shape, data)]
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}
