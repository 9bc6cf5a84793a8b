//! edgesight's own CPU kernels, swapped into tract's typed model at load time (`patch_model`).
//!
//! tract stays the graph runtime (loading, shape inference, every other op, the plan); only the
//! convolutions it runs slowly on x86 are replaced by `EdgesightConv` (see `conv`), with the
//! ReLU / ReLU6 that follows a convolution fused into its store.

pub mod choice;
pub mod conv;
pub mod deconv;
pub mod dw_blocked;
pub mod direct;
pub mod dw_direct;
#[cfg(target_arch = "x86_64")]
pub mod dw_rows;
pub mod exp;
pub mod gelu;
pub mod mul;
pub mod pool;
pub mod resize;
pub mod simd;
pub mod spec;
pub mod strategy;
#[cfg(target_arch = "x86_64")]
pub mod winograd;

pub use choice::KernelChoice;
use conv::{Clamp, ConvSpec, Isa, PackedConv};
use deconv::PackedDeconv;
use pool::parallel;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::cnn::{Conv, Deconv, KernelFormat, PaddingSpec, SumPool};
use tract_onnx::tract_core::ops::nn::resize::Resize as CoreResize;
use tract_onnx::tract_core::ops::nn::{DataFormat, Reduce, Reducer};

/// A convolution on NCHW f32 input with constant weights, run by `conv::PackedConv`. Inputs:
/// the data and the bias (c_out values or one; a graph input before decluttering folds it).
#[derive(Debug, Clone, PartialEq)]
pub struct EdgesightConv {
    pub conv: PackedConv,
    /// Input (N, C, H, W), fixed at planning; `batch_axis` false for CHW tensors.
    pub input_shape: [usize; 4],
    pub output_shape: [usize; 4],
    pub batch_axis: bool,
    /// Hard swish fused after the clamp: y = (x * k) * min(max(x + 3, 0), 6), in the ONNX
    /// graph's order of operations (k = 1/6 as the graph stores it).
    pub hard_swish: Option<f32>,
}

impl EdgesightConv {
    fn tensor_shape(&self, s: [usize; 4]) -> TVec<usize> {
        if self.batch_axis { s.into() } else { s[1..].into() }
    }
}

// Weights are compared bitwise-equal or not; NaN weights only make two ops unequal.
impl Eq for EdgesightConv {}

impl Op for EdgesightConv {
    fn name(&self) -> StaticName {
        "EdgesightConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let s = &self.conv.spec;
        Ok(vec![format!(
            "in {:?} k {:?} s {:?} d {:?} pad {:?}/{:?} group {} clamp {:?} hard swish {:?}",
            self.input_shape, s.kernel, s.stride, s.dilation, s.pad_before, s.pad_after, s.group, self.conv.clamp, self.hard_swish
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightConv input is not contiguous")?;
        let [_, c, h, w] = self.input_shape;
        let [_, co, oh, ow] = self.output_shape;
        let bias: Vec<f32> = inputs[1].to_plain_array_view::<f32>()?.iter().copied().collect();
        let bias = match bias.len() {
            1 => vec![bias[0]; co],
            l if l == co => bias,
            l => bail!("EdgesightConv has {co} output channels, bias has {l} values"),
        };
        // SAFETY: the convolution writes every output element.
        let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<f32>(&self.tensor_shape(self.output_shape))? };
        {
            let mut view = t.try_as_plain_ram_mut()?;
            let out = view.as_slice_mut::<f32>()?;
            for (img, o) in input.chunks(c * h * w).zip(out.chunks_mut(co * oh * ow)) {
                self.conv.run(img, h, w, &bias, o, &parallel);
                if let Some(k) = self.hard_swish {
                    hard_swish(o, k);
                }
            }
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2 && inputs[0].datum_type == f32::datum_type() && inputs[1].datum_type == f32::datum_type());
        ensure!(
            inputs[0].shape.as_concrete() == Some(&self.tensor_shape(self.input_shape)[..]),
            "EdgesightConv planned for {:?}",
            self.input_shape
        );
        Ok(tvec!(f32::fact(self.tensor_shape(self.output_shape))))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let macs = self.input_shape[0] * self.conv.macs(self.input_shape[2], self.input_shape[3]);
        Ok(tvec!((Cost::FMA(f32::datum_type()), macs.into())))
    }

    as_op!();
}

/// A transposed convolution (group 1, constant weights) run by `deconv::PackedDeconv`. Inputs:
/// the data and the bias.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgesightDeconv {
    pub deconv: PackedDeconv,
    pub batch: usize,
    pub batch_axis: bool,
}

impl Eq for EdgesightDeconv {}

impl EdgesightDeconv {
    fn shape(&self, c: usize, hw: [usize; 2]) -> TVec<usize> {
        if self.batch_axis { tvec!(self.batch, c, hw[0], hw[1]) } else { tvec!(c, hw[0], hw[1]) }
    }
}

impl Op for EdgesightDeconv {
    fn name(&self) -> StaticName {
        "EdgesightDeconv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let d = &self.deconv;
        Ok(vec![format!("{} -> {} {:?} -> {:?} s {:?}", d.c_in, d.c_out, d.input_hw, d.output_hw, d.stride)])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightDeconv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let d = &self.deconv;
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightDeconv input is not contiguous")?;
        let bias: Vec<f32> = inputs[1].to_plain_array_view::<f32>()?.iter().copied().collect();
        let bias = match bias.len() {
            1 => vec![bias[0]; d.c_out],
            l if l == d.c_out => bias,
            l => bail!("EdgesightDeconv has {} output channels, bias has {l} values", d.c_out),
        };
        let plane_in = d.c_in * d.input_hw[0] * d.input_hw[1];
        let plane_out = d.c_out * d.output_hw[0] * d.output_hw[1];
        // SAFETY: every output element belongs to exactly one phase, and each phase's rows are
        // all written (the deconv tests start from NaN and check every element).
        let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<f32>(&self.shape(d.c_out, d.output_hw))? };
        {
            let mut view = t.try_as_plain_ram_mut()?;
            let out = view.as_slice_mut::<f32>()?;
            for (img, o) in input.chunks(plane_in).zip(out.chunks_mut(plane_out)) {
                d.run(img, &bias, o, &parallel);
            }
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightDeconv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let d = &self.deconv;
        ensure!(inputs.len() == 2 && inputs[0].datum_type == f32::datum_type() && inputs[1].datum_type == f32::datum_type());
        ensure!(inputs[0].shape.as_concrete() == Some(&self.shape(d.c_in, d.input_hw)[..]));
        Ok(tvec!(f32::fact(self.shape(d.c_out, d.output_hw))))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!((Cost::FMA(f32::datum_type()), (self.batch * self.deconv.macs()).into())))
    }

    as_op!();
}

