//! Model inputs made ahead of the models (the stage `edgesight video` runs on files) give the
//! same analysis, bit for bit, as inputs made by the models' thread; an input made for another
//! frame is not used.

mod common;

use common::clip;
use edgesight::analyzer::{AnalysisTimes, Analyzer, ModelChoice};
use edgesight::decode::PoseThresholds;
use edgesight::frame::Frame;
use edgesight::records::FrameRecord;
use edgesight::video_source::{probe, VideoReader};
use edgesight::preprocess::Prepared;
use edgesight::tensor::TensorData;

fn clip_frames(n: usize) -> Vec<Frame> {
    let mut reader = VideoReader::open(&probe(&clip()).unwrap()).unwrap();
    let frames: Vec<Frame> = (0..n).map_while(|_| reader.next_frame().unwrap()).collect();
    assert_eq!(frames.len(), n, "the clip has fewer than {n} frames");
    frames
}

fn default_job() -> Analyzer {
    let choice = ModelChoice { pose: Some("movenet-multipose".into()), seg: Some("selfie".into()), ..Default::default() };
    Analyzer::new(&choice, PoseThresholds::default()).unwrap()
}

fn record(frame: &Frame, a: &edgesight::analyzer::Analysis) -> String {
    let mask: Vec<u8> = a.mask.as_ref().map(|m| m.to_frame_u8(frame.width, frame.height)).unwrap_or_default();
    format!("{} {:?}", serde_json::to_string(&FrameRecord::new(frame.index, frame.timestamp_s, a)).unwrap(), mask)
}

#[test]
fn inputs_made_ahead_give_the_same_analysis() {
    let frames = clip_frames(3);
    let mut here = default_job();
    let mut ahead = default_job();
    let plan = ahead.input_plan();
    assert_eq!(plan.models(), ["movenet-multipose", "selfie"]);
    for frame in &frames {
        let mut t_here = AnalysisTimes::default();
        let mut t_ahead = AnalysisTimes::default();
        let expected = here.analyze(frame, &mut t_here).unwrap();
        let got = ahead.analyze_prepared(frame, plan.make(frame), &mut t_ahead).unwrap();
        assert!(!expected.people.is_empty(), "frame {}: nobody found, the comparison says little", frame.index);
        assert_eq!(record(frame, &got), record(frame, &expected), "frame {}", frame.index);
        // The inputs made ahead are the ones used: blanked, they change the analysis.
        let got = ahead.analyze_prepared(frame, blank(plan.make(frame)), &mut t_ahead).unwrap();
        assert_ne!(record(frame, &got), record(frame, &expected), "frame {}: the inputs made ahead were not used", frame.index);
    }
}

/// The inputs with every value zero (a black picture, whatever the model's normalisation).
fn blank(mut inputs: Vec<Prepared>) -> Vec<Prepared> {
    for p in &mut inputs {
        match &mut p.input.data {
            TensorData::F32(v) => v.fill(0.0),
            TensorData::I32(v) => v.fill(0),
        }
    }
    inputs
}

#[test]
fn an_input_made_for_another_frame_is_not_used() {
    let frames = clip_frames(2);
    let mut here = default_job();
    let mut ahead = default_job();
    let plan = ahead.input_plan();
    let mut t = AnalysisTimes::default();
    let expected = here.analyze(&frames[1], &mut t).unwrap();
    let mut t = AnalysisTimes::default();
    // Blanked: had they been used, nobody would be found.
    let got = ahead.analyze_prepared(&frames[1], blank(plan.make(&frames[0])), &mut t).unwrap();
    assert_eq!(record(&frames[1], &got), record(&frames[1], &expected), "the inputs of another frame were used");
}
