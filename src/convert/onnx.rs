//! A small ONNX graph writer (opset 13) over tract's protobuf types: values are named strings,
//! weights become initializers, nodes are appended in topological order as the caller builds.

use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;

pub const OPSET: i64 = 13;

pub struct OnnxGraph {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    next_id: usize,
}

/// A dimension of a graph input or output: fixed, or named and free.
#[derive(Debug, Clone)]
pub enum Dim {
    Fixed(i64),
    Named(&'static str),
}

fn value_info(name: &str, dims: &[Dim]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            denotation: String::new(),
            value: Some(match d {
                Dim::Fixed(v) => Value::DimValue(*v),
                Dim::Named(n) => Value::DimParam(n.to_string()),
            }),
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
        }),
        doc_string: String::new(),
    }
}

pub fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i: v, ..Default::default() }
}

pub fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Ints as i32, ints: v.to_vec(), ..Default::default() }
}

pub fn attr_float(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Float as i32, f: v, ..Default::default() }
}

pub fn attr_string(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

impl Default for OnnxGraph {
    fn default() -> Self {
        Self::new()
    }
}

impl OnnxGraph {
    pub fn new() -> OnnxGraph {
        OnnxGraph { nodes: vec![], initializers: vec![], inputs: vec![], outputs: vec![], next_id: 0 }
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.next_id += 1;
        format!("{hint}_{}", self.next_id)
    }

    pub fn input(&mut self, name: &str, dims: &[Dim]) -> String {
        self.inputs.push(value_info(name, dims));
        name.to_string()
    }

    /// Marks `value` as a graph output called `name` (through an Identity when names differ).
    pub fn output(&mut self, value: &str, name: &str, dims: &[Dim]) {
        if value != name {
            self.nodes.push(pb::NodeProto {
                input: vec![value.into()],
                output: vec![name.into()],
                name: format!("output_{name}"),
                op_type: "Identity".into(),
                ..Default::default()
            });
        }
        self.outputs.push(value_info(name, dims));
    }

    /// A float32 initializer.
    pub fn constant(&mut self, hint: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        self.initializer(hint, dims, DataType::Float, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// An int64 initializer (shapes, axes).
    pub fn constant_i64(&mut self, hint: &str, dims: &[usize], data: &[i64]) -> String {
        self.initializer(hint, dims, DataType::Int64, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// An initializer from little-endian bytes.
    fn initializer(&mut self, hint: &str, dims: &[usize], data_type: DataType, raw_data: Vec<u8>) -> String {
        let name = self.fresh(hint);
        self.initializers.push(pb::TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type as i32,
            raw_data,
            name: name.clone(),
            ..Default::default()
        });
        name
    }

    /// Appends a single-output node and returns its output value.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<pb::AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// Conv with explicit parameters; `bias` may be absent.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        x: &str,
        weight: (&[usize], &[f32]),
        bias: Option<&[f32]>,
        stride: usize,
        pads: [usize; 4],
        dilation: [usize; 2],
        groups: usize,
    ) -> String {
        let w = self.constant("w", weight.0, weight.1);
        let b = bias.map(|b| self.constant("b", &[b.len()], b));
        let mut inputs = vec![x, w.as_str()];
        if let Some(b) = &b {
            inputs.push(b);
        }
        let k = [weight.0[2] as i64, weight.0[3] as i64];
        let attrs = vec![
            attr_ints("kernel_shape", &k),
            attr_ints("strides", &[stride as i64, stride as i64]),
            attr_ints("pads", &pads.map(|p| p as i64)),
            attr_ints("dilations", &dilation.map(|d| d as i64)),
            attr_int("group", groups as i64),
        ];
        self.node("Conv", &inputs, attrs)
    }

    pub fn clip(&mut self, x: &str, lo: f32, hi: f32) -> String {
        let lo = self.constant("clip_lo", &[], &[lo]);
        let hi = self.constant("clip_hi", &[], &[hi]);
        self.node("Clip", &[x, &lo, &hi], vec![])
    }

    pub fn relu(&mut self, x: &str) -> String {
        self.node("Relu", &[x], vec![])
    }

    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", &[a, b], vec![])
    }

    pub fn finish(self, producer: &str) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: 7,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
            producer_name: producer.into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(pb::GraphProto {
                node: self.nodes,
                name: producer.into(),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    // ---- Generic helpers added for BEVANet (elementwise, reductions, pooling, resampling). ----

    /// Element-wise product (numpy broadcasting).
    pub fn mul(&mut self, a: &str, b: &str) -> String {
        self.node("Mul", &[a, b], vec![])
    }

    /// Element-wise difference `a - b` (numpy broadcasting).
    pub fn sub(&mut self, a: &str, b: &str) -> String {
        self.node("Sub", &[a, b], vec![])
    }

    /// Element-wise quotient `a / b` (numpy broadcasting).
    pub fn div(&mut self, a: &str, b: &str) -> String {
        self.node("Div", &[a, b], vec![])
    }

    pub fn sigmoid(&mut self, x: &str) -> String {
        self.node("Sigmoid", &[x], vec![])
    }

    pub fn sqrt(&mut self, x: &str) -> String {
        self.node("Sqrt", &[x], vec![])
    }

    /// A float32 scalar initializer (broadcasts against anything).
    pub fn scalar(&mut self, hint: &str, v: f32) -> String {
        self.constant(hint, &[], &[v])
    }

    /// `1 - x`, as PyTorch writes `(1 - t)`.
    pub fn one_minus(&mut self, x: &str) -> String {
        let one = self.scalar("one", 1.0);
        self.sub(&one, x)
    }

    /// Exact GELU (PyTorch `nn.GELU()`, approximate='none'): `x * 0.5 * (1 + erf(x / sqrt(2)))`.
    pub fn gelu(&mut self, x: &str) -> String {
        let inv_sqrt2 = self.scalar("gelu_inv_sqrt2", std::f32::consts::FRAC_1_SQRT_2);
        let half = self.scalar("gelu_half", 0.5);
        let one = self.scalar("gelu_one", 1.0);
        let t = self.mul(x, &inv_sqrt2);
        let e = self.node("Erf", &[&t], vec![]);
        let e1 = self.add(&e, &one);
        let xh = self.mul(x, &half);
        self.mul(&xh, &e1)
    }

    /// Per-channel affine on an NCHW tensor: `x * scale[c] + shift[c]` (e.g. a BatchNorm in
    /// inference form that cannot be folded into a neighbouring convolution).
    pub fn channel_affine(&mut self, x: &str, scale: &[f32], shift: &[f32]) -> String {
        let c = scale.len();
        debug_assert_eq!(shift.len(), c);
        let s = self.constant("scale", &[c, 1, 1], scale);
        let b = self.constant("shift", &[c, 1, 1], shift);
        let y = self.mul(x, &s);
        self.add(&y, &b)
    }

    /// Per-channel scale on an NCHW tensor: `x * scale[c]`.
    pub fn channel_scale(&mut self, x: &str, scale: &[f32]) -> String {
        let s = self.constant("scale", &[scale.len(), 1, 1], scale);
        self.mul(x, &s)
    }

    /// ReduceMean over `axes` (opset 13: axes is an attribute).
    pub fn reduce_mean(&mut self, x: &str, axes: &[i64], keepdims: bool) -> String {
        self.node("ReduceMean", &[x], vec![attr_ints("axes", axes), attr_int("keepdims", keepdims as i64)])
    }

    /// ReduceMax over `axes` (opset 13: axes is an attribute).
    pub fn reduce_max(&mut self, x: &str, axes: &[i64], keepdims: bool) -> String {
        self.node("ReduceMax", &[x], vec![attr_ints("axes", axes), attr_int("keepdims", keepdims as i64)])
    }

    /// ReduceSum over `axes` (opset 13: axes is an int64 input, not an attribute).
    pub fn reduce_sum(&mut self, x: &str, axes: &[i64], keepdims: bool) -> String {
        let a = self.constant_i64("axes", &[axes.len()], axes);
        self.node("ReduceSum", &[x, &a], vec![attr_int("keepdims", keepdims as i64)])
    }

    /// Concatenation along `axis`.
    pub fn concat(&mut self, xs: &[&str], axis: i64) -> String {
        self.node("Concat", xs, vec![attr_int("axis", axis)])
    }

    /// `x[start..end]` along `axis` (opset 13 Slice: starts, ends, axes as int64 inputs).
    pub fn slice(&mut self, x: &str, axis: i64, start: i64, end: i64) -> String {
        let s = self.constant_i64("starts", &[1], &[start]);
        let e = self.constant_i64("ends", &[1], &[end]);
        let a = self.constant_i64("axes", &[1], &[axis]);
        self.node("Slice", &[x, &s, &e, &a], vec![])
    }

    /// 2-D AveragePool, `pads` in ONNX order [top, left, bottom, right]. `count_include_pad`
    /// true is PyTorch's `nn.AvgPool2d` default (divide by the full kernel area).
    pub fn average_pool(
        &mut self,
        x: &str,
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
        count_include_pad: bool,
    ) -> String {
        let attrs = vec![
            attr_ints("kernel_shape", &kernel.map(|k| k as i64)),
            attr_ints("strides", &stride.map(|s| s as i64)),
            attr_ints("pads", &pads.map(|p| p as i64)),
            attr_int("count_include_pad", count_include_pad as i64),
        ];
        self.node("AveragePool", &[x], attrs)
    }

    /// Mean over all spatial positions, keeping [N, C, 1, 1].
    pub fn global_average_pool(&mut self, x: &str) -> String {
        self.node("GlobalAveragePool", &[x], vec![])
    }

    /// Bilinear resampling of an NCHW tensor to the absolute `sizes` (opset 13 Resize with the
    /// `sizes` input; roi and scales left empty). `coordinate_transformation_mode` is
    /// `half_pixel` for `F.interpolate(..., align_corners=False)` (PyTorch clamps negative source
    /// coordinates to 0, as onnxruntime and tract do for linear mode; unlike
    /// `pytorch_half_pixel`, it also matches PyTorch for an output length of 1) and
    /// `align_corners` for `align_corners=True`.
    pub fn resize_linear(&mut self, x: &str, sizes: [usize; 4], coordinate_transformation_mode: &str) -> String {
        let s = self.constant_i64("sizes", &[4], &sizes.map(|v| v as i64));
        let attrs = vec![
            attr_string("mode", "linear"),
            attr_string("coordinate_transformation_mode", coordinate_transformation_mode),
        ];
        self.node("Resize", &[x, "", "", &s], attrs)
    }

    /// Number of nodes appended so far.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

/// Serialises a model to ONNX protobuf bytes.
pub fn encode(model: &pb::ModelProto) -> Vec<u8> {
    prost::Message::encode_to_vec(model)
}