fn edgesight_deconv(model: &TypedModel, node: &TypedNode, op: &Deconv, isa: Isa, choice: &KernelChoice) -> TractResult<Option<EdgesightDeconv>> {
    let ps = &op.pool_spec;
    if op.group != 1
        || !matches!(ps.data_format, DataFormat::NCHW | DataFormat::CHW)
        || op.kernel_format != KernelFormat::OIHW
        || ps.kernel_shape.len() != 2
        || node.inputs.len() != 3
        || ps.dilations.as_ref().is_some_and(|d| d.iter().any(|d| *d != 1))
        || !matches!(ps.padding, PaddingSpec::Explicit(..) | PaddingSpec::Valid)
    {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let Some(kernel) = model.outlet_fact(node.inputs[1])?.konst.clone() else { return Ok(None) };
    let bias = model.outlet_fact(node.inputs[2])?;
    if input.datum_type != f32::datum_type() || kernel.datum_type() != f32::datum_type() || bias.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let Some(shape) = input.shape.as_concrete() else { return Ok(None) };
    let batch_axis = ps.data_format == DataFormat::NCHW;
    let (n, c, h, w) = match (batch_axis, shape) {
        (true, &[n, c, h, w]) => (n, c, h, w),
        (false, &[c, h, w]) => (1, c, h, w),
        _ => return Ok(None),
    };
    let (kh, kw) = (ps.kernel_shape[0], ps.kernel_shape[1]);
    let c_out = ps.output_channels;
    if c != ps.input_channels || kernel.shape() != [c_out, c, kh, kw] {
        return Ok(None);
    }
    let Some(out_shape) = model.outlet_fact(node.id.into())?.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
    let (oh, ow) = (out_shape[out_shape.len() - 2], out_shape[out_shape.len() - 1]);
    let strides: TVec<usize> = ps.strides.clone().unwrap_or_else(|| tvec!(1, 1));
    let padded = ps.padding.compute_for_deconv(&[h, w], &[kh, kw], &[1, 1], &strides, &op.adjustments)?;
    if [padded[0].deconvoluted, padded[1].deconvoluted] != [oh, ow] {
        return Ok(None);
    }
    if !matches!(bias.shape.as_concrete(), Some(s) if s.iter().product::<usize>() == c_out || s.iter().product::<usize>() == 1) {
        return Ok(None);
    }
    let kernel: Vec<f32> = kernel.to_plain_array_view::<f32>()?.iter().copied().collect();
    let deconv = PackedDeconv::new(
        c,
        c_out,
        [kh, kw],
        [strides[0], strides[1]],
        [padded[0].pad_before, padded[1].pad_before],
        [h, w],
        [oh, ow],
        &kernel,
        isa,
        choice,
    );
    Ok(Some(EdgesightDeconv { deconv, batch: n, batch_axis }))
}

/// tract's core Resize on the last two axes of an f32 tensor, run by `resize::resize_planes`.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgesightResize {
    pub input_shape: TVec<usize>,
    pub output_shape: TVec<usize>,
    pub rows: resize::AxisTaps,
    pub cols: resize::AxisTaps,
}

impl Eq for EdgesightResize {}

impl Op for EdgesightResize {
    fn name(&self) -> StaticName {
        "EdgesightResize".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} -> {:?}", self.input_shape, self.output_shape)])
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightResize {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightResize input is not contiguous")?;
        let r = self.input_shape.len();
        let (h, w) = (self.input_shape[r - 2], self.input_shape[r - 1]);
        let planes = self.input_shape[..r - 2].iter().product();
        // SAFETY: the resize writes every output element.
        let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<f32>(&self.output_shape)? };
        resize::resize_planes(input, planes, h, w, &self.rows, &self.cols, t.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightResize {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        one_f32_input(inputs, &self.input_shape)?;
        Ok(tvec!(f32::fact(&self.output_shape)))
    }

    as_op!();
}

fn edgesight_resize(model: &TypedModel, node: &TypedNode, op: &CoreResize) -> TractResult<Option<EdgesightResize>> {
    let input = model.outlet_fact(node.inputs[0])?;
    let (Some(shape), Some(out_shape)) =
        (input.shape.as_concrete(), model.outlet_fact(node.id.into())?.shape.as_concrete())
    else {
        return Ok(None);
    };
    let rank = shape.len();
    if input.datum_type != f32::datum_type() || rank < 2 || out_shape.len() != rank {
        return Ok(None);
    }
    // The scales tract's eval would use: the scales input when it has one per axis, else the
    // size ratio.
    let scales_input = op.optional_scales_input.and_then(|ix| node.inputs.get(ix));
    let scales: Vec<f32> = match scales_input.map(|o| model.outlet_fact(*o)).transpose()? {
        Some(f) if f.shape.volume() == rank.to_dim() => {
            let Some(k) = &f.konst else { return Ok(None) };
            k.cast_to::<f32>()?.to_plain_array_view::<f32>()?.iter().copied().collect()
        }
        _ => out_shape.iter().zip(shape).map(|(o, i)| *o as f32 / *i as f32).collect(),
    };
    for axis in 0..rank - 2 {
        if shape[axis] != out_shape[axis] || scales[axis] != 1.0 {
            return Ok(None);
        }
    }
    let taps = |axis: usize| {
        let plan = op.plan_axis(scales[axis], shape[axis], out_shape[axis]);
        (!plan.extrapolated.contains(&true))
            .then_some(resize::AxisTaps { window: plan.window, indices: plan.indices, weights: plan.weights })
    };
    let (Some(rows), Some(cols)) = (taps(rank - 2), taps(rank - 1)) else { return Ok(None) };
    Ok(Some(EdgesightResize { input_shape: shape.into(), output_shape: out_shape.into(), rows, cols }))
}

/// Max or first arg-max over one strided axis of an f32 tensor. tract 0.23.9 folds these
/// element by element through ndarray views: 16 ms for MoveNet's max over 64x64x6x17 ->
/// 64x64x1x17, 0.64 ms for its arg-max over 4096x102 -> 1x102. Same folds as tract's, so the
/// same results, NaNs included (a NaN never wins).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgesightReduce {
    pub input_shape: TVec<usize>,
    pub axis: usize,
    pub reducer: StridedReducer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StridedReducer {
    Max,
    /// The first index of the maximum (ONNX ArgMax with select_last_index = 0), as i64.
    ArgMax,
}

impl EdgesightReduce {
    fn output_shape(&self) -> TVec<usize> {
        let mut s = self.input_shape.clone();
        s[self.axis] = 1;
        s
    }
}

impl Op for EdgesightReduce {
    fn name(&self) -> StaticName {
        format!("EdgesightReduce{:?}", self.reducer).into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} axis {}", self.input_shape, self.axis)])
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightReduce {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightReduce input is not contiguous")?;
        let len = self.input_shape[self.axis];
        let inner: usize = self.input_shape[self.axis + 1..].iter().product();
        let t = match self.reducer {
            StridedReducer::Max => {
                let mut t = tract_onnx::prelude::Tensor::zero::<f32>(&self.output_shape())?;
                {
                    let mut view = t.try_as_plain_ram_mut()?;
                    let out = view.as_slice_mut::<f32>()?;
                    for (src, dst) in input.chunks_exact(len * inner).zip(out.chunks_exact_mut(inner)) {
                        dst.fill(f32::MIN);
                        for row in src.chunks_exact(inner) {
                            for (acc, &v) in dst.iter_mut().zip(row) {
                                *acc = if *acc > v { *acc } else { v };
                            }
                        }
                    }
                }
                t
            }
            StridedReducer::ArgMax => {
                let mut t = tract_onnx::prelude::Tensor::zero::<i64>(&self.output_shape())?;
                {
                    let mut view = t.try_as_plain_ram_mut()?;
                    let out = view.as_slice_mut::<i64>()?;
                    // Branch-free selects on same-width lanes (f32 values, u32 indices), which
                    // the compiler vectorises.
                    ensure!(len <= u32::MAX as usize);
                    let (mut best, mut at) = (vec![f32::MIN; inner], vec![0u32; inner]);
                    for (src, dst) in input.chunks_exact(len * inner).zip(out.chunks_exact_mut(inner)) {
                        best.fill(f32::MIN);
                        at.fill(0);
                        for (i, row) in src.chunks_exact(inner).enumerate() {
                            for ((b, a), &v) in best.iter_mut().zip(at.iter_mut()).zip(row) {
                                let gt = v > *b;
                                *b = if gt { v } else { *b };
                                *a = if gt { i as u32 } else { *a };
                            }
                        }
                        dst.iter_mut().zip(&at).for_each(|(d, a)| *d = *a as i64);
                    }
                }
                t
            }
        };
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightReduce {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        one_f32_input(inputs, &self.input_shape)?;
        Ok(tvec!(match self.reducer {
            StridedReducer::Max => f32::fact(self.output_shape()),
            StridedReducer::ArgMax => i64::fact(self.output_shape()),
        }))
    }

    as_op!();
}

/// Average over whole planes (an AveragePool whose kernel is the input's H x W, NCHW): the
/// selfie model's squeeze-and-excite pools. tract 0.23.9 sums them on one thread at 0.9 ns per
/// element (0.23 ms for 16 x 128 x 128); this sums 16 lanes at a time, planes split over the
/// worker pool. The order of the additions differs from tract's (float rounding only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgesightPlaneMean {
    pub input_shape: TVec<usize>,
}

impl EdgesightPlaneMean {
    /// N x C x 1 x 1.
    fn output_shape(&self) -> TVec<usize> {
        let mut s = self.input_shape.clone();
        s[2] = 1;
        s[3] = 1;
        s
    }
}

impl Op for EdgesightPlaneMean {
    fn name(&self) -> StaticName {
        "EdgesightPlaneMean".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.input_shape)])
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightPlaneMean {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightPlaneMean input is not contiguous")?;
        let plane = self.input_shape[2] * self.input_shape[3];
        let mut t = tract_onnx::prelude::Tensor::zero::<f32>(&self.output_shape())?;
        {
            let mut view = t.try_as_plain_ram_mut()?;
            let out = view.as_slice_mut::<f32>()?;
            // Split by hand, not by `split_out`: the output is tiny (one value per plane) but
            // each value sums a whole plane.
            let planes = out.len();
            let per_task = planes.div_ceil(planes.clamp(1, 16));
            let dst = spec::SendPtr(out.as_mut_ptr());
            parallel(planes.div_ceil(per_task), &|t: usize| {
                for p in t * per_task..((t + 1) * per_task).min(planes) {
                    let src = &input[p * plane..][..plane];
                    // 16 running sums, then their total: vectorises, and rounds no worse.
                    let mut acc = [0f32; 16];
                    let chunks = src.chunks_exact(16);
                    let tail: f32 = chunks.remainder().iter().sum();
                    for c in chunks {
                        acc.iter_mut().zip(c).for_each(|(a, v)| *a += v);
                    }
                    // SAFETY: each task writes only its own planes' outputs.
                    unsafe { *dst.get().add(p) = (acc.iter().sum::<f32>() + tail) / plane as f32 };
                }
            });
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightPlaneMean {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        one_f32_input(inputs, &self.input_shape)?;
        Ok(tvec!(f32::fact(self.output_shape())))
    }

    as_op!();
}

/// An `EdgesightPlaneMean` for an f32 NCHW SumPool that averages whole planes without padding.
fn edgesight_plane_mean(model: &TypedModel, node: &TypedNode, op: &SumPool) -> TractResult<Option<EdgesightPlaneMean>> {
    let fact = model.outlet_fact(node.inputs[0])?;
    let ps = &op.pool_spec;
    let Some(shape) = fact.shape.as_concrete() else { return Ok(None) };
    let no_padding = match &ps.padding {
        PaddingSpec::Valid => true,
        PaddingSpec::Explicit(a, b) | PaddingSpec::ExplicitOnnxPool(a, b, _) => a.iter().chain(b).all(|p| *p == 0),
        _ => false,
    };
    let whole = shape.len() == 4 && ps.kernel_shape[..] == shape[2..] && ps.dilations.as_ref().is_none_or(|d| d.iter().all(|v| *v == 1));
    if !op.normalize || ps.data_format != DataFormat::NCHW || fact.datum_type != f32::datum_type() || !no_padding || !whole {
        return Ok(None);
    }
    Ok(Some(EdgesightPlaneMean { input_shape: shape.into() }))
}

/// One axis of an f32 tensor moved (tract's `AxisOp::Move`: the NHWC inputs of MoveNet and
/// selfie to NCHW, MoveNet's heads back): a strided copy by output rows over the worker pool.
/// tract 0.23.9 copies it on one thread at 1.6 ns per element (0.3 ms for selfie's input).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgesightMoveAxis {
    pub input_shape: TVec<usize>,
    pub from: usize,
    pub to: usize,
}

