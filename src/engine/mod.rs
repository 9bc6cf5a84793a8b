//! Inference engines behind one trait, so decoders and pipelines never see a backend's types.
//! `tract_cpu` is the CPU engine; a GPU engine implements the same trait.

pub mod cpu_kernels;
pub mod tract_cpu;

use anyhow::Result;

#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

/// A dense row-major tensor owned by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data: TensorData::F32(data) }
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            TensorData::I32(_) => None,
        }
    }
}

/// Runs one model on one input. Implementations are built for a fixed input shape.
pub trait Engine: Send {
    /// Runs the model; outputs are float32 in the model's output order.
    fn run(&mut self, input: &Tensor) -> Result<Vec<Tensor>>;
    /// The input shape this engine was planned for.
    fn input_shape(&self) -> &[usize];
    /// The output shapes, known after planning.
    fn output_shapes(&self) -> &[Vec<usize>];
    /// A short name for reports, e.g. "cpu (tract 0.23.9)".
    fn backend_name(&self) -> String;
}
