//! Accuracy of the default models on real COCO ground truth (tests/data/coco: 4 val2017 images,
//! 14 annotated people). Pose: best OKS per annotated person. Segmentation: mean person
//! probability inside the annotated person polygons against outside (selfie; and Robust Video
//! Matting from ../shared/models, which may not be bundled).

mod common;

use edgesight::analyzer::{AnalysisTimes, Analyzer, ModelChoice};
use edgesight::decode::PoseThresholds;
use edgesight::frame::Frame;
use edgesight::metrics::{best_oks, in_polygon, load_coco, GroundTruthSet};
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    common::data("coco")
}

fn ground_truth() -> GroundTruthSet {
    load_coco(&data_dir().join("test_coco.json")).expect("test_coco.json loads")
}

/// A person counts as missed when no detection reaches this OKS: at 256 and 320 px one COCO
/// person gets 0.000 (no detection at all), while at 384 px its detection scores 0.459.
const MISSED_BELOW_OKS: f32 = 0.25;

/// (mean best OKS, people with 10+ visible joints that were missed, per-person lines)
fn evaluate_pose(size: Option<usize>) -> (f32, Vec<String>, Vec<String>) {
    let choice = ModelChoice { pose: Some("movenet-multipose".into()), pose_size: size, ..Default::default() };
    let mut analyzer = Analyzer::new(&choice, PoseThresholds::default()).unwrap();
    let gt = ground_truth();
    let mut scores = Vec::new();
    let mut missed = Vec::new();
    let mut lines = Vec::new();
    for (id, file, _, _) in &gt.images {
        let frame = Frame::load_image(&data_dir().join(file)).unwrap();
        let people = analyzer.analyze(&frame, &mut AnalysisTimes::default()).unwrap().people;
        for (k, person) in gt.people.iter().filter(|p| p.image_id == *id && p.num_visible > 0).enumerate() {
            let best = best_oks(person, &people);
            lines.push(format!("  image {id} person {k}: {} visible joints, best OKS {best:.3}", person.num_visible));
            if person.num_visible >= 10 && best < MISSED_BELOW_OKS {
                missed.push(format!("image {id} person {k} ({} visible joints, best OKS {best:.3})", person.num_visible));
            }
            scores.push(best);
        }
    }
    (scores.iter().sum::<f32>() / scores.len() as f32, missed, lines)
}

#[test]
fn pose_on_coco_ground_truth() {
    let (mean, missed, lines) = evaluate_pose(None);
    println!("MoveNet MultiPose (default size) on {} annotated COCO people:", lines.len());
    for l in &lines {
        println!("{l}");
    }
    println!("mean best OKS {mean:.3}; missed (10+ visible joints, best OKS < {MISSED_BELOW_OKS}): {}", missed.len());
    // 14 annotations, 2 of them with no visible joint (nothing to score).
    assert_eq!(lines.len(), 12, "expected the 12 annotated people with visible joints");
    assert!(mean >= 0.6, "mean best OKS {mean:.3} < 0.6");
    assert!(missed.is_empty(), "missed people: {missed:?}");
}

/// Not a gate: prints the size trade-off that chose the default (run with --ignored).
#[test]
#[ignore]
fn pose_accuracy_by_input_size() {
    for size in [256, 320, 384, 448, 512] {
        let (_, _, lines) = evaluate_pose(Some(size));
        println!("{}", lines.join("\n"));
        let (mean, missed, _) = evaluate_pose(Some(size));
        println!("longest side {size}: mean best OKS {mean:.3}, missed {}", missed.len());
    }
}

/// Mean person probability inside the annotated person polygons and outside them, over the
/// COCO images (each image a sequence of its own).
fn mask_inside_outside(choice: &ModelChoice, label: &str) -> (f64, f64) {
    let mut analyzer = Analyzer::new(choice, PoseThresholds::default()).unwrap();
    let gt = ground_truth();
    let (mut in_sum, mut in_n, mut out_sum, mut out_n) = (0f64, 0usize, 0f64, 0usize);
    for (id, file, _, _) in &gt.images {
        analyzer.new_sequence();
        let frame = Frame::load_image(&data_dir().join(file)).unwrap();
        let mask = analyzer.analyze(&frame, &mut AnalysisTimes::default()).unwrap().mask.unwrap();
        let polys: Vec<&Vec<f32>> =
            gt.people.iter().filter(|p| p.image_id == *id).flat_map(|p| p.polygons.iter()).collect();
        let (mut i_s, mut i_n, mut o_s, mut o_n) = (0f64, 0usize, 0f64, 0usize);
        for y in 0..frame.height {
            for x in 0..frame.width {
                let p = mask.sample(x as f32, y as f32, frame.width, frame.height) as f64;
                if polys.iter().any(|poly| in_polygon(poly, x as f32 + 0.5, y as f32 + 0.5)) {
                    i_s += p;
                    i_n += 1;
                } else {
                    o_s += p;
                    o_n += 1;
                }
            }
        }
        println!("{label}, image {id}: mean person probability inside {:.3}, outside {:.3}", i_s / i_n as f64, o_s / o_n as f64);
        (in_sum, in_n, out_sum, out_n) = (in_sum + i_s, in_n + i_n, out_sum + o_s, out_n + o_n);
    }
    (in_sum / in_n as f64, out_sum / out_n as f64)
}

