//! Network outputs -> people and masks in source pixels. Which decoder runs is named by the
//! model description (`catalog::DecoderSpec`); each decoder also checks output shapes at load time.

pub mod litepose;
pub mod mask;
pub mod movenet;

use crate::catalog::{DecoderSpec, ModelSpec, Task};
use crate::detections::{Mask, Person};
use crate::engine::Tensor;
use crate::preprocess::Transform;
use anyhow::{bail, Result};

/// Tunable decoding thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoseThresholds {
    /// A person is reported when its score reaches this.
    pub person: f32,
}

impl Default for PoseThresholds {
    fn default() -> Self {
        PoseThresholds { person: 0.2 }
    }
}

/// Checks, right after planning, that the outputs have the shapes the decoder reads.
pub fn check_output_shapes(spec: &ModelSpec, shapes: &[Vec<usize>]) -> Result<()> {
    let first = match shapes.first() {
        Some(s) => s,
        None => bail!("the model has no output"),
    };
    match (&spec.decoder, spec.task) {
        (DecoderSpec::MovenetMultipose { .. }, Task::Pose) => movenet::check_shape(first),
        (DecoderSpec::Probability { channel } | DecoderSpec::Softmax { channel }, Task::Segmentation) => {
            mask::check_shape(first, *channel)
        }
        (d, t) => bail!("decoder {d:?} cannot serve a {t} model"),
    }
}

pub fn decode_pose(spec: &ModelSpec, outputs: &[Tensor], t: &Transform, th: PoseThresholds) -> Result<Vec<Person>> {
    match &spec.decoder {
        DecoderSpec::MovenetMultipose { max_people } => movenet::decode(&outputs[0], t, *max_people, th),
        d => bail!("decoder {d:?} does not produce people"),
    }
}

pub fn decode_mask(spec: &ModelSpec, outputs: &[Tensor], t: &Transform) -> Result<Mask> {
    match &spec.decoder {
        DecoderSpec::Probability { channel } => mask::decode(&outputs[0], t, *channel, false),
        DecoderSpec::Softmax { channel } => mask::decode(&outputs[0], t, *channel, true),
        d => bail!("decoder {d:?} does not produce a mask"),
    }
}
