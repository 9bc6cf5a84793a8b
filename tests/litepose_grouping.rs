//! LitePose associative-embedding decoding on real ground truth: for every annotated image of
//! tests/data/coco (COCO val2017, 17 joints) and tests/data/crowdpose (14 joints), render the
//! outputs an ideal LitePose network would give (out1 heatmaps at 1/2 of the input, out0
//! heatmaps and tags at 1/4: a sigma-2 Gaussian per visible keypoint, one tag value per person
//! around its keypoints), decode them with the official post-processing (with and without the
//! flip test, at LitePose input sizes 256 and 448) and score every annotated person with 5+
//! visible keypoints by OKS against its annotation. Overlapping people are included.

mod common;

use common::data;
use edgesight::decode::litepose::{decode, GroupingParams};
use edgesight::detections::Person;
use edgesight::engine::Tensor;
use edgesight::metrics::load_coco;
use edgesight::preprocess::Transform;
use edgesight::skeleton::{COCO17_SIGMAS, CROWDPOSE14_SIGMAS};

/// One annotated person: keypoints (x, y, visibility) in source pixels and the OKS area.
struct Annotation {
    image_id: u64,
    keypoints: Vec<[f32; 3]>,
    area: f32,
}

impl Annotation {
    fn visible(&self) -> usize {
        self.keypoints.iter().filter(|k| k[2] > 0.0).count()
    }
}

/// COCO OKS with the given sigmas over the annotation's visible joints.
fn oks(gt: &Annotation, det: &Person, sigmas: &[f32]) -> f32 {
    let mut sum = 0.0;
    let mut n = 0;
    for (j, g) in gt.keypoints.iter().enumerate() {
        if g[2] <= 0.0 {
            continue;
        }
        let k = det.keypoints[j];
        let d2 = (k.x - g[0]).powi(2) + (k.y - g[1]).powi(2);
        let var = (2.0 * sigmas[j]).powi(2);
        sum += (-d2 / (2.0 * var * (gt.area + f32::EPSILON))).exp();
        n += 1;
    }
    sum / n as f32
}

/// LitePose's input geometry (lib/utils/transforms.py `resize`): the short side becomes `size`,
/// the long side is rounded up to a multiple of 64; the picture fills the top-left.
fn litepose_transform(frame_w: usize, frame_h: usize, size: usize) -> Transform {
    let s = size as f32 / frame_w.min(frame_h) as f32;
    let round64 = |v: f32| ((v + 63.0) / 64.0).floor() as usize * 64;
    let (input_w, input_h) =
        if frame_w < frame_h { (size, round64(frame_h as f32 * s)) } else { (round64(frame_w as f32 * s), size) };
    Transform { input_w, input_h, frame_w, frame_h, scale_x: 1.0 / s, scale_y: 1.0 / s, offset_x: 0.0, offset_y: 0.0 }
}

/// Maps of an ideal network at one output stride: J heatmaps (sigma 2 Gaussians, max over
/// people, as the official HeatmapGenerator) and, optionally, J tag maps where each pixel within
/// 3 output pixels of a keypoint carries the tag of the person whose keypoint is nearest.
fn render(
    people: &[&Annotation],
    t: &Transform,
    stride: usize,
    joints: usize,
    with_tags: bool,
) -> (usize, usize, Vec<f32>) {
    let (h, w) = (t.input_h / stride, t.input_w / stride);
    let plane = h * w;
    let channels = if with_tags { 2 * joints } else { joints };
    let mut maps = vec![0f32; channels * plane];
    let mut nearest = vec![f32::INFINITY; plane];
    let (sx, sy) = (1.0 / t.scale_x, 1.0 / t.scale_y);
    let sigma = 2.0f32;
    for j in 0..joints {
        nearest.iter_mut().for_each(|d| *d = f32::INFINITY);
        for (k, p) in people.iter().enumerate() {
            let g = p.keypoints[j];
            if g[2] <= 0.0 {
                continue;
            }
            // Source pixel -> input pixel -> output pixel index (pixel i covers [i, i + 1)).
            let cx = g[0] * sx / stride as f32 - 0.5;
            let cy = g[1] * sy / stride as f32 - 0.5;
            let tag = (k + 1) as f32 * 3.0;
            for y in 0..h {
                for x in 0..w {
                    let d2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                    let v = (-d2 / (2.0 * sigma * sigma)).exp();
                    let hm = &mut maps[j * plane + y * w + x];
                    *hm = hm.max(v);
                    if with_tags && d2 <= 9.0 && d2 < nearest[y * w + x] {
                        nearest[y * w + x] = d2;
                        maps[(joints + j) * plane + y * w + x] = tag;
                    }
                }
            }
        }
    }
    (h, w, maps)
}

/// The outputs of the horizontally flipped input for an ideal network: mirrored maps with left
/// and right joints swapped (channel j of the flipped pass sees joint flip[j]).
fn mirror(maps: &[f32], channels: usize, joints: usize, h: usize, w: usize, flip: &[usize]) -> Vec<f32> {
    let plane = h * w;
    let mut out = vec![0f32; channels * plane];
    for c in 0..channels {
        let (group, j) = (c / joints, c % joints);
        let src = group * joints + flip[j];
        for y in 0..h {
            for x in 0..w {
                out[c * plane + y * w + x] = maps[src * plane + y * w + (w - 1 - x)];
            }
        }
    }
    out
}

