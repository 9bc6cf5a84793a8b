//! Network outputs -> people and masks in source pixels. Which decoder runs is named by the
//! model description (`catalog::DecoderSpec`); each decoder also checks output shapes at load time.

pub mod classes;
pub mod litepose;
pub mod mask;
pub mod movenet;
pub mod movenet_single;
pub mod nanodet;

use crate::catalog::{DecoderSpec, ModelSpec, Task};
use crate::detections::{ClassMap, Mask, Person};
use crate::tensor::Tensor;
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
        (DecoderSpec::AssociativeEmbedding { .. }, Task::Pose) => {
            let second = shapes.get(1).map(|s| s.as_slice()).unwrap_or(&[]);
            litepose::check_shapes(first, second, grouping(spec)?.joints)
        }
        (DecoderSpec::Classes, Task::Segmentation) => classes::check_shape(first, spec.classes.len()),
        (DecoderSpec::MovenetSinglepose, Task::Pose) => movenet_single::check_shape(first),
        (DecoderSpec::Nanodet { class, strides, bins }, Task::Detection) => {
            let (h, w) = spec.input_size(1, 1);
            nanodet::check_shapes(shapes, strides, *bins, *class, w, h)
        }
        (d, t) => bail!("decoder {d:?} cannot serve a {t} model"),
    }
}

/// Grouping parameters for an associative-embedding model, from its keypoint schema.
fn grouping(spec: &ModelSpec) -> Result<litepose::GroupingParams> {
    match spec.keypoints.as_deref() {
        Some("coco17") => Ok(litepose::GroupingParams::coco()),
        Some("crowdpose14") => Ok(litepose::GroupingParams::crowdpose()),
        other => bail!("model '{}': no grouping parameters for keypoint schema {other:?}", spec.name),
    }
}

/// Turns a pose model's outputs into people; keeps decoder buffers from frame to frame.
#[derive(Default)]
pub struct PoseDecoder {
    grouping: Option<litepose::Decoder>,
}

impl PoseDecoder {
    /// People from `outputs`; `flipped` holds the outputs of the flipped pass, if any.
    pub fn decode(
        &mut self,
        spec: &ModelSpec,
        outputs: &[Tensor],
        flipped: Option<&[Tensor]>,
        t: &Transform,
        th: PoseThresholds,
    ) -> Result<Vec<Person>> {
        match &spec.decoder {
            DecoderSpec::MovenetMultipose { max_people } => movenet::decode(&outputs[0], t, *max_people, th),
            // The whole frame as one person's crop (top-down pose runs the crops itself).
            DecoderSpec::MovenetSinglepose => {
                let p = movenet_single::decode(&outputs[0], t, movenet_single::BOX_JOINT_SCORE)?;
                Ok(if p.score >= th.person { vec![p] } else { vec![] })
            }
            DecoderSpec::AssociativeEmbedding { .. } => {
                if outputs.len() < 2 {
                    bail!("model '{}' gave {} outputs, expected out0 and out1", spec.name, outputs.len());
                }
                let flipped = match flipped {
                    Some(f) if f.len() >= 2 => Some((&f[0], &f[1])),
                    _ => None,
                };
                if self.grouping.is_none() {
                    self.grouping = Some(litepose::Decoder::new(grouping(spec)?));
                }
                let decoder = self.grouping.as_mut().expect("set above");
                let mut people = decoder.decode(&outputs[0], &outputs[1], flipped, t)?;
                people.retain(|p| p.score >= th.person);
                Ok(people)
            }
            d => bail!("decoder {d:?} does not produce people"),
        }
    }
}

/// What a segmentation model produces.
pub enum Segmentation {
    /// A person probability per pixel.
    Person(Mask),
    /// A class label per pixel.
    Classes(ClassMap),
}

pub fn decode_segmentation(spec: &ModelSpec, outputs: &[Tensor], t: &Transform) -> Result<Segmentation> {
    Ok(match &spec.decoder {
        DecoderSpec::Probability { channel } => Segmentation::Person(mask::decode(&outputs[0], t, *channel, false)?),
        DecoderSpec::Softmax { channel } => Segmentation::Person(mask::decode(&outputs[0], t, *channel, true)?),
        DecoderSpec::Classes => Segmentation::Classes(classes::decode(&outputs[0], t, &spec.classes, &spec.palette)?),
        d => bail!("decoder {d:?} does not produce a segmentation"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    /// A user's model may output NaN (e.g. a broken checkpoint): decoding must not panic.
    #[test]
    fn nan_outputs_decode_without_panicking() {
        let catalog = Catalog::builtin();
        let t = Transform { input_w: 64, input_h: 64, frame_w: 64, frame_h: 64, scale_x: 1.0, scale_y: 1.0, offset_x: 0.0, offset_y: 0.0 };
        let nan = |shape: Vec<usize>| Tensor::f32(shape.clone(), vec![f32::NAN; shape.iter().product()]);
        let lite = catalog.get("litepose-xs").unwrap();
        let outs = [nan(vec![1, 34, 16, 16]), nan(vec![1, 17, 32, 32])];
        let people = PoseDecoder::default().decode(lite, &outs, Some(&outs), &t, PoseThresholds::default()).unwrap();
        assert!(people.is_empty());
        let movenet = catalog.get("movenet-multipose").unwrap();
        assert!(PoseDecoder::default().decode(movenet, &[nan(vec![1, 6, 56])], None, &t, PoseThresholds::default()).unwrap().is_empty());
        for (name, shape) in [("selfie", vec![1, 8, 8, 1]), ("meet", vec![1, 8, 8, 2]), ("bevanet-s", vec![1, 19, 8, 8])] {
            let spec = catalog.get(name).unwrap();
            match decode_segmentation(spec, &[nan(shape)], &t).unwrap() {
                Segmentation::Person(m) => assert_eq!(m.coverage(), 0.0),
                Segmentation::Classes(c) => assert_eq!(c.fractions().iter().sum::<f32>(), 1.0),
            }
        }
    }
}