impl EdgesightMoveAxis {
    /// Input axis of each output axis.
    fn perm(&self) -> TVec<usize> {
        let mut p: TVec<usize> = (0..self.input_shape.len()).filter(|a| *a != self.from).collect();
        p.insert(self.to, self.from);
        p
    }

    fn output_shape(&self) -> TVec<usize> {
        self.perm().iter().map(|a| self.input_shape[*a]).collect()
    }
}

impl Op for EdgesightMoveAxis {
    fn name(&self) -> StaticName {
        "EdgesightMoveAxis".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} axis {} to {}", self.input_shape, self.from, self.to)])
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightMoveAxis {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].to_plain_array_view::<f32>()?;
        let input = input.as_slice().context("EdgesightMoveAxis input is not contiguous")?;
        let (perm, out_shape) = (self.perm(), self.output_shape());
        let rank = perm.len();
        let mut in_strides = tvec![1usize; rank];
        for a in (0..rank.saturating_sub(1)).rev() {
            in_strides[a] = in_strides[a + 1] * self.input_shape[a + 1];
        }
        // Input stride of each output axis; output rows run along the last one.
        let strides: TVec<usize> = perm.iter().map(|a| in_strides[*a]).collect();
        // (max(1): an empty tensor still cuts into whole rows.)
        let row = (*out_shape.last().context("EdgesightMoveAxis on a scalar")?).max(1);
        // SAFETY: every output element is written (rows cover the whole output).
        let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<f32>(&out_shape)? };
        {
            let mut view = t.try_as_plain_ram_mut()?;
            split_out(view.as_slice_mut::<f32>()?, row, &|start, part: &mut [f32]| {
                let mut idx = tvec![0usize; rank];
                let mut rem = start / row;
                for a in (0..rank - 1).rev() {
                    idx[a] = rem % out_shape[a];
                    rem /= out_shape[a];
                }
                for out_row in part.chunks_mut(row) {
                    let base: usize = (0..rank - 1).map(|a| idx[a] * strides[a]).sum();
                    let step = strides[rank - 1];
                    out_row.iter_mut().enumerate().for_each(|(x, o)| *o = input[base + x * step]);
                    for a in (0..rank - 1).rev() {
                        idx[a] += 1;
                        if idx[a] < out_shape[a] {
                            break;
                        }
                        idx[a] = 0;
                    }
                }
            });
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightMoveAxis {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        one_f32_input(inputs, &self.input_shape)?;
        Ok(tvec!(f32::fact(self.output_shape())))
    }

    as_op!();
}

/// An element-wise function of a large f32 tensor, in place, split over the worker pool: e^x
/// (`exp`) or GELU (`gelu`), both single-threaded in tract.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgesightUnary {
    pub func: UnaryFunc,
    pub shape: TVec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryFunc {
    Exp,
    Gelu,
}

impl Op for EdgesightUnary {
    fn name(&self) -> StaticName {
        format!("Edgesight{:?}", self.func).into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.shape)])
    }

    op_as_typed_op!();
}

impl EvalOp for EdgesightUnary {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        // In place, as tract's element-wise ops are (the input is copied only if shared).
        let mut t = inputs.remove(0).into_tensor();
        {
            let mut view = t.try_as_plain_ram_mut()?;
            let f = match self.func {
                UnaryFunc::Exp => exp::exp_in_place,
                UnaryFunc::Gelu => gelu::gelu_in_place,
            };
            split_out(view.as_slice_mut::<f32>()?, 16, &|_, part: &mut [f32]| f(part));
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightUnary {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        one_f32_input(inputs, &self.shape)?;
        Ok(tvec!(f32::fact(&self.shape)))
    }

    as_op!();
}

/// Whether this CPU runs tract's AVX-512 erf, which `gelu` repeats exactly.
fn gelu_matches_tract() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// The check every one-input op here makes when tract wires it: one f32 input of the shape it
/// was planned for.
fn one_f32_input(inputs: &[&TypedFact], shape: &[usize]) -> TractResult<()> {
    ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type());
    ensure!(inputs[0].shape.as_concrete() == Some(shape));
    Ok(())
}

