//! Official checkpoints -> ONNX graphs that edgesight's engines run.

pub mod bevanet;
pub mod litepose;
pub mod onnx;
pub mod weights;
