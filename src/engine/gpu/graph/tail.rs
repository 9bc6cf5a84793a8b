//! The CPU tail: the nodes the GPU cannot run and everything downstream of them, written as a
//! smaller ONNX graph whose inputs are the downloaded GPU values.

use super::{Planner, Tail, Val};
use anyhow::{bail, Result};
use std::collections::HashSet;
use tract_onnx::pb;

impl Planner<'_> {
    pub(super) fn build_tail(&mut self, model: &pb::ModelProto, outputs: Vec<pb::ValueInfoProto>, pinned: &mut HashSet<usize>) -> Result<Tail> {
        let produced: HashSet<&str> = self.tail_nodes.iter().flat_map(|n| n.output.iter().map(|s| s.as_str())).collect();
        let mut inputs = vec![];
        let mut input_infos = vec![];
        let mut initializers = vec![];
        let mut seen = HashSet::new();
        for n in &self.tail_nodes {
            for name in &n.input {
                if name.is_empty() || produced.contains(name.as_str()) || !seen.insert(name.clone()) {
                    continue;
                }
                match self.vals.get(name) {
                    Some(Val::Gpu(v)) => {
                        let v = *v;
                        pinned.insert(self.values[v].storage);
                        input_infos.push(float_info(name, &self.values[v].shape));
                        inputs.push((name.clone(), v));
                    }
                    Some(Val::Const(t)) => initializers.push(t.to_proto(name)),
                    _ => bail!("tail input '{name}' has no value"),
                }
            }
        }
        for (_, v) in &inputs {
            self.uses[*v] += 1;
        }
        let onnx = pb::ModelProto {
            ir_version: model.ir_version.max(7),
            opset_import: model.opset_import.clone(),
            producer_name: "edgesight gpu planner (cpu tail)".into(),
            graph: Some(pb::GraphProto {
                node: self.tail_nodes.clone(),
                name: "cpu_tail".into(),
                initializer: initializers,
                input: input_infos,
                output: outputs,
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(Tail { onnx: prost::Message::encode_to_vec(&onnx), inputs, ops: self.tail_ops.clone() })
    }
}

fn float_info(name: &str, shape: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|&d| Dimension { denotation: String::new(), value: Some(Value::DimValue(d as i64)) })
                        .collect(),
                }),
            })),
        }),
        doc_string: String::new(),
    }
}
