//! Scoring against COCO-style ground truth: object keypoint similarity (OKS) as COCO defines it,
//! and point-in-polygon for person masks.

use crate::detections::Person;
use crate::skeleton::COCO17_SIGMAS;
use anyhow::{anyhow, Context, Result};
use std::path::Path;

/// One annotated person of a COCO keypoints file.
#[derive(Debug, Clone)]
pub struct GroundTruth {
    pub image_id: u64,
    /// 17 x (x, y, visibility flag).
    pub keypoints: Vec<[f32; 3]>,
    pub area: f32,
    pub num_visible: usize,
    /// Polygons as flat [x0, y0, x1, y1, ...] lists (empty for RLE annotations).
    pub polygons: Vec<Vec<f32>>,
}

#[derive(Debug, Clone)]
pub struct GroundTruthSet {
    /// (image id, file name, width, height)
    pub images: Vec<(u64, String, usize, usize)>,
    pub people: Vec<GroundTruth>,
}

pub fn load_coco(path: &Path) -> Result<GroundTruthSet> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let images = json["images"]
        .as_array()
        .ok_or_else(|| anyhow!("no images"))?
        .iter()
        .map(|i| {
            Ok((
                i["id"].as_u64().ok_or_else(|| anyhow!("image without id"))?,
                i["file_name"].as_str().unwrap_or_default().to_string(),
                i["width"].as_u64().unwrap_or(0) as usize,
                i["height"].as_u64().unwrap_or(0) as usize,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut people = Vec::new();
    for a in json["annotations"].as_array().ok_or_else(|| anyhow!("no annotations"))? {
        if a["iscrowd"].as_u64().unwrap_or(0) != 0 {
            continue;
        }
        let kp: Vec<f32> = a["keypoints"]
            .as_array()
            .map(|v| v.iter().map(|x| x.as_f64().unwrap_or(0.0) as f32).collect())
            .unwrap_or_default();
        if kp.len() != 17 * 3 {
            continue;
        }
        let keypoints: Vec<[f32; 3]> = kp.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
        let polygons = a["segmentation"]
            .as_array()
            .map(|polys| {
                polys
                    .iter()
                    .filter_map(|p| p.as_array())
                    .map(|p| p.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect())
                    .collect()
            })
            .unwrap_or_default();
        people.push(GroundTruth {
            image_id: a["image_id"].as_u64().unwrap_or(0),
            num_visible: keypoints.iter().filter(|k| k[2] > 0.0).count(),
            keypoints,
            area: a["area"].as_f64().unwrap_or(0.0) as f32,
            polygons,
        });
    }
    Ok(GroundTruthSet { images, people })
}

/// CrowdPose ground truth (`tests/data/crowdpose` format: 14 joints) as COCO 17 joints, for
/// scoring COCO-schema models: CrowdPose's 12 body joints are COCO's joints 5 to 16 in the same
/// order; its head top and neck have no COCO counterpart and count as not visible. CrowdPose
/// has no segment area: OKS uses `area_of_box` times the box area (mmpose's convention: 0.53).
pub fn load_crowdpose_as_coco(path: &Path, area_of_box: f32) -> Result<GroundTruthSet> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let mut set = GroundTruthSet { images: Vec::new(), people: Vec::new() };
    for i in json["images"].as_array().ok_or_else(|| anyhow!("no images"))? {
        set.images.push((
            i["id"].as_u64().ok_or_else(|| anyhow!("image without id"))?,
            i["file_name"].as_str().unwrap_or_default().to_string(),
            i["width"].as_u64().unwrap_or(0) as usize,
            i["height"].as_u64().unwrap_or(0) as usize,
        ));
    }
    for a in json["annotations"].as_array().ok_or_else(|| anyhow!("no annotations"))? {
        let k: Vec<f32> = a["keypoints"].as_array().map(|v| v.iter().map(|x| x.as_f64().unwrap_or(0.0) as f32).collect()).unwrap_or_default();
        let b: Vec<f32> = a["bbox"].as_array().map(|v| v.iter().map(|x| x.as_f64().unwrap_or(0.0) as f32).collect()).unwrap_or_default();
        if k.len() != 14 * 3 || b.len() != 4 {
            continue;
        }
        let mut keypoints = vec![[0.0f32; 3]; 17];
        for j in 0..12 {
            keypoints[5 + j] = [k[3 * j], k[3 * j + 1], k[3 * j + 2]];
        }
        let num_visible = keypoints.iter().filter(|j| j[2] > 0.0).count();
        set.people.push(GroundTruth {
            image_id: a["image_id"].as_u64().unwrap_or(0),
            keypoints,
            area: area_of_box * b[2] * b[3],
            num_visible,
            polygons: Vec::new(),
        });
    }
    Ok(set)
}

/// COCO OKS between a detection and an annotated person (visible joints only).
pub fn oks(gt: &GroundTruth, det: &Person) -> f32 {
    let mut sum = 0.0;
    let mut n = 0;
    for (j, g) in gt.keypoints.iter().enumerate() {
        if g[2] <= 0.0 || j >= det.keypoints.len() {
            continue;
        }
        let k = det.keypoints[j];
        let (dx, dy) = (k.x - g[0], k.y - g[1]);
        let var = (2.0 * COCO17_SIGMAS[j]).powi(2);
        sum += (-(dx * dx + dy * dy) / (2.0 * var * (gt.area + f32::EPSILON))).exp();
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f32
    }
}

/// The best OKS of any detection for `gt`.
pub fn best_oks(gt: &GroundTruth, dets: &[Person]) -> f32 {
    dets.iter().map(|d| oks(gt, d)).fold(0.0, f32::max)
}

/// Even-odd rule: is (x, y) inside the polygon given as a flat coordinate list?
pub fn in_polygon(poly: &[f32], x: f32, y: f32) -> bool {
    let n = poly.len() / 2;
    let mut inside = false;
    let mut j = n.wrapping_sub(1);
    for i in 0..n {
        let (xi, yi) = (poly[2 * i], poly[2 * i + 1]);
        let (xj, yj) = (poly[2 * j], poly[2 * j + 1]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detections::Keypoint;

    #[test]
    fn oks_is_one_for_exact_and_falls_with_distance() {
        let gt = GroundTruth {
            image_id: 1,
            keypoints: (0..17).map(|j| [j as f32 * 10.0, 50.0, 2.0]).collect(),
            area: 10000.0,
            num_visible: 17,
            polygons: vec![],
        };
        let mk = |dx: f32| Person {
            keypoints: gt.keypoints.iter().map(|k| Keypoint { x: k[0] + dx, y: k[1], score: 1.0 }).collect(),
            bbox: [0.0; 4],
            score: 1.0,
            track_id: None,
        };
        assert!((oks(&gt, &mk(0.0)) - 1.0).abs() < 1e-6);
        let (a, b) = (oks(&gt, &mk(5.0)), oks(&gt, &mk(20.0)));
        assert!(a < 1.0 && b < a && b > 0.0);
        assert_eq!(best_oks(&gt, &[mk(20.0), mk(5.0)]), a);
    }

    #[test]
    fn polygon_contains() {
        let sq = [0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0];
        assert!(in_polygon(&sq, 5.0, 5.0));
        assert!(!in_polygon(&sq, 15.0, 5.0));
    }
}
