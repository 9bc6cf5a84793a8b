//! Messages that tell the user what to do: a model built from an official checkpoint asked for
//! without one, picture files that end too early, tracking options out of range.

mod common;

use common::{assert_clean_failure, edgesight, repo, s, scratch, BIN};
use std::path::PathBuf;
use std::process::{Command, Output};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn coco_image() -> PathBuf {
    repo("tests/data/coco/000000000785.jpg")
}

/// BEVANet has no bundled file: the message says which flag and which checkpoint to give.
#[test]
fn bevanet_without_a_checkpoint_says_what_to_pass() {
    let out = scratch("messages-bevanet");
    let r = edgesight(&["image", s(&coco_image()), "--out", s(&out), "--pose", "none", "--seg", "bevanet-s"]);
    assert_clean_failure(&r, &["bevanet-s", "--seg-model FILE", "official BEVANet checkpoint"]);
    assert!(!stderr(&r).contains("untrained weights"), "{}", stderr(&r));
    // bench has no --seg-model: it points at --random-weights instead.
    let r = edgesight(&["bench", "--model", "bevanet-s", "--input", "128x128", "--runs", "1", "--out", s(&out.join("bench"))]);
    assert_clean_failure(&r, &["bevanet-s", "--random-weights", "official BEVANet checkpoint"]);
}

/// A LitePose model whose fixture file is not in the models folder gets the same kind of message.
#[test]
fn litepose_without_a_checkpoint_says_what_to_pass() {
    let out = scratch("messages-litepose");
    let models = out.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let r = Command::new(BIN)
        .env("EDGESIGHT_MODELS", &models)
        .args(["image", s(&coco_image()), "--out", s(&out.join("o")), "--pose", "litepose-xs", "--seg", "none"])
        .output()
        .expect("binary runs");
    assert_clean_failure(&r, &["litepose-xs", "--pose-model FILE", "official LitePose checkpoint"]);
}

/// A JPEG cut in half still decodes (the decoder fills in the rest), with a warning naming it.
#[test]
fn truncated_jpeg_is_reported() {
    let out = scratch("messages-jpeg");
    let bytes = std::fs::read(coco_image()).unwrap();
    let half = out.join("half.jpg");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let r = edgesight(&["image", s(&half), "--out", s(&out.join("o")), "--seg", "none"]);
    let err = stderr(&r);
    assert!(!err.contains("panicked"), "{err}");
    let warning = err.lines().find(|l| l.starts_with(&format!("warning: {}:", half.display())));
    assert!(warning.is_some_and(|w| w.contains("truncated")), "no truncation warning: {err}");
    // The whole file gives no such warning.
    let r = edgesight(&["image", s(&coco_image()), "--out", s(&out.join("o2")), "--seg", "none"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(!stderr(&r).contains("truncated"), "{}", stderr(&r));
}

/// A PNG cut in half fails, and the message names the file and says it is truncated.
#[test]
fn truncated_png_fails_clearly() {
    let out = scratch("messages-png");
    let img = image::open(coco_image()).unwrap().into_rgb8();
    let whole = out.join("whole.png");
    img.save(&whole).unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    let half = out.join("half.png");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let r = edgesight(&["image", s(&half), "--out", s(&out.join("o")), "--seg", "none"]);
    assert_clean_failure(&r, &[s(&half), "truncated"]);
}

/// Tracking options out of range, and a CSV without a pose model, fail before any work with a
/// message naming the flag.
#[test]
fn bad_tracking_options_are_named() {
    let out = scratch("messages-track");
    let clip = repo("assets/vtest-4s.mp4");
    for (args, needle) in [
        (vec!["--track-lost-time=-1"], "--track-lost-time"),
        (vec!["--smooth-beta", "NaN"], "--smooth-beta"),
        (vec!["--smooth-min-cutoff", "0"], "--smooth-min-cutoff"),
        (vec!["--smooth-mask-calm", "0.8", "--smooth-mask-follow", "0.2"], "--smooth-mask-calm"),
        (vec!["--pose", "none", "--csv", "people.csv"], "--csv"),
    ] {
        let mut all = vec!["video", s(&clip), "--out", s(&out), "--quiet"];
        all.extend(args);
        assert_clean_failure(&edgesight(&all), &[needle]);
    }
    // Refused before anything was written.
    assert!(!out.join("annotated.mp4").exists() && !out.join("frames.jsonl").exists(), "outputs were created");
    // clap rejects an unknown mode with its list of values (usage error, status 2).
    let r = edgesight(&["video", s(&clip), "--out", s(&out), "--track", "kalman"]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("oks-iou"), "{}", stderr(&r));
}

/// Robust Video Matting is never bundled (GPL-3.0): asked for without a file, the message says
/// so and which flag and file to pass; pose with its own flags checked.
#[test]
fn rvm_without_a_file_says_it_is_user_supplied() {
    let out = scratch("messages-rvm");
    let r = edgesight(&["image", s(&coco_image()), "--out", s(&out), "--pose", "none", "--seg", "rvm"]);
    assert_clean_failure(&r, &["'rvm' is not bundled", "GPL-3.0", "--seg-model FILE", "rvm-ratio1.onnx"]);
    // A detector is no pose model, a pipeline no segmentation model.
    let r = edgesight(&["image", s(&coco_image()), "--out", s(&out), "--pose", "nanodet"]);
    assert_clean_failure(&r, &["'nanodet' is a detection model, not a pose model"]);
    let r = edgesight(&["image", s(&coco_image()), "--out", s(&out), "--seg", "topdown-thunder"]);
    assert_clean_failure(&r, &["'topdown-thunder' is a pose pipeline, not a segmentation model"]);
    let r = edgesight(&["image", s(&coco_image()), "--out", s(&out), "--pose", "topdown-thunder", "--flip-test"]);
    assert_clean_failure(&r, &["--flip-test", "topdown-thunder"]);
}