/// What `patch_model` replaced, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PatchCount {
    pub convs: usize,
    pub deconvs: usize,
    pub resizes: usize,
    pub reductions: usize,
    pub exps: usize,
    pub gelus: usize,
    pub transposes: usize,
    pub broadcasts: usize,
    pub fused_clamps: usize,
    pub fused_hard_swish: usize,
}

/// Runs the large element-wise binary ops left after `patch_model` (f32 Add, Sub, Mul, Max, Min,
/// any broadcast: from 512K outputs on one thread, from 64K with more) as `EdgesightBroadcast`,
/// split over the worker pool: tract fuses them into chains that run on one thread at 1-5 ns
/// per element (BEVANet-S's batch-norm and ReLU chains, ~50 ms per frame). Smaller ones stay
/// in tract's fused chains. The sizes depend on the pool's threads at load time.
/// Call it on the decluttered model after `patch_model`, so that batch norms are already folded
/// into convolutions and clamps fused into them.
pub fn patch_elementwise(model: &mut TypedModel, choice: &KernelChoice) -> TractResult<usize> {
    if Isa::fast().is_none() || choice.tract_only {
        return Ok(0);
    }
    let mut count = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(op) = node.op_as::<TypedBinOp>() else { continue };
        if let Some(op) = edgesight_broadcast(model, node, op, true)? {
            let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
            patch.apply(model)?;
            count += 1;
        }
    }
    Ok(count)
}

/// Replaces every f32 NCHW 2D convolution with constant weights by `EdgesightConv` and fuses a
/// following max/min against constants into it. Returns the model unchanged where this CPU has
/// no fast kernels (`Isa::fast`), or when the choice says tract only (for comparisons).
pub fn patch_model(model: &mut TypedModel, choice: &KernelChoice) -> TractResult<PatchCount> {
    let mut count = PatchCount::default();
    let Some(isa) = Isa::fast() else { return Ok(count) };
    if choice.tract_only {
        return Ok(count);
    }
    for id in model.eval_order()? {
        let node = model.node(id);
        if let Some(op) = node.op_as::<Deconv>() {
            if let Some(op) = edgesight_deconv(model, node, op, isa, choice)? {
                let patch = TypedModelPatch::replace_single_op(model, node, &[node.inputs[0], node.inputs[2]], op)?;
                patch.apply(model)?;
                count.deconvs += 1;
            }
            continue;
        }
        if let Some(op) = node.op_as::<TypedBinOp>() {
            if let Some(op) = edgesight_broadcast(model, node, op, false)? {
                let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
                patch.apply(model)?;
                count.broadcasts += 1;
            }
            continue;
        }
        if let Some(op) = node.op_as::<Reduce>() {
            let fact = model.outlet_fact(node.inputs[0])?;
            let reducer = match op.reducer {
                Reducer::Max => Some(StridedReducer::Max),
                Reducer::ArgMax(false) => Some(StridedReducer::ArgMax),
                _ => None,
            };
            if let (Some(reducer), [axis], Some(shape), true) =
                (reducer, &op.axes[..], fact.shape.as_concrete(), fact.datum_type == f32::datum_type())
            {
                // Only the strided case: tract's contiguous one is already vectorised.
                if *axis + 1 < shape.len() && shape[axis + 1..].iter().product::<usize>() > 1 {
                    let op = EdgesightReduce { input_shape: shape.into(), axis: *axis, reducer };
                    let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs[..1], op)?;
                    patch.apply(model)?;
                    count.reductions += 1;
                }
            }
            continue;
        }
        if let Some(op) = node.op_as::<CoreResize>() {
            if let Some(op) = edgesight_resize(model, node, op)? {
                let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs[..1], op)?;
                patch.apply(model)?;
                count.resizes += 1;
            }
            continue;
        }
        if let Some(&AxisOp::Move(from, to)) = node.op_as::<AxisOp>() {
            let fact = model.outlet_fact(node.inputs[0])?;
            if let (Some(shape), true) = (fact.shape.as_concrete(), fact.datum_type == f32::datum_type()) {
                // Large tensors only, and a real move (not one of size-1 axes).
                let moved = shape.iter().enumerate().filter(|(a, d)| **d > 1 && (from.min(to)..=from.max(to)).contains(a)).count() > 1;
                if from != to && from.max(to) < shape.len() && moved && shape.iter().product::<usize>() >= 1 << 15 {
                    let op = EdgesightMoveAxis { input_shape: shape.into(), from, to };
                    let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
                    patch.apply(model)?;
                    count.transposes += 1;
                }
            }
            continue;
        }
        if let Some(op) = node.op_as::<SumPool>() {
            if let Some(op) = edgesight_plane_mean(model, node, op)? {
                let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
                patch.apply(model)?;
                count.reductions += 1;
            }
            continue;
        }
        if let Some(op) = node.op_as::<ElementWiseOp>() {
            let fact = model.outlet_fact(node.inputs[0])?;
            // GELU only where `gelu` repeats tract's AVX-512 arithmetic bit for bit.
            let func = match op.0.name().as_str() {
                "Exp" => Some(UnaryFunc::Exp),
                "GeluExact" if gelu_matches_tract() => Some(UnaryFunc::Gelu),
                _ => None,
            };
            if let (Some(func), Some(shape), true) = (func, fact.shape.as_concrete(), fact.datum_type == f32::datum_type()) {
                // Large tensors only: below one parallel split the call costs more than it saves.
                if shape.iter().product::<usize>() >= 1 << 15 {
                    let op = EdgesightUnary { func, shape: shape.into() };
                    let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
                    patch.apply(model)?;
                    match func {
                        UnaryFunc::Exp => count.exps += 1,
                        UnaryFunc::Gelu => count.gelus += 1,
                    }
                }
            }
            continue;
        }
        let Some(conv) = node.op_as::<Conv>() else { continue };
        let Some(op) = edgesight_conv(model, node, conv, isa, choice)? else {
            if choice.debug_patch {
                let facts: Vec<String> = node.inputs.iter().map(|i| model.outlet_fact(*i).map(|f| format!("{f:?} konst={}", f.konst.is_some())).unwrap_or_default()).collect();
                eprintln!("not patched: {} {:?} {:?} {:?}", node.name, conv.pool_spec, conv.kernel_fmt, facts);
            }
            continue;
        };
        let patch = TypedModelPatch::replace_single_op(model, node, &[node.inputs[0], node.inputs[2]], op)?;
        patch.apply(model)?;
        count.convs += 1;
    }
    // Fuse clamps: conv -> max(x, c) -> min(x, c) (ReLU, ReLU6, Clip) when the conv output has
    // no other reader.
    loop {
        let mut fused = false;
        for id in model.eval_order()? {
            let node = model.node(id);
            let Some(op) = node.op_as::<EdgesightConv>() else { continue };
            let Some(succ) = model.single_succ(id)? else { continue };
            if model.outputs.iter().any(|o| o.node == id) {
                continue;
            }
            let Some((kind, value)) = clamp_of(model, succ, id)? else { continue };
            let mut op = op.clone();
            match kind {
                "Max" => op.conv.clamp.lo = op.conv.clamp.lo.max(value),
                _ => op.conv.clamp.hi = op.conv.clamp.hi.min(value),
            }
            let patch = TypedModelPatch::fuse_with_next(model, node, op)?;
            patch.apply(model)?;
            count.fused_clamps += 1;
            fused = true;
            break;
        }
        if !fused {
            break;
        }
    }
    while let Some((conv, last, k)) = hard_swish_after_conv(model)? {
        let mut op = model.node(conv).op_as::<EdgesightConv>().expect("matched an EdgesightConv").clone();
        op.hard_swish = Some(k);
        let mut patch = TypedModelPatch::default();
        let inputs = patch.taps(model, &model.node(conv).inputs)?;
        let out = patch.wire_node(format!("{}.hard_swish", model.node(conv).name), op, &inputs)?;
        patch.shunt_outside(model, last.into(), out[0])?;
        patch.apply(model)?;
        model.compact()?;
        count.fused_hard_swish += 1;
    }
    model.compact()?;
    Ok(count)
}

