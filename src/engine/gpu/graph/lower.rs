//! Lowering: one ONNX node with GPU inputs becomes kernels (convolutions, pools, resizes,
//! element-wise, reductions, copies), with its shapes baked into the shader constants.

use super::{Binding, ConvImpl, Planner, Val};
use crate::engine::gpu::attrs::{attr, attr_f, attr_i, attr_is, attr_list, attr_s, pads};
use crate::engine::gpu::host::{self, HostTensor};
use crate::engine::gpu::kernels::{self, Act};
use anyhow::{bail, Context, Result};
use tract_onnx::pb;

impl Planner<'_> {
    /// Lowers one node with at least one GPU input; false when the GPU cannot run it.
    pub(super) fn lower(&mut self, node: &pb::NodeProto) -> Result<bool> {
        let op = node.op_type.as_str();
        let out_name = node.output.first().cloned().unwrap_or_default();
        let Some(x) = (0..node.input.len()).find_map(|i| self.gpu_input(node, i)) else {
            return Ok(false);
        };
        let first_is_gpu = self.gpu_input(node, 0).is_some();
        let result = match op {
            "Identity" | "Dropout" if first_is_gpu => self.view(x, self.shape(x).to_vec()),
            "Cast" if first_is_gpu => {
                let to = attr_i(node, "to").unwrap_or(1);
                if to != pb::tensor_proto::DataType::Float as i64 {
                    return Ok(false);
                }
                self.view(x, self.shape(x).to_vec())
            }
            "Shape" | "Size" if first_is_gpu => {
                let placeholder = HostTensor::f32(self.shape(x).to_vec(), vec![]);
                // Shape and Size read only the shape.
                let t = if op == "Shape" {
                    host::eval("Shape", node, &[Some(&placeholder)])?.context("Shape")?.remove(0)
                } else {
                    HostTensor::i64(vec![], vec![self.shape(x).iter().product::<usize>() as i64])
                };
                self.set(&out_name, Val::Const(t));
                return Ok(true);
            }
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" if first_is_gpu => {
                let extra = self.const_input(node, 1);
                if node.input.len() > 1 && !node.input[1].is_empty() && extra.is_none() {
                    return Ok(false);
                }
                let shape = host::reshaped(op, node, self.shape(x), extra.as_ref())?;
                self.view(x, shape)
            }
            "Conv" if first_is_gpu => {
                let Some(w) = self.const_input(node, 1) else { return Ok(false) };
                let b = self.const_input(node, 2);
                if node.input.len() > 2 && !node.input[2].is_empty() && b.is_none() {
                    return Ok(false);
                }
                self.conv(node, x, &w, b.as_ref())?
            }
            "ConvTranspose" if first_is_gpu => {
                let Some(w) = self.const_input(node, 1) else { return Ok(false) };
                let b = self.const_input(node, 2);
                self.conv_transpose(node, x, &w, b.as_ref())?
            }
            "BatchNormalization" if first_is_gpu && node.output.len() == 1 => {
                let (Some(s), Some(bb), Some(m), Some(v)) =
                    (self.const_input(node, 1), self.const_input(node, 2), self.const_input(node, 3), self.const_input(node, 4))
                else {
                    return Ok(false);
                };
                let eps = attr_f(node, "epsilon").unwrap_or(1e-5);
                let c = s.len();
                if [bb.len(), m.len(), v.len()].iter().any(|&l| l != c) || self.shape(x).get(1) != Some(&c) {
                    bail!("BatchNormalization parameters do not match the input's channels");
                }
                let (s, bb, m, v) = (s.as_f32(), bb.as_f32(), m.as_f32(), v.as_f32());
                let scale: Vec<f32> = (0..c).map(|i| s[i] / (v[i] + eps).sqrt()).collect();
                let shift: Vec<f32> = (0..c).map(|i| bb[i] - m[i] * scale[i]).collect();
                let rank = self.shape(x).len();
                let mut pshape = vec![c];
                pshape.extend(std::iter::repeat_n(1, rank.saturating_sub(2)));
                let sc = self.param(scale);
                let sh = self.param(shift);
                let y = self.binary(Binding::Value(x), self.shape(x).to_vec(), sc, pshape.clone(), 2)?;
                self.binary(Binding::Value(y), self.shape(y).to_vec(), sh, pshape, 0)?
            }
            "Relu" | "Sigmoid" | "Erf" | "Sqrt" | "Exp" | "Abs" | "Neg" | "Reciprocal" | "Tanh" | "HardSigmoid"
            | "HardSwish" | "Log" | "LeakyRelu" | "Floor" | "Ceil" | "Clip"
                if first_is_gpu =>
            {
                let act = match op {
                    "Clip" => {
                        let lo = if self.opset >= 11 {
                            match node.input.get(1).filter(|n| !n.is_empty()) {
                                Some(_) => match self.const_input(node, 1).and_then(|t| t.as_f32().first().copied()) {
                                    Some(v) => v,
                                    None => return Ok(false),
                                },
                                None => f32::MIN,
                            }
                        } else {
                            attr_f(node, "min").unwrap_or(f32::MIN)
                        };
                        let hi = if self.opset >= 11 {
                            match node.input.get(2).filter(|n| !n.is_empty()) {
                                Some(_) => match self.const_input(node, 2).and_then(|t| t.as_f32().first().copied()) {
                                    Some(v) => v,
                                    None => return Ok(false),
                                },
                                None => f32::MAX,
                            }
                        } else {
                            attr_f(node, "max").unwrap_or(f32::MAX)
                        };
                        Act::clip(lo, hi)
                    }
                    "HardSigmoid" => {
                        Act::new(kernels::HARD_SIGMOID, attr_f(node, "alpha").unwrap_or(0.2), attr_f(node, "beta").unwrap_or(0.5))
                    }
                    "LeakyRelu" => Act::new(kernels::LEAKY_RELU, attr_f(node, "alpha").unwrap_or(0.01), 0.0),
                    other => Act::named(other).context("unary op")?,
                };
                let y = self.new_value(self.shape(x).to_vec());
                self.push(kernels::unary(y, self.shape(y), x, act)?);
                y
            }
            "Add" | "Sub" | "Mul" | "Div" | "Min" | "Max" | "Pow" | "Sum" => {
                if node.input.iter().any(|n| n.is_empty()) || node.input.is_empty() {
                    return Ok(false);
                }
                if node.input.iter().any(|n| matches!(self.vals.get(n), Some(Val::Const(t)) if matches!(t.data, host::HostData::I(_))))
                {
                    // Integer arithmetic stays exact on the CPU.
                    return Ok(false);
                }
                let code = match op {
                    "Add" | "Sum" => 0,
                    "Sub" => 1,
                    "Mul" => 2,
                    "Div" => 3,
                    "Min" => 4,
                    "Max" => 5,
                    _ => 6,
                };
                let (mut acc, mut shape) = self.operand(&node.input[0])?;
                if node.input.len() == 1 {
                    let Binding::Value(v) = acc else { return Ok(false) };
                    self.view(v, shape)
                } else {
                    let mut last = 0;
                    for name in node.input[1..].to_vec() {
                        let (b, bs) = self.operand(&name)?;
                        last = self.binary(acc, shape.clone(), b, bs, code)?;
                        acc = Binding::Value(last);
                        shape = self.shape(last).to_vec();
                    }
                    last
                }
            }
            "MatMul" if node.input.len() == 2 => {
                let (a, ash) = self.operand(&node.input[0])?;
                let (b, bsh) = self.operand(&node.input[1])?;
                self.matmul(a, ash, b, bsh)?
            }
            "Concat" if !node.input.is_empty() => {
                let axis = attr_i(node, "axis").context("Concat needs an axis")?;
                let mut parts = vec![];
                for name in node.input.clone() {
                    parts.push(self.operand(&name)?);
                }
                self.concat(parts, axis)?
            }
            "Transpose" if first_is_gpu => {
                let shape = self.shape(x).to_vec();
                let rank = shape.len();
                let perm = host::permutation(attr_is(node, "perm"), rank)?;
                let st = host::strides(&shape);
                let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
                let src: Vec<i64> = perm.iter().map(|&p| st[p] as i64).collect();
                let y = self.new_value(out.clone());
                self.push(kernels::strided_copy("transpose", y, Binding::Value(x), &out, 0, &src, 0, &contiguous(&out))?);
                y
            }
            "Slice" if first_is_gpu => {
                let (Some(starts), Some(ends)) = (self.const_input(node, 1), self.const_input(node, 2)) else {
                    return Ok(false);
                };
                let shape = self.shape(x).to_vec();
                let rank = shape.len();
                let starts = starts.as_i64();
                let axes = match node.input.get(3).filter(|n| !n.is_empty()) {
                    Some(_) => match self.const_input(node, 3) {
                        Some(a) => a.as_i64(),
                        None => return Ok(false),
                    },
                    None => (0..starts.len() as i64).collect(),
                };
                let steps = match node.input.get(4).filter(|n| !n.is_empty()) {
                    Some(_) => match self.const_input(node, 4) {
                        Some(a) => a.as_i64(),
                        None => return Ok(false),
                    },
                    None => vec![1; starts.len()],
                };
                let ends = ends.as_i64();
                if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
                    bail!("Slice with starts, ends, axes and steps of different lengths");
                }
                let st = host::strides(&shape);
                let mut out = shape.clone();
                let mut src: Vec<i64> = st.iter().map(|&s| s as i64).collect();
                let mut base = 0i64;
                for k in 0..starts.len() {
                    let a = host::norm_axis(axes[k], rank)?;
                    let (s, step, len) = host::slice_axis(shape[a], starts[k], ends[k], steps[k])?;
                    out[a] = len;
                    base += s * st[a] as i64;
                    src[a] = step * st[a] as i64;
                }
                let y = self.new_value(out.clone());
                self.push(kernels::strided_copy("slice", y, Binding::Value(x), &out, base, &src, 0, &contiguous(&out))?);
                y
            }
            "Split" if first_is_gpu => {
                let shape = self.shape(x).to_vec();
                let axis = host::norm_axis(attr_i(node, "axis").unwrap_or(0), shape.len())?;
                let n = node.output.len().max(1);
                let sizes: Vec<usize> = match (self.const_input(node, 1), attr_is(node, "split")) {
                    (Some(t), _) => t.as_i64().iter().map(|&v| v.max(0) as usize).collect(),
                    (None, Some(s)) => s.iter().map(|&v| v.max(0) as usize).collect(),
                    _ => {
                        let each = shape[axis].div_ceil(n);
                        (0..n).map(|i| each.min(shape[axis].saturating_sub(i * each))).collect()
                    }
                };
                if sizes.len() != n || sizes.iter().sum::<usize>() != shape[axis] {
                    bail!("Split sizes {sizes:?} do not cover axis {axis} of {shape:?}");
                }
                let st = host::strides(&shape);
                let mut offset = 0;
                for (o, size) in node.output.clone().iter().zip(sizes) {
                    let mut out = shape.clone();
                    out[axis] = size;
                    let src: Vec<i64> = st.iter().map(|&s| s as i64).collect();
                    let y = self.new_value(out.clone());
                    let base = (offset * st[axis]) as i64;
                    self.push(kernels::strided_copy("split", y, Binding::Value(x), &out, base, &src, 0, &contiguous(&out))?);
                    self.set(o, Val::Gpu(y));
                    offset += size;
                }
                return Ok(true);
            }
            "Expand" if first_is_gpu => {
                let Some(t) = self.const_input(node, 1) else { return Ok(false) };
                let target: Vec<usize> = t.as_i64().iter().map(|&d| d.max(0) as usize).collect();
                let shape = self.shape(x).to_vec();
                let out = host::broadcast_shape(&shape, &target)?;
                let src: Vec<i64> = host::broadcast_strides(&shape, &out).iter().map(|&s| s as i64).collect();
                let y = self.new_value(out.clone());
                self.push(kernels::strided_copy("expand", y, Binding::Value(x), &out, 0, &src, 0, &contiguous(&out))?);
                y
            }
            "Resize" | "Upsample" if first_is_gpu => match self.resize(node, x)? {
                Some(y) => y,
                None => return Ok(false),
            },
            "AveragePool" | "MaxPool" if first_is_gpu && node.output.len() == 1 => self.pool(node, x)?,
            "GlobalAveragePool" | "GlobalMaxPool" if first_is_gpu => {
                let rank = self.shape(x).len();
                let axes: Vec<usize> = (2..rank).collect();
                self.reduce(x, &axes, true, if op == "GlobalAveragePool" { 1 } else { 2 })?
            }
            "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceSumSquare" if first_is_gpu => {
                let rank = self.shape(x).len();
                let axes = match (attr_is(node, "axes"), node.input.get(1).filter(|n| !n.is_empty())) {
                    (Some(a), _) => Some(a),
                    (None, Some(_)) => match self.const_input(node, 1) {
                        Some(t) => Some(t.as_i64()),
                        None => return Ok(false),
                    },
                    (None, None) => None,
                };
                let axes: Vec<usize> = match axes {
                    Some(a) if !a.is_empty() => a.iter().map(|&a| host::norm_axis(a, rank)).collect::<Result<_>>()?,
                    _ if attr_i(node, "noop_with_empty_axes").unwrap_or(0) != 0 => vec![],
                    _ => (0..rank).collect(),
                };
                let keep = attr_i(node, "keepdims").unwrap_or(1) != 0;
                let code = match op {
                    "ReduceSum" => 0,
                    "ReduceMean" => 1,
                    "ReduceMax" => 2,
                    "ReduceMin" => 3,
                    _ => 4,
                };
                self.reduce(x, &axes, keep, code)?
            }
            _ => return Ok(false),
        };
        self.set(&out_name, Val::Gpu(result));
        Ok(true)
    }

    fn binary(&mut self, a: Binding, ash: Vec<usize>, b: Binding, bsh: Vec<usize>, code: u32) -> Result<usize> {
        let out = host::broadcast_shape(&ash, &bsh)?;
        let y = self.new_value(out.clone());
        self.push(kernels::binary(y, &out, a, &ash, b, &bsh, code)?);
        Ok(y)
    }

    fn matmul(&mut self, a: Binding, ash: Vec<usize>, b: Binding, bsh: Vec<usize>) -> Result<usize> {
        if ash.is_empty() || bsh.is_empty() {
            bail!("MatMul of a scalar");
        }
        // 1-D operands are promoted as numpy does, and the added axis removed afterwards.
        let a2 = if ash.len() == 1 { vec![1, ash[0]] } else { ash.clone() };
        let b2 = if bsh.len() == 1 { vec![bsh[0], 1] } else { bsh.clone() };
        let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
        let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
        if k != k2 {
            bail!("MatMul of {ash:?} and {bsh:?}");
        }
        let abatch = &a2[..a2.len() - 2];
        let bbatch = &b2[..b2.len() - 2];
        let batch = host::broadcast_shape(abatch, bbatch)?;
        if batch.len() > 3 {
            bail!("MatMul with more than 3 batch axes");
        }
        let pad3 = |v: &[usize]| -> [usize; 3] {
            let mut o = [0usize; 3];
            o[3 - v.len()..].copy_from_slice(v);
            o
        };
        let mut full = batch.clone();
        full.extend([m, n]);
        let sa = host::broadcast_strides(abatch, &batch).iter().map(|s| s * m * k).collect::<Vec<_>>();
        let sb = host::broadcast_strides(bbatch, &batch).iter().map(|s| s * k * n).collect::<Vec<_>>();
        let mut bd = [1usize; 3];
        bd[3 - batch.len()..].copy_from_slice(&batch);
        let y = self.new_value(full.clone());
        self.push(kernels::matmul(y, &full, a, b, m, k, n, bd, pad3(&sa), pad3(&sb)));
        let mut out = batch;
        if ash.len() > 1 {
            out.push(m);
        }
        if bsh.len() > 1 {
            out.push(n);
        }
        Ok(if out == full { y } else { self.view(y, out) })
    }

    fn concat(&mut self, parts: Vec<(Binding, Vec<usize>)>, axis: i64) -> Result<usize> {
        let rank = parts[0].1.len();
        let axis = host::norm_axis(axis, rank)?;
        let mut out = parts[0].1.clone();
        out[axis] = 0;
        for (_, s) in &parts {
            if s.len() != rank || (0..rank).any(|i| i != axis && s[i] != parts[0].1[i]) {
                bail!("Concat of mismatched shapes");
            }
            out[axis] += s[axis];
        }
        let y = self.new_value(out.clone());
        let ost = host::strides(&out);
        let mut offset = 0;
        for (b, s) in parts {
            if s[axis] == 0 {
                continue;
            }
            let src = contiguous(&s);
            let dst: Vec<i64> = ost.iter().map(|&v| v as i64).collect();
            self.push(kernels::strided_copy("concat", y, b, &s, 0, &src, (offset * ost[axis]) as i64, &dst)?);
            offset += s[axis];
        }
        Ok(y)
    }

    fn reduce(&mut self, x: usize, axes: &[usize], keep: bool, code: u32) -> Result<usize> {
        let shape = self.shape(x).to_vec();
        // Whole trailing planes (global pools, means over H and W): one workgroup per plane.
        let rank = shape.len();
        let trailing = !axes.is_empty() && (0..axes.len()).all(|i| axes.contains(&(rank - 1 - i)));
        let len: usize = axes.iter().map(|&a| shape[a]).product();
        if trailing && len >= 64 {
            let kept: Vec<usize> = (0..rank).map(|i| if axes.contains(&i) { 1 } else { shape[i] }).collect();
            let planes: usize = kept.iter().product();
            let out: Vec<usize> = if keep { kept.clone() } else { (0..rank).filter(|i| !axes.contains(i)).map(|i| shape[i]).collect() };
            let y = self.new_value(out);
            self.push(kernels::plane_reduce(y, x, &kept, planes, len, code)?);
            return Ok(y);
        }
        let st = host::strides(&shape);
        let kept: Vec<usize> = (0..shape.len()).map(|i| if axes.contains(&i) { 1 } else { shape[i] }).collect();
        let red: Vec<usize> = (0..shape.len()).map(|i| if axes.contains(&i) { shape[i] } else { 1 }).collect();
        let out: Vec<usize> = if keep {
            kept.clone()
        } else {
            (0..shape.len()).filter(|i| !axes.contains(i)).map(|i| shape[i]).collect()
        };
        let y = self.new_value(out);
        self.push(kernels::reduce(y, x, &kept, &red, &st, code)?);
        Ok(y)
    }

    fn conv(&mut self, node: &pb::NodeProto, x: usize, w: &HostTensor, b: Option<&HostTensor>) -> Result<usize> {
        let xs = self.shape(x).to_vec();
        if xs.len() != 4 || w.shape.len() != 4 {
            bail!("only 2-D convolutions run on the GPU (input {xs:?}, weight {:?})", w.shape);
        }
        let (n, c, ih, iw) = (xs[0], xs[1], xs[2], xs[3]);
        let (oc, icg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
        let g = attr_i(node, "group").unwrap_or(1).clamp(1, 1 << 20) as usize;
        if oc == 0 || kh == 0 || kw == 0 || icg * g != c || oc % g != 0 {
            bail!("Conv weight {:?} does not fit input {xs:?} with {g} groups", w.shape);
        }
        let s = attr_list(node, "strides", &[1, 1], 2, 1)?;
        let d = attr_list(node, "dilations", &[1, 1], 2, 1)?;
        let (sh, sw, dh, dw) = (s[0], s[1], d[0], d[1]);
        let (pt, pl, pb_, pr) = pads(node, [ih, iw], [kh, kw], [sh, sw], [dh, dw])?;
        let eh = (kh - 1) * dh + 1;
        let ew = (kw - 1) * dw + 1;
        if ih + pt + pb_ < eh || iw + pl + pr < ew {
            bail!("Conv kernel larger than its padded input");
        }
        let oh = (ih + pt + pb_ - eh) / sh + 1;
        let ow = (iw + pl + pr - ew) / sw + 1;
        let bias = b.map(|b| b.as_f32()).unwrap_or_else(|| vec![0.0; oc]);
        if bias.len() != oc {
            bail!("Conv bias has {} values for {oc} channels", bias.len());
        }
        let y = self.new_value(vec![n, oc, oh, ow]);
        let geo = kernels::ConvGeometry { n, c, ih, iw, oc, oh, ow, g, kh, kw, sh, sw, dh, dw, pt, pl };
        let wb = self.param(w.as_f32());
        let bb = self.param(bias);
        let depthwise = g == c && oc == c;
        let k = match (self.opts.conv, depthwise) {
            (ConvImpl::Naive, _) => kernels::conv_naive(y, x, wb, bb, &geo),
            (ConvImpl::Fast, true) => kernels::depthwise_tiled(y, x, wb, bb, &geo, self.opts.workgroup_bytes.max(4096)),
            (ConvImpl::Fast, false) => kernels::dense_conv(y, x, wb, bb, &geo, self.opts.conv_shader),
        };
        self.push(k);
        Ok(y)
    }

    fn conv_transpose(&mut self, node: &pb::NodeProto, x: usize, w: &HostTensor, b: Option<&HostTensor>) -> Result<usize> {
        let xs = self.shape(x).to_vec();
        if xs.len() != 4 || w.shape.len() != 4 {
            bail!("only 2-D transposed convolutions run on the GPU");
        }
        let (n, c, ih, iw) = (xs[0], xs[1], xs[2], xs[3]);
        let g = attr_i(node, "group").unwrap_or(1).clamp(1, 1 << 20) as usize;
        if w.shape[0] != c || c % g != 0 {
            bail!("ConvTranspose weight {:?} does not fit input {xs:?}", w.shape);
        }
        let (ocg, kh, kw) = (w.shape[1], w.shape[2], w.shape[3]);
        let oc = ocg * g;
        let s = attr_list(node, "strides", &[1, 1], 2, 1)?;
        let d = attr_list(node, "dilations", &[1, 1], 2, 1)?;
        let (sh, sw, dh, dw) = (s[0], s[1], d[0], d[1]);
        let op = attr_list(node, "output_padding", &[0, 0], 2, 0)?;
        let p = attr_list(node, "pads", &[0, 0, 0, 0], 4, 0)?;
        if attr_is(node, "output_shape").is_some() || attr_s(node, "auto_pad").is_some_and(|a| a != "NOTSET") {
            bail!("ConvTranspose with output_shape or auto_pad is not supported on the GPU");
        }
        if ih == 0 || iw == 0 || kh == 0 || kw == 0 {
            bail!("ConvTranspose of an empty tensor or kernel");
        }
        let full_h = sh * (ih - 1) + op[0] + (kh - 1) * dh + 1;
        let full_w = sw * (iw - 1) + op[1] + (kw - 1) * dw + 1;
        let (pt, pl, pb_, pr) = (p[0], p[1], p[2], p[3]);
        if full_h < pt + pb_ + 1 || full_w < pl + pr + 1 {
            bail!("ConvTranspose pads larger than its output");
        }
        let (oh, ow) = (full_h - pt - pb_, full_w - pl - pr);
        let bias = b.map(|b| b.as_f32()).unwrap_or_else(|| vec![0.0; oc]);
        if bias.len() != oc {
            bail!("ConvTranspose bias has {} values for {oc} channels", bias.len());
        }
        let y = self.new_value(vec![n, oc, oh, ow]);
        let geo = kernels::ConvGeometry { n, c, ih, iw, oc, oh, ow, g, kh, kw, sh, sw, dh, dw, pt, pl };
        let wb = self.param(w.as_f32());
        let bb = self.param(bias);
        self.push(kernels::conv_transpose(y, x, wb, bb, &geo));
        Ok(y)
    }

    fn pool(&mut self, node: &pb::NodeProto, x: usize) -> Result<usize> {
        let xs = self.shape(x).to_vec();
        if xs.len() != 4 {
            bail!("only 2-D pooling runs on the GPU");
        }
        let (ih, iw) = (xs[2], xs[3]);
        let k = attr_list(node, "kernel_shape", &[], 2, 1)?;
        let (kh, kw) = (k[0], k[1]);
        let s = attr_list(node, "strides", &[1, 1], 2, 1)?;
        let d = attr_list(node, "dilations", &[1, 1], 2, 1)?;
        let (sh, sw, dh, dw) = (s[0], s[1], d[0], d[1]);
        let (pt, pl, pb_, pr) = pads(node, [ih, iw], [kh, kw], [sh, sw], [dh, dw])?;
        let ceil = attr_i(node, "ceil_mode").unwrap_or(0) != 0;
        let out_len = |i: usize, p0: usize, p1: usize, k: usize, s: usize, d: usize| -> Result<usize> {
            let e = (k - 1) * d + 1;
            if i + p0 + p1 < e {
                bail!("pooling window larger than its padded input");
            }
            let span = i + p0 + p1 - e;
            let mut o = if ceil { span.div_ceil(s) + 1 } else { span / s + 1 };
            // A window may not start inside the trailing padding only.
            if ceil && (o - 1) * s >= i + p0 {
                o -= 1;
            }
            Ok(o)
        };
        let oh = out_len(ih, pt, pb_, kh, sh, dh)?;
        let ow = out_len(iw, pl, pr, kw, sw, dw)?;
        let max = node.op_type == "MaxPool";
        let count_pad = attr_i(node, "count_include_pad").unwrap_or(0) != 0;
        // A window over each whole plane, unpadded: a plane reduction.
        if (oh, ow) == (1, 1) && (kh, kw) == (ih, iw) && (dh, dw) == (1, 1) && (pt, pl, pb_, pr) == (0, 0, 0, 0) {
            return self.reduce(x, &[2, 3], true, if max { 2 } else { 1 });
        }
        let y = self.new_value(vec![xs[0], xs[1], oh, ow]);
        let geo = kernels::ConvGeometry { n: xs[0], c: xs[1], ih, iw, oc: xs[1], oh, ow, g: 1, kh, kw, sh, sw, dh, dw, pt, pl };
        self.push(kernels::pool(y, x, &geo, max, count_pad, pb_, pr));
        Ok(y)
    }

    fn resize(&mut self, node: &pb::NodeProto, x: usize) -> Result<Option<usize>> {
        let xs = self.shape(x).to_vec();
        let rank = xs.len();
        let mode = attr_s(node, "mode").unwrap_or_else(|| "nearest".into());
        let coord = attr_s(node, "coordinate_transformation_mode").unwrap_or_else(|| {
            if node.op_type == "Upsample" || self.opset < 11 { "asymmetric".into() } else { "half_pixel".into() }
        });
        let nearest_mode = attr_s(node, "nearest_mode").unwrap_or_else(|| {
            if node.op_type == "Upsample" || self.opset < 11 { "floor".into() } else { "round_prefer_floor".into() }
        });
        let (scales_idx, sizes_idx) = if node.op_type == "Upsample" || self.opset < 11 { (1, usize::MAX) } else { (2, 3) };
        let has = |i: usize| node.input.get(i).is_some_and(|n| !n.is_empty());
        let (out, scales): (Vec<usize>, Vec<f32>) = if has(sizes_idx) {
            let Some(t) = self.const_input(node, sizes_idx) else { return Ok(None) };
            let sizes: Vec<usize> = t.as_i64().iter().map(|&v| v.max(0) as usize).collect();
            if sizes.len() != rank {
                return Ok(None);
            }
            let scales = sizes.iter().zip(&xs).map(|(&o, &i)| o as f32 / i as f32).collect();
            (sizes, scales)
        } else if has(scales_idx) {
            let Some(t) = self.const_input(node, scales_idx) else { return Ok(None) };
            let sc = t.as_f32();
            if sc.len() != rank {
                return Ok(None);
            }
            (xs.iter().zip(&sc).map(|(&i, &s)| (i as f32 * s).floor() as usize).collect(), sc)
        } else if let Some(sc) = attr(node, "scales").map(|a| a.floats.clone()) {
            (xs.iter().zip(&sc).map(|(&i, &s)| (i as f32 * s).floor() as usize).collect(), sc)
        } else {
            return Ok(None);
        };
        let mode = match mode.as_str() {
            "nearest" => 0,
            "linear" | "bilinear" => 1,
            _ => return Ok(None),
        };
        let coord = match coord.as_str() {
            "half_pixel" => 0,
            "align_corners" => 1,
            "asymmetric" => 2,
            "pytorch_half_pixel" => 3,
            "tf_half_pixel_for_nn" => 4,
            _ => return Ok(None),
        };
        let nearest = match nearest_mode.as_str() {
            "round_prefer_floor" => 0,
            "round_prefer_ceil" => 1,
            "floor" => 2,
            "ceil" => 3,
            _ => return Ok(None),
        };
        let resized: Vec<usize> = (0..rank).filter(|&i| out[i] != xs[i] || (scales[i] - 1.0).abs() > 1e-6).collect();
        let h = match resized.as_slice() {
            [] => return Ok(Some(self.view(x, out))),
            [a] if *a + 1 < rank => *a,
            [a] => *a - 1,
            [a, b] if *b == *a + 1 => *a,
            _ => return Ok(None),
        };
        if h + 1 >= rank {
            return Ok(None);
        }
        let outer: usize = xs[..h].iter().product();
        let inner: usize = xs[h + 2..].iter().product();
        let y = self.new_value(out.clone());
        self.push(kernels::resize(
            y,
            x,
            [outer, xs[h], xs[h + 1], inner],
            [out[h], out[h + 1]],
            [scales[h], scales[h + 1]],
            mode,
            coord,
            nearest,
        ));
        Ok(Some(y))
    }
}

fn contiguous(shape: &[usize]) -> Vec<i64> {
    host::strides(shape).iter().map(|&s| s as i64).collect()
}