#[test]
fn segmentation_on_coco_person_polygons() {
    let (inside, outside) = mask_inside_outside(&ModelChoice { seg: Some("selfie".into()), ..Default::default() }, "selfie");
    println!("selfie on COCO person polygons: inside {inside:.3}, outside {outside:.3}, margin {:.3}", inside - outside);
    assert!(inside - outside >= MASK_MARGIN, "margin {:.3} < {MASK_MARGIN}", inside - outside);
}

/// Robust Video Matting (GPL-3.0, never bundled: read from ../shared/models as a user would pass
/// it): its masks beat selfie's on the COCO polygons, and its recurrent state, carried over
/// the same frame repeated, settles instead of drifting; a new sequence starts from zeros again.
#[test]
fn rvm_masks_beat_selfie_and_its_state_does_not_drift() {
    let Some([rvm]) = common::shared_or_skip("rvm", ["models/rvm-ratio1.onnx"]) else { return };
    let choice = ModelChoice { seg: Some("rvm".into()), seg_file: Some(rvm.clone()), ..Default::default() };
    let (inside, outside) = mask_inside_outside(&choice, "rvm");
    let (s_in, s_out) = mask_inside_outside(&ModelChoice { seg: Some("selfie".into()), ..Default::default() }, "selfie");
    println!("COCO person polygons, margin inside - outside: rvm {:.3} ({inside:.3} - {outside:.3}), selfie {:.3}", inside - outside, s_in - s_out);
    assert!(inside - outside >= s_in - s_out, "rvm {:.3} below selfie {:.3}", inside - outside, s_in - s_out);

    let mut a = Analyzer::new(&choice, PoseThresholds::default()).unwrap();
    let mut frame = Frame::load_image(&data_dir().join("000000000785.jpg")).unwrap();
    let mut masks = Vec::new();
    for i in 0..8 {
        frame.index = i;
        masks.push(a.analyze(&frame, &mut AnalysisTimes::default()).unwrap().mask.unwrap().probs);
    }
    let diff = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p - q).abs() as f64).sum::<f64>() / x.len() as f64;
    let steps: Vec<f64> = masks.windows(2).map(|w| diff(&w[0], &w[1])).collect();
    let settled = diff(&masks[3], &masks[7]);
    println!("rvm, one frame 8 times: mean |change| per step {:?}, frames 4 to 8: {settled:.5}", steps.iter().map(|d| format!("{d:.5}")).collect::<Vec<_>>());
    // The state is carried (a second look at the frame changes the mask) and settles.
    assert!(steps[0] > 0.0, "the state is not carried: the mask never changes");
    assert!(steps[3..].iter().all(|&d| d < STATE_STEP), "the state keeps changing the mask: {steps:?}");
    assert!(settled < STATE_DRIFT, "the mask drifts: {settled}");
    // A new sequence starts from a zero state: the first frame's mask again.
    a.new_sequence();
    frame.index = 8;
    let again = a.analyze(&frame, &mut AnalysisTimes::default()).unwrap().mask.unwrap().probs;
    assert_eq!(again, masks[0]);
    // So does a frame that does not follow the last one (a seek, a looped file).
    for i in [9, 10, 3] {
        frame.index = i;
        let m = a.analyze(&frame, &mut AnalysisTimes::default()).unwrap().mask.unwrap().probs;
        if i == 3 {
            assert_eq!(m, masks[0]);
        }
    }
}

/// Bounds of the recurrent-state checks: the mean change of the probability per repeated frame
/// after the third, and between the fourth and the eighth.
const STATE_STEP: f64 = 0.005;
const STATE_DRIFT: f64 = 0.01;

/// Measured 0.671 (inside 0.731, outside 0.059) with selfie on these images; 0.5 fails a mask
/// that is misaligned, inverted or blurred into the background while leaving room for numerics.
const MASK_MARGIN: f64 = 0.5;
