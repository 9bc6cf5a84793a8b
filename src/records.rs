//! Machine-readable results: one JSON object per frame or image (frames.jsonl / images.jsonl),
//! and COCO keypoint results that pycocotools can score.

use crate::analyzer::Analysis;
use crate::detections::Person;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
pub struct PersonRecord {
    pub score: f32,
    /// [x0, y0, x1, y1] in source pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// [x, y, score] per joint in the schema's order, source pixels.
    pub keypoints: Vec<[f32; 3]>,
    /// Identity over the video (tracking on); never reused within a run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct MaskRecord {
    /// Fraction of the frame where the person probability is >= 0.5.
    pub coverage: f32,
}

#[derive(Debug, Serialize)]
pub struct FrameRecord {
    pub index: u64,
    pub timestamp_s: f64,
    pub people: Vec<PersonRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<MaskRecord>,
    /// Fraction of the frame per class name (semantic segmentation models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<BTreeMap<String, f32>>,
}

/// Seconds rounded to microseconds, as every output writes them.
pub fn round_timestamp(t: f64) -> f64 {
    (t * 1e6).round() / 1e6
}

fn round(v: f32, digits: i32) -> f32 {
    let m = 10f32.powi(digits);
    (v * m).round() / m
}

impl PersonRecord {
    pub fn from_person(p: &Person) -> PersonRecord {
        PersonRecord {
            score: round(p.score, 4),
            bbox: p.bbox.map(|v| round(v, 2)),
            keypoints: p.keypoints.iter().map(|k| [round(k.x, 2), round(k.y, 2), round(k.score, 4)]).collect(),
            track_id: p.track_id,
        }
    }
}

impl FrameRecord {
    pub fn new(index: u64, timestamp_s: f64, a: &Analysis) -> FrameRecord {
        FrameRecord {
            index,
            timestamp_s: round_timestamp(timestamp_s),
            people: a.people.iter().map(PersonRecord::from_person).collect(),
            mask: a.mask.as_ref().map(|m| MaskRecord { coverage: round(m.coverage(), 5) }),
            classes: a.classes.as_ref().map(|c| {
                c.classes.iter().cloned().zip(c.fractions().into_iter().map(|f| round(f, 5))).collect()
            }),
        }
    }
}

/// One entry of a COCO keypoint results file.
#[derive(Debug, Serialize)]
pub struct CocoResult {
    pub image_id: u64,
    pub category_id: u32,
    pub keypoints: Vec<f32>,
    pub score: f32,
}

impl CocoResult {
    pub fn new(image_id: u64, p: &Person) -> CocoResult {
        CocoResult {
            image_id,
            category_id: 1,
            keypoints: p.keypoints.iter().flat_map(|k| [round(k.x, 2), round(k.y, 2), round(k.score, 4)]).collect(),
            score: p.score,
        }
    }
}
