//! ONNX node attributes and the padding rules read from them, shared by the host-side constant
//! folding (`host`), the planner (`graph`) and the kernels.

use anyhow::{bail, Result};
use tract_onnx::pb;

pub fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub fn attr_i(node: &pb::NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

pub fn attr_f(node: &pb::NodeProto, name: &str) -> Option<f32> {
    attr(node, name).map(|a| a.f)
}

pub fn attr_is(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// A list attribute of exactly `n` values, each at least `min` (strides, dilations, pads...).
pub fn attr_list(node: &pb::NodeProto, name: &str, default: &[i64], n: usize, min: i64) -> Result<Vec<usize>> {
    let v = attr_is(node, name).unwrap_or_else(|| default.to_vec());
    if v.len() != n || v.iter().any(|&x| x < min || x > 1 << 20) {
        bail!("attribute {name} = {v:?}: expected {n} values of at least {min}");
    }
    Ok(v.iter().map(|&x| x as usize).collect())
}

pub fn attr_s(node: &pb::NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

pub fn attr_t<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::TensorProto> {
    attr(node, name).and_then(|a| a.t.as_ref())
}

pub fn pad_to_6(v: &[usize], fill: usize) -> Result<[usize; 6]> {
    if v.len() > 6 {
        bail!("tensors of rank {} (more than 6) are not supported on the GPU", v.len());
    }
    let mut out = [fill; 6];
    out[6 - v.len()..].copy_from_slice(v);
    Ok(out)
}

/// Explicit (top, left, bottom, right) padding of a 2-D window op, resolving auto_pad.
pub fn pads(node: &pb::NodeProto, input: [usize; 2], k: [usize; 2], s: [usize; 2], d: [usize; 2]) -> Result<(usize, usize, usize, usize)> {
    let auto = attr_s(node, "auto_pad").unwrap_or_else(|| "NOTSET".into());
    match auto.as_str() {
        "NOTSET" | "" => {
            let p = attr_list(node, "pads", &[0, 0, 0, 0], 4, 0)?;
            Ok((p[0], p[1], p[2], p[3]))
        }
        "VALID" => Ok((0, 0, 0, 0)),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut begin = [0; 2];
            let mut end = [0; 2];
            for a in 0..2 {
                let out = input[a].div_ceil(s[a]);
                let need = ((out - 1) * s[a] + (k[a] - 1) * d[a] + 1).saturating_sub(input[a]);
                let small = need / 2;
                if auto == "SAME_UPPER" {
                    begin[a] = small;
                    end[a] = need - small;
                } else {
                    begin[a] = need - small;
                    end[a] = small;
                }
            }
            Ok((begin[0], begin[1], end[0], end[1]))
        }
        other => bail!("unsupported auto_pad {other}"),
    }
}