struct Outcome {
    lines: Vec<String>,
    worst: f32,
    scored: usize,
}

fn evaluate(
    images: &[(u64, String, usize, usize)],
    people: &[Annotation],
    params: &GroupingParams,
    sigmas: &[f32],
    size: usize,
    flip: bool,
) -> Outcome {
    let joints = params.joints;
    let mut out = Outcome { lines: Vec::new(), worst: 1.0, scored: 0 };
    for (id, _file, fw, fh) in images {
        let here: Vec<&Annotation> = people.iter().filter(|p| p.image_id == *id && p.visible() > 0).collect();
        let t = litepose_transform(*fw, *fh, size);
        let (h0, w0, o0) = render(&here, &t, 4, joints, true);
        let (h1, w1, o1) = render(&here, &t, 2, joints, false);
        let out0 = Tensor::f32(vec![1, 2 * joints, h0, w0], o0.clone());
        let out1 = Tensor::f32(vec![1, joints, h1, w1], o1.clone());
        let flipped = flip.then(|| {
            (
                Tensor::f32(vec![1, 2 * joints, h0, w0], mirror(&o0, 2 * joints, joints, h0, w0, params.flip_index)),
                Tensor::f32(vec![1, joints, h1, w1], mirror(&o1, joints, joints, h1, w1, params.flip_index)),
            )
        });
        let started = std::time::Instant::now();
        let dets = decode(&out0, &out1, flipped.as_ref().map(|(a, b)| (a, b)), &t, params).unwrap();
        let elapsed = started.elapsed();
        out.lines.push(format!(
            "  image {id}: {} annotated people with visible keypoints, {} detected, decode {:.1} ms",
            here.len(),
            dets.len(),
            elapsed.as_secs_f64() * 1e3
        ));
        // An ideal network: one detection per annotated person, none merged, none split.
        assert_eq!(dets.len(), here.len(), "image {id}: detections");
        for (k, p) in here.iter().enumerate() {
            if p.visible() < 5 {
                continue;
            }
            // Best-matching detection.
            let (best, which) = dets
                .iter()
                .enumerate()
                .map(|(i, d)| (oks(p, d, sigmas), i))
                .fold((0.0f32, usize::MAX), |a, b| if b.0 > a.0 { b } else { a });
            let score = dets.get(which).map_or(0.0, |d| d.score);
            out.lines.push(format!(
                "  image {id} ({fw}x{fh} -> input {}x{}) person {k}: {} visible, area {:.0}, OKS {best:.4} (detection score {score:.3})",
                t.input_w,
                t.input_h,
                p.visible(),
                p.area
            ));
            out.worst = out.worst.min(best);
            out.scored += 1;
        }
    }
    out
}

fn check(
    name: &str,
    images: &[(u64, String, usize, usize)],
    people: &[Annotation],
    params: &GroupingParams,
    sigmas: &[f32],
    expect_scored: usize,
) {
    for size in [256, 448] {
        for flip in [false, true] {
            let o = evaluate(images, people, params, sigmas, size, flip);
            println!(
                "{name}, input short side {size}, flip test {flip}: {} people scored, worst OKS {:.4}",
                o.scored, o.worst
            );
            for l in &o.lines {
                println!("{l}");
            }
            assert_eq!(o.scored, expect_scored, "{name}: people with 5+ visible keypoints");
            assert!(o.worst >= 0.95, "{name} size {size} flip {flip}: worst OKS {:.4} < 0.95", o.worst);
        }
    }
}

#[test]
fn coco_ground_truth_round_trips_through_grouping() {
    let gt = load_coco(&data("coco/test_coco.json")).unwrap();
    let people: Vec<Annotation> = gt
        .people
        .iter()
        .map(|p| Annotation { image_id: p.image_id, keypoints: p.keypoints.clone(), area: p.area })
        .collect();
    // 14 annotations: 2 have no visible keypoint, the other 12 have 12 to 17.
    check("COCO", &gt.images, &people, &GroupingParams::coco(), &COCO17_SIGMAS, 12);
}

#[test]
fn crowdpose_ground_truth_round_trips_through_grouping() {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("crowdpose/test_crowdpose.json")).unwrap()).unwrap();
    let images: Vec<(u64, String, usize, usize)> = json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_u64().unwrap(),
                i["file_name"].as_str().unwrap().to_string(),
                i["width"].as_u64().unwrap() as usize,
                i["height"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let people: Vec<Annotation> = json["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let kp: Vec<f32> = a["keypoints"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            assert_eq!(kp.len(), 14 * 3);
            let bbox: Vec<f32> = a["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            Annotation {
                image_id: a["image_id"].as_u64().unwrap(),
                keypoints: kp.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
                // CrowdPose annotations carry no area; its evaluation (crowdposetools, and
                // xtcocotools with use_area=False) uses bbox w * h * 0.53.
                area: bbox[2] * bbox[3] * 0.53,
            }
        })
        .collect();
    // 5 annotations: one without keypoints, the others with 7, 12, 14 and 14 visible.
    check("CrowdPose", &images, &people, &GroupingParams::crowdpose(), &CROWDPOSE14_SIGMAS, 4);
}