/// A hard swish as the selfie model's ONNX spells it after a convolution x:
/// Mul(Mul(x, k), Min(Max(Add(x, 3), 0), 6)), with the convolution's output read by nothing
/// else. Returns (the convolution, the last Mul, k).
fn hard_swish_after_conv(model: &TypedModel) -> TractResult<Option<(usize, usize, f32)>> {
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(op) = node.op_as::<EdgesightConv>() else { continue };
        if op.hard_swish.is_some() || model.outputs.iter().any(|o| o.node == id) || node.outputs.len() != 1 {
            continue;
        }
        let readers = &node.outputs[0].successors;
        if readers.len() != 2 {
            continue;
        }
        let [a, b] = [model.node(readers[0].node), model.node(readers[1].node)];
        let (add, scale) = if bin_name(a) == Some("Add") { (a, b) } else { (b, a) };
        let step = |n: &TypedNode, from: usize, name: &str, value: f32| -> TractResult<bool> {
            Ok(bin_name(n) == Some(name) && const_operand(model, n, from)? == Some(value))
        };
        if !step(add, id, "Add", 3.0)? || bin_name(scale) != Some("Mul") {
            continue;
        }
        let Some(k) = const_operand(model, scale, id)? else { continue };
        let Some(max) = model.single_succ(add.id)? else { continue };
        if !step(max, add.id, "Max", 0.0)? {
            continue;
        }
        let Some(min) = model.single_succ(max.id)? else { continue };
        if !step(min, max.id, "Min", 6.0)? {
            continue;
        }
        // (x * k) * clamped: the last Mul reads both branches and nothing else reads them.
        let Some(last) = model.single_succ(min.id)? else { continue };
        let ins: Vec<usize> = last.inputs.iter().map(|i| i.node).collect();
        if bin_name(last) != Some("Mul") || !(ins == [scale.id, min.id] || ins == [min.id, scale.id]) {
            continue;
        }
        if model.single_succ(scale.id)?.map(|n| n.id) != Some(last.id) {
            continue;
        }
        let shape = &model.outlet_fact(OutletId::new(id, 0))?.shape;
        if [add, max, min, scale, last].iter().any(|n| model.outlet_fact(OutletId::new(n.id, 0)).map(|f| &f.shape != shape).unwrap_or(true)) {
            continue;
        }
        return Ok(Some((id, last.id, k)));
    }
    Ok(None)
}

fn bin_name(node: &TypedNode) -> Option<&'static str> {
    let bin = node.op_as::<TypedBinOp>()?;
    ["Add", "Max", "Min", "Mul"].into_iter().find(|n| bin.0.name() == *n)
}

/// The uniform f32 constant that `node` (a binary op) combines with `from`'s output.
fn const_operand(model: &TypedModel, node: &TypedNode, from: usize) -> TractResult<Option<f32>> {
    if node.inputs.len() != 2 {
        return Ok(None);
    }
    let other = match (node.inputs[0].node == from, node.inputs[1].node == from) {
        (true, false) => node.inputs[1],
        (false, true) => node.inputs[0],
        _ => return Ok(None),
    };
    let Some(k) = &model.outlet_fact(other)?.konst else { return Ok(None) };
    if k.datum_type() != f32::datum_type() || k.len() == 0 {
        return Ok(None);
    }
    let vals: Vec<f32> = k.to_plain_array_view::<f32>()?.iter().copied().collect();
    // (A NaN compares unequal, so it never counts as uniform.)
    Ok(vals.iter().all(|v| *v == vals[0]).then_some(vals[0]))
}

/// y = (y * k) * min(max(y + 3, 0), 6) over `out`, split over the worker pool.
fn hard_swish(out: &mut [f32], k: f32) {
    const CHUNK: usize = 16 * 1024;
    let n = out.len();
    let ptr = spec::SendPtr(out.as_mut_ptr());
    parallel(n.div_ceil(CHUNK), &|t: usize| {
        let (a, b) = (t * CHUNK, ((t + 1) * CHUNK).min(n));
        // SAFETY: tasks own disjoint ranges of `out`.
        let part = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(a), b - a) };
        for y in part {
            let x = *y;
            *y = (x * k) * (x + 3.0).max(0.0).min(6.0);
        }
    });
}

/// `succ` as ("Max" | "Min", c) when it is max/min of `from`'s output and a uniform constant
/// and keeps its shape.
fn clamp_of(model: &TypedModel, succ: &TypedNode, from: usize) -> TractResult<Option<(&'static str, f32)>> {
    let Some(kind @ ("Max" | "Min")) = bin_name(succ) else { return Ok(None) };
    let Some(value) = const_operand(model, succ, from)? else { return Ok(None) };
    if model.outlet_fact(succ.id.into())?.shape != model.outlet_fact(OutletId::new(from, 0))?.shape {
        return Ok(None);
    }
    Ok(Some((kind, value)))
}

fn edgesight_conv(model: &TypedModel, node: &TypedNode, conv: &Conv, isa: Isa, choice: &KernelChoice) -> TractResult<Option<EdgesightConv>> {
    let ps = &conv.pool_spec;
    if conv.q_params.is_some()
        || !matches!(ps.data_format, DataFormat::NCHW | DataFormat::CHW)
        || conv.kernel_fmt != KernelFormat::OIHW
        || ps.kernel_shape.len() != 2
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let Some(kernel) = model.outlet_fact(node.inputs[1])?.konst.clone() else { return Ok(None) };
    let bias = model.outlet_fact(node.inputs[2])?;
    if input.datum_type != f32::datum_type() || kernel.datum_type() != f32::datum_type() || bias.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let Some(shape) = input.shape.as_concrete() else { return Ok(None) };
    let batch_axis = ps.data_format == DataFormat::NCHW;
    let (n, c, h, w) = match (batch_axis, shape) {
        (true, &[n, c, h, w]) => (n, c, h, w),
        (false, &[c, h, w]) => (1, c, h, w),
        _ => return Ok(None),
    };
    let (kh, kw) = (ps.kernel_shape[0], ps.kernel_shape[1]);
    let group = conv.group;
    let c_out = ps.output_channels;
    if c != ps.input_channels || group == 0 || c % group != 0 || c_out % group != 0 {
        return Ok(None);
    }
    if kernel.shape() != [c_out, c / group, kh, kw] {
        return Ok(None);
    }
    let strides: TVec<usize> = ps.strides.clone().unwrap_or_else(|| tvec!(1, 1));
    let dilations: TVec<usize> = ps.dilations.clone().unwrap_or_else(|| tvec!(1, 1));
    let padded = ps.padding.compute(&[h, w], &[kh, kw], &dilations, &strides);
    if !matches!(bias.shape.as_concrete(), Some(s) if s.iter().product::<usize>() == c_out || s.iter().product::<usize>() == 1) {
        return Ok(None);
    }
    let spec = ConvSpec {
        c_in: c,
        c_out,
        group,
        kernel: [kh, kw],
        stride: [strides[0], strides[1]],
        dilation: [dilations[0], dilations[1]],
        pad_before: [padded[0].pad_before, padded[1].pad_before],
        pad_after: [padded[0].pad_after, padded[1].pad_after],
    };
    let Some((oh, ow)) = spec.output_hw(h, w) else { return Ok(None) };
    if (oh, ow) != (padded[0].convoluted, padded[1].convoluted) {
        return Ok(None);
    }
    let kernel: Vec<f32> = kernel.to_plain_array_view::<f32>()?.iter().copied().collect();
    let conv = PackedConv::plan(spec, &kernel, Clamp::NONE, isa, h, w, choice);
    Ok(Some(EdgesightConv { conv, input_shape: [n, c, h, w], output_shape: [n, c_out, oh, ow], batch_axis, hard_swish: None }))
}

