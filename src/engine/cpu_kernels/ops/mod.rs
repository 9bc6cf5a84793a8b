//! The tract ops edgesight swaps into a typed model, one per file with the rules that match
//! what it replaces (`rules::Rule`); each runs one of the kernels of `cpu_kernels`.

pub mod broadcast;
pub mod conv;
pub mod deconv;
#[cfg(target_arch = "x86_64")]
pub mod expand_dw;
pub mod move_axis;
pub mod plane_mean;
pub mod reduce;
pub mod resize;
pub mod unary;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// The check every one-input op here makes when tract wires it: one f32 input of the shape it
/// was planned for.
fn one_f32_input(inputs: &[&TypedFact], shape: &[usize]) -> TractResult<()> {
    ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type());
    ensure!(inputs[0].shape.as_concrete() == Some(shape));
    Ok(())
}

/// The operands a convolution-like op (Conv, Deconv) needs to run on edgesight's kernels: f32
/// data of a concrete NCHW (or CHW) shape, constant f32 weights and an f32 bias. Returns the
/// weights, whether the data has a batch axis, and (n, c, h, w).
fn conv_operands(model: &TypedModel, node: &TypedNode, format: DataFormat) -> TractResult<Option<(Arc<Tensor>, bool, [usize; 4])>> {
    let input = model.outlet_fact(node.inputs[0])?;
    let Some(kernel) = model.outlet_fact(node.inputs[1])?.konst.clone() else { return Ok(None) };
    let bias = model.outlet_fact(node.inputs[2])?;
    if input.datum_type != f32::datum_type() || kernel.datum_type() != f32::datum_type() || bias.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let Some(shape) = input.shape.as_concrete() else { return Ok(None) };
    let batch_axis = format == DataFormat::NCHW;
    let dims = match (batch_axis, shape) {
        (true, &[n, c, h, w]) => [n, c, h, w],
        (false, &[c, h, w]) => [1, c, h, w],
        _ => return Ok(None),
    };
    Ok(Some((kernel, batch_axis, dims)))
}
