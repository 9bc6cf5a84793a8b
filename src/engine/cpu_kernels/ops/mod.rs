//! The tract ops edgesight swaps into a typed model, one per file with the rules that match
//! what it replaces (`rules::Rule`); each runs one of the kernels of `cpu_kernels`.

pub mod broadcast;
pub mod conv;
pub mod deconv;
pub mod move_axis;
pub mod plane_mean;
pub mod reduce;
pub mod resize;
pub mod unary;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// The check every one-input op here makes when tract wires it: one f32 input of the shape it
/// was planned for.
fn one_f32_input(inputs: &[&TypedFact], shape: &[usize]) -> TractResult<()> {
    ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type());
    ensure!(inputs[0].shape.as_concrete() == Some(shape));
    Ok(())
}