/// Add / Sub / Mul of two f32 tensors that broadcast against each other in middle axes (MoveNet's
/// [64,64,6,17] x [64,64,1,17] decoding arithmetic), where tract 0.23.9 falls back to a generic
/// element-by-element loop. Same IEEE operation per element, so bitwise the same result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgesightBroadcast {
    pub kind: BinKind,
    pub a_shape: TVec<usize>,
    pub b_shape: TVec<usize>,
    pub out_shape: TVec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinKind {
    Add,
    Sub,
    Mul,
    Max,
    Min,
    /// Comparisons, with a bool output (MoveNet's box masks: tract's generic broadcasting
    /// comparison took 0.7 ms for [64,64,1,1] < [1,1,6,1]).
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinKind {
    fn is_comparison(self) -> bool {
        matches!(self, BinKind::Lt | BinKind::Le | BinKind::Gt | BinKind::Ge)
    }
}

impl Op for EdgesightBroadcast {
    fn name(&self) -> StaticName {
        format!("Edgesight{:?}", self.kind).into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} x {:?}", self.a_shape, self.b_shape)])
    }

    op_as_typed_op!();
}

/// A kernel for runs of elements: `row(x, y, out)` computes `f` element by element (x, y and
/// out of one length).
pub type RowKernel<T, U> = dyn Fn(&[T], &[T], &mut [U]) + Sync;

/// `out = f(a, b)` with numpy broadcasting; all shapes of the same rank. Rows of the merged
/// innermost axis are split over the worker pool for large outputs. Runs where both operands
/// advance go to `row` where it is given (runs with one operand fixed stay on `f`: per-run
/// calls cost more than they save there, measured on MoveNet's rows of 17).
#[allow(clippy::too_many_arguments)]
pub fn broadcast_binary<T: Copy + Sync, U: Copy + Send + Sync>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
    out: &mut [U],
    f: impl Fn(T, T) -> U + Sync,
    row: Option<&RowKernel<T, U>>,
) {
    // Drop size-1 output axes and merge neighbours that broadcast alike, so rows are as long
    // as they can be ([64,64,6,1] < [64,64,1,1] x [1,1,6,1] becomes rows of 6, not of 1).
    let (mut o, mut sa, mut sb): (Vec<usize>, Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new(), Vec::new());
    for i in (0..out_shape.len()).filter(|&i| out_shape[i] > 1) {
        let (fa, fb) = (a_shape[i] > 1, b_shape[i] > 1);
        match o.len() {
            n if n > 0 && (sa[n - 1] > 1) == fa && (sb[n - 1] > 1) == fb => {
                o[n - 1] *= out_shape[i];
                sa[n - 1] *= a_shape[i];
                sb[n - 1] *= b_shape[i];
            }
            _ => {
                o.push(out_shape[i]);
                sa.push(a_shape[i]);
                sb.push(b_shape[i]);
            }
        }
    }
    if o.is_empty() {
        (o, sa, sb) = (vec![1], vec![1], vec![1]);
    }
    // One operand whole, the other repeating with a short period (a per-channel constant on
    // NHWC data: MoveNet's input normalisation, rows of 3): one flat pass with the short
    // operand tiled to a vector-friendly length.
    let suffix = |x: &[usize]| {
        let k = x.iter().take_while(|d| **d == 1).count();
        k > 0 && x[k..] == o[k..]
    };
    if sa == o && sb == o {
        // Same shapes: one flat pass, in equal parts.
        split_out(out, 1, &|c0, part| {
            let c1 = c0 + part.len();
            match row {
                Some(row) => row(&a[c0..c1], &b[c0..c1], part),
                None => part.iter_mut().zip(&a[c0..c1]).zip(&b[c0..c1]).for_each(|((o, x), y)| *o = f(*x, *y)),
            }
        });
        return;
    }
    if sa == o && suffix(&sb) || sb == o && suffix(&sa) {
        let a_whole = sa == o;
        let (whole, short) = if a_whole { (a, b) } else { (b, a) };
        let period = short.len();
        let tiled: Vec<T> = short.iter().copied().cycle().take(period * 64usize.div_ceil(period)).collect();
        let n = tiled.len();
        split_out(out, n, &|c0, part| {
            let c1 = c0 + part.len();
            for (o, w) in part.chunks_mut(n).zip(whole[c0..c1].chunks(n)) {
                if a_whole {
                    o.iter_mut().zip(w).zip(&tiled).for_each(|((o, x), y)| *o = f(*x, *y));
                } else {
                    o.iter_mut().zip(w).zip(&tiled).for_each(|((o, y), x)| *o = f(*x, *y));
                }
            }
        });
        return;
    }
    let rank = o.len();
    let strides = |shape: &[usize]| {
        let mut s = vec![0usize; rank];
        let mut acc = 1;
        for i in (0..rank).rev() {
            s[i] = if shape[i] == 1 { 0 } else { acc };
            acc *= shape[i];
        }
        s
    };
    let (sa, sb) = (strides(&sa), strides(&sb));
    let inner = o[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    split_out(out, inner, &|c0, part| {
        let mut idx = vec![0usize; rank];
        let mut rem = c0 / inner;
        for i in (0..rank - 1).rev() {
            idx[i] = rem % o[i];
            rem /= o[i];
        }
        for dst in part.chunks_mut(inner) {
            let oa: usize = (0..rank - 1).map(|i| idx[i] * sa[i]).sum();
            let ob: usize = (0..rank - 1).map(|i| idx[i] * sb[i]).sum();
            match (row, ia, ib) {
                (Some(row), 1, 1) => row(&a[oa..oa + inner], &b[ob..ob + inner], dst),
                (_, 1, 1) => dst.iter_mut().zip(&a[oa..oa + inner]).zip(&b[ob..ob + inner]).for_each(|((o, x), y)| *o = f(*x, *y)),
                (_, 1, 0) => dst.iter_mut().zip(&a[oa..oa + inner]).for_each(|(o, x)| *o = f(*x, b[ob])),
                (_, 0, 1) => dst.iter_mut().zip(&b[ob..ob + inner]).for_each(|(o, y)| *o = f(a[oa], *y)),
                _ => dst.fill(f(a[oa], b[ob])),
            }
            for i in (0..rank - 1).rev() {
                idx[i] += 1;
                if idx[i] < o[i] {
                    break;
                }
                idx[i] = 0;
            }
        }
    });
}

/// Runs `f(start, part)` over `out` cut into parts of whole `unit`s, `start` being the part's
/// offset in `out`: up to 16 parts over the worker pool when `out` is large, else one.
fn split_out<U: Send>(out: &mut [U], unit: usize, f: &(dyn Fn(usize, &mut [U]) + Sync)) {
    let (len, units) = (out.len(), out.len().div_ceil(unit.max(1)));
    let tasks = if len >= 1 << 15 { units.min(16) } else { 1 };
    let dst = spec::SendPtr(out.as_mut_ptr() as *mut f32);
    parallel(tasks, &|t: usize| {
        let (c0, c1) = ((t * units / tasks * unit).min(len), ((t + 1) * units / tasks * unit).min(len));
        // SAFETY: the parts are disjoint ranges of `out`.
        let part = unsafe { std::slice::from_raw_parts_mut((dst.get() as *mut U).add(c0), c1 - c0) };
        f(c0, part);
    });
}

impl EvalOp for EdgesightBroadcast {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let a = inputs[0].to_plain_array_view::<f32>()?;
        let b = inputs[1].to_plain_array_view::<f32>()?;
        let (a, b) = (a.as_slice().context("not contiguous")?, b.as_slice().context("not contiguous")?);
        let (sa, sb, so) = (&self.a_shape[..], &self.b_shape[..], &self.out_shape[..]);
        // SAFETY: broadcast_binary writes every output element.
        let t = if self.kind.is_comparison() {
            let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<bool>(so)? };
            {
                let mut view = t.try_as_plain_ram_mut()?;
                let out = view.as_slice_mut::<bool>()?;
                match self.kind {
                    BinKind::Lt => broadcast_binary(a, sa, b, sb, so, out, |x, y| x < y, None),
                    BinKind::Le => broadcast_binary(a, sa, b, sb, so, out, |x, y| x <= y, None),
                    BinKind::Gt => broadcast_binary(a, sa, b, sb, so, out, |x, y| x > y, None),
                    _ => broadcast_binary(a, sa, b, sb, so, out, |x, y| x >= y, None),
                }
            }
            t
        } else {
            let mut t = unsafe { tract_onnx::prelude::Tensor::uninitialized::<f32>(so)? };
            {
                let mut view = t.try_as_plain_ram_mut()?;
                let out = view.as_slice_mut::<f32>()?;
                match self.kind {
                    BinKind::Add => broadcast_binary(a, sa, b, sb, so, out, |x, y| x + y, None),
                    BinKind::Sub => broadcast_binary(a, sa, b, sb, so, out, |x, y| x - y, None),
                    BinKind::Max => broadcast_binary(a, sa, b, sb, so, out, |x: f32, y| x.max(y), None),
                    BinKind::Min => broadcast_binary(a, sa, b, sb, so, out, |x: f32, y| x.min(y), None),
                    // Rows through `mul::mul_into`: no denormal stalls, same bits.
                    _ => broadcast_binary(a, sa, b, sb, so, out, |x, y| x * y, Some(&mul::mul_into)),
                }
            }
            t
        };
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for EdgesightBroadcast {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2 && inputs.iter().all(|f| f.datum_type == f32::datum_type()));
        ensure!(inputs[0].shape.as_concrete() == Some(&self.a_shape[..]) && inputs[1].shape.as_concrete() == Some(&self.b_shape[..]));
        Ok(tvec!(if self.kind.is_comparison() { bool::fact(&self.out_shape) } else { f32::fact(&self.out_shape) }))
    }

    as_op!();
}

/// An `EdgesightBroadcast` for `node` when it is f32 Add/Sub/Mul whose inputs both broadcast, or
/// one broadcasts in an axis before a non-broadcast one (tract's fast paths cover the rest:
/// same shapes, scalars, leading-axis broadcasts).
fn edgesight_broadcast(model: &TypedModel, node: &TypedNode, op: &TypedBinOp, any_pattern: bool) -> TractResult<Option<EdgesightBroadcast>> {
    let kind = match op.0.name() {
        "Add" => BinKind::Add,
        "Sub" => BinKind::Sub,
        "Mul" => BinKind::Mul,
        "Max" if any_pattern => BinKind::Max,
        "Min" if any_pattern => BinKind::Min,
        "LT" => BinKind::Lt,
        "LTE" => BinKind::Le,
        "GT" => BinKind::Gt,
        "GTE" => BinKind::Ge,
        _ => return Ok(None),
    };
    if node.inputs.len() != 2 {
        return Ok(None);
    }
    let (fa, fb, fo) = (model.outlet_fact(node.inputs[0])?, model.outlet_fact(node.inputs[1])?, model.outlet_fact(node.id.into())?);
    let out_type = if kind.is_comparison() { bool::datum_type() } else { f32::datum_type() };
    if fa.datum_type != f32::datum_type() || fb.datum_type != f32::datum_type() || fo.datum_type != out_type {
        return Ok(None);
    }
    let (Some(a), Some(b), Some(o)) = (fa.shape.as_concrete(), fb.shape.as_concrete(), fo.shape.as_concrete()) else { return Ok(None) };
    if a.len() != o.len() || b.len() != o.len() || o.is_empty() || o.iter().product::<usize>() < 4096 {
        return Ok(None);
    }
    let broadcasts = |s: &[usize]| s != o;
    let scalar = |s: &[usize]| s.iter().all(|d| *d == 1);
    // A size-1 axis (broadcast) followed later by a full-size axis.
    let middle = |s: &[usize]| (0..s.len()).any(|i| s[i] == 1 && o[i] > 1 && (i + 1..s.len()).any(|j| s[j] == o[j] && o[j] > 1));
    // Broadcast only over trailing axes whose sizes multiply to a short row: tract multiplies
    // such rows one scalar at a time (MoveNet's [64,64,6,17] x [64,64,6,1]: 0.8 ms, 2 ns per
    // element, on one thread).
    let short_rows = |s: &[usize]| {
        let lead = s.iter().zip(o).take_while(|(x, y)| x == y).count();
        lead < o.len() && s[lead..].iter().all(|d| *d == 1) && o[lead..].iter().product::<usize>() < 64
    };
    let elements = o.iter().product::<usize>();
    // On one thread tract's fused chains of small element-wise ops win (selfie 2% slower
    // without them); with threads to split over, splitting wins (selfie at 2 threads 15%
    // faster with every op from 64K elements split; alternating runs of `bench`).
    let large = if pool::threads() > 1 { 1 << 16 } else { 1 << 19 };
    let wanted = (any_pattern && elements >= large)
        || (any_pattern && elements >= 1 << 15 && (short_rows(a) || short_rows(b)))
        || (!scalar(a) && !scalar(b) && ((broadcasts(a) && broadcasts(b)) || middle(a) || middle(b)));
    if !wanted || a.iter().zip(o).any(|(x, y)| *x != *y && *x != 1) || b.iter().zip(o).any(|(x, y)| *x != *y && *x != 1) {
        return Ok(None);
    }
    Ok(Some(EdgesightBroadcast { kind, a_shape: a.into(), b_shape: b.into(), out_shape: o.into() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Moved axes against tract's own AxisOp::Move, bitwise, on one thread and on the pool.
    #[test]
    fn moved_axes_match_tract() {
        let mut rng = SplitMix64(12);
        let mut replaced = 0;
        for case in 0..40 {
            pool::set_threads(1 + case % 2).unwrap();
            let rank = 2 + rng.below(4);
            let mut shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(24)).collect();
            if case % 4 == 0 {
                shape = vec![1, 256, 256, 3];
            }
            let (from, to) = (rng.below(shape.len()), rng.below(shape.len()));
            let n: usize = shape.iter().product();
            let input = tract_ndarray::ArrayD::from_shape_vec(shape.clone(), (0..n).map(|i| i as f32).collect()).unwrap().into_tensor();
            let mut model = TypedModel::default();
            let src = model.add_source("x", f32::fact(&shape)).unwrap();
            let out = model.wire_node("move", AxisOp::Move(from, to), &[src]).unwrap();
            model.select_output_outlets(&out).unwrap();
            let want = model.clone().into_runnable().unwrap().run(tvec![input.clone().into()]).unwrap();
            replaced += patch_model(&mut model, &KernelChoice::default()).unwrap().transposes;
            let got = model.into_runnable().unwrap().run(tvec![input.into()]).unwrap();
            assert_eq!(got[0].shape(), want[0].shape(), "{shape:?} {from} -> {to}");
            assert_eq!(got[0].to_plain_array_view::<f32>().unwrap(), want[0].to_plain_array_view::<f32>().unwrap(), "{shape:?} {from} -> {to}");
        }
        pool::set_threads(1).unwrap();
        if Isa::fast().is_some() {
            assert!(replaced >= 10, "only {replaced} moves replaced");
        }
    }

    /// Whole-plane averages against tract's own SumPool, on one thread and on the pool; pools
    /// with padding or a smaller kernel stay tract's.
    #[test]
    fn plane_means_match_tract() {
        use tract_onnx::tract_core::ops::cnn::PoolSpec;
        let mut rng = SplitMix64(8);
        for (case, shape) in [[1, 16, 128, 128], [1, 3, 7, 5], [2, 33, 9, 17], [1, 1, 1, 1], [1, 40, 4, 4]].into_iter().enumerate() {
            pool::set_threads(1 + case % 2).unwrap();
            for (kernel, padding, replaced) in [
                (tvec![shape[2], shape[3]], PaddingSpec::Valid, true),
                (tvec![shape[2], shape[3]], PaddingSpec::Explicit(tvec![1, 0], tvec![0, 0]), false),
                (tvec![1, shape[3]], PaddingSpec::Valid, shape[2] == 1),
            ] {
                let n: usize = shape.iter().product();
                let input = tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| rng.unit_f32() * 4.0 - 1.0).collect()).unwrap().into_tensor();
                let pool_spec = PoolSpec {
                    data_format: DataFormat::NCHW,
                    kernel_shape: kernel,
                    padding,
                    dilations: None,
                    strides: None,
                    input_channels: shape[1],
                    output_channels: shape[1],
                };
                let mut model = TypedModel::default();
                let src = model.add_source("x", f32::fact(shape)).unwrap();
                let out = model.wire_node("pool", SumPool { pool_spec, count_include_pad: false, normalize: true }, &[src]).unwrap();
                model.select_output_outlets(&out).unwrap();
                let want = model.clone().into_runnable().unwrap().run(tvec![input.clone().into()]).unwrap();
                let count = patch_model(&mut model, &KernelChoice::default()).unwrap();
                if Isa::fast().is_some() {
                    assert_eq!(count.reductions == 1, replaced, "{shape:?}");
                }
                let got = model.into_runnable().unwrap().run(tvec![input.clone().into()]).unwrap();
                assert_eq!(got[0].shape(), want[0].shape());
                let (g, w) = (got[0].to_plain_array_view::<f32>().unwrap(), want[0].to_plain_array_view::<f32>().unwrap());
                // Without edgesight's kernels (no AVX2 here, e.g. arm64) nothing is replaced.
                if replaced && Isa::fast().is_some() {
                    // Against the exact mean (f64): tract's one running sum drifts by up to a few
                    // 1e-6 over 128 x 128; the 16 running sums stay closer.
                    let x = input.to_plain_array_view::<f32>().unwrap();
                    let x = x.as_slice().unwrap();
                    let plane = shape[2] * shape[3];
                    for (p, (a, b)) in g.iter().zip(w.iter()).enumerate() {
                        let exact = x[p * plane..][..plane].iter().map(|v| *v as f64).sum::<f64>() / plane as f64;
                        assert!((*a as f64 - exact).abs() <= 5e-7 * (1.0 + exact.abs()), "{shape:?}: {a} vs exact {exact}");
                        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{shape:?}: {a} vs tract {b}");
                    }
                } else {
                    let bits = |v: &tract_ndarray::ArrayViewD<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&g), bits(&w), "{shape:?}: tract's own op gives tract's result");
                }
            }
        }
        pool::set_threads(1).unwrap();
    }

    /// Max and first arg-max over a strided axis against tract's own Reduce on the same model,
    /// with ties (few distinct values), NaNs and an all-NaN column.
    #[test]
    fn strided_reductions_match_tract() {
        let mut rng = SplitMix64(5);
        for (shape, axis) in [(vec![4096, 102], 0), (vec![3, 17, 5], 1), (vec![2, 9, 4, 3], 1), (vec![31, 33], 0)] {
            let n: usize = shape.iter().product();
            let inner: usize = shape[axis + 1..].iter().product();
            let data: Vec<f32> = (0..n)
                .map(|i| match rng.below(50) {
                    0 => f32::NAN,
                    _ if i % inner == 1 => f32::NAN,
                    _ => rng.below(7) as f32 - 3.0,
                })
                .collect();
            let input = tract_ndarray::ArrayD::from_shape_vec(shape.clone(), data).unwrap().into_tensor();
            for reducer in [Reducer::Max, Reducer::ArgMax(false)] {
                let mut model = TypedModel::default();
                let src = model.add_source("x", f32::fact(&shape)).unwrap();
                let out = model.wire_node("reduce", Reduce { axes: tvec![axis], reducer }, &[src]).unwrap();
                model.select_output_outlets(&out).unwrap();
                let want = model.clone().into_runnable().unwrap().run(tvec![input.clone().into()]).unwrap();
                let count = patch_model(&mut model, &KernelChoice::default()).unwrap();
                if Isa::fast().is_some() {
                    assert_eq!(count.reductions, 1, "{reducer:?} on {shape:?} not replaced");
                }
                let got = model.into_runnable().unwrap().run(tvec![input.clone().into()]).unwrap();
                assert_eq!(got[0].datum_type(), want[0].datum_type());
                assert_eq!(got[0].shape(), want[0].shape());
                // Bitwise, NaNs included.
                let bits = |t: &tract_onnx::prelude::Tensor| -> Vec<u64> {
                    if t.datum_type() == i64::datum_type() {
                        t.to_plain_array_view::<i64>().unwrap().iter().map(|v| *v as u64).collect()
                    } else {
                        t.to_plain_array_view::<f32>().unwrap().iter().map(|v| v.to_bits() as u64).collect()
                    }
                };
                assert_eq!(bits(&got[0]), bits(&want[0]), "{reducer:?} over axis {axis} of {shape:?}");
            }
        }
    }

    #[test]
    fn broadcast_binary_matches_naive() {
        let mut rng = SplitMix64(21);
        for case in 0..220 {
            let rank = 1 + rng.below(4);
            // The last cases are large enough to be split over threads (MoveNet-like shapes).
            let out: Vec<usize> = (0..rank).map(|_| 1 + rng.below(if case >= 200 { 40 } else { 5 })).collect();
            let pick = |rng: &mut SplitMix64| out.iter().map(|&d| if rng.below(2) == 0 { 1 } else { d }).collect::<Vec<_>>();
            let (sa, sb) = (pick(&mut rng), pick(&mut rng));
            // Every third case in the denormal range, where products go through `mul`'s rows.
            let scale = if case % 3 == 0 { 1e-20 } else { 1.0 };
            let a: Vec<f32> = (0..sa.iter().product()).map(|_| rng.unit_f32() * scale).collect();
            let b: Vec<f32> = (0..sb.iter().product()).map(|_| rng.unit_f32() * scale).collect();
            let mut got = vec![0f32; out.iter().product()];
            broadcast_binary(&a, &sa, &b, &sb, &out, &mut got, |x, y| x - y, None);
            let mut prod = vec![0f32; out.iter().product()];
            broadcast_binary(&a, &sa, &b, &sb, &out, &mut prod, |x, y| x * y, Some(&mul::mul_into));
            let at = |v: &[f32], s: &[usize], idx: &[usize]| v[idx.iter().zip(s).fold(0, |acc, (i, d)| acc * d + if *d == 1 { 0 } else { *i })];
            for (k, g) in got.iter().enumerate() {
                let mut idx = vec![0; rank];
                let mut r = k;
                for i in (0..rank).rev() {
                    idx[i] = r % out[i];
                    r /= out[i];
                }
                assert_eq!(*g, at(&a, &sa, &idx) - at(&b, &sb, &idx), "{sa:?} {sb:?} {out:?}");
                assert_eq!(prod[k].to_bits(), (at(&a, &sa, &idx) * at(&b, &sb, &idx)).to_bits(), "product {sa:?} {sb:?} {out:?}");
            }
        }
        // A comparison with a bool output, on the pool as `--threads 2` runs it.
        pool::set_threads(2).unwrap();
        let (sa, sb, out) = ([64, 64, 1, 1], [1, 1, 6, 1], [64, 64, 6, 1]);
        let a: Vec<f32> = (0..64 * 64).map(|_| rng.unit_f32()).collect();
        let b: Vec<f32> = (0..6).map(|_| rng.unit_f32()).collect();
        let mut got = vec![false; 64 * 64 * 6];
        broadcast_binary(&a, &sa, &b, &sb, &out, &mut got, |x, y| x < y, None);
        pool::set_threads(1).unwrap();
        for (k, g) in got.iter().enumerate() {
            assert_eq!(*g, a[k / 6] < b[k % 6], "at {k}");
        }
    }
}
