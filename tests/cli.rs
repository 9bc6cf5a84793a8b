//! The `edgesight` binary end to end: the bundled clip through the headless pipeline, still
//! images with COCO results, and every bad-input case ending in one clear message, a non-zero
//! exit and no panic.

mod common;

use common::{assert_clean_failure, clip, edgesight, repo, s, scratch, BIN};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Frames ffprobe counts by decoding the whole stream.
fn ffprobe_frames(p: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(p)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe failed on {}", p.display());
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a frame count")
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn video_on_bundled_clip_processes_every_frame() {
    let out = scratch("video_e2e");
    let r = edgesight(&["video", s(&clip()), "--out", s(&out), "--masks"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let expected = ffprobe_frames(&clip());
    let jsonl = std::fs::read_to_string(out.join("frames.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len() as u64, expected);
    assert_eq!(ffprobe_frames(&out.join("annotated.mp4")), expected);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["index"], i as u64);
        assert!((l["timestamp_s"].as_f64().unwrap() - i as f64 / 10.0).abs() < 1e-6);
        let cov = l["mask"]["coverage"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&cov));
        for p in l["people"].as_array().unwrap() {
            assert_eq!(p["keypoints"].as_array().unwrap().len(), 17);
            assert_eq!(p["box"].as_array().unwrap().len(), 4);
        }
    }
    // The clip shows several pedestrians: most frames must have people.
    let with_people = lines.iter().filter(|l| !l["people"].as_array().unwrap().is_empty()).count();
    assert!(with_people * 2 > lines.len(), "people found in only {with_people} of {} frames", lines.len());
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["frames"], expected);
    assert_eq!(report["input_ended_early"], false);
    assert!(report["fps"].as_f64().unwrap() > 0.0);
    for stage in ["decode", "preprocess", "inference", "decode_output", "render", "encode"] {
        let st = &report["stages"][stage];
        assert_eq!(st["count"], expected, "stage {stage}");
        assert!(st["p50_ms"].as_f64().unwrap() <= st["p95_ms"].as_f64().unwrap());
        assert!(st["p95_ms"].as_f64().unwrap() <= st["max_ms"].as_f64().unwrap());
    }
    assert_eq!(report["models"].as_array().unwrap().len(), 2);
    assert_eq!(report["keypoint_names"].as_array().unwrap().len(), 17);
    let masks = std::fs::read_dir(out.join("masks")).unwrap().count() as u64;
    assert_eq!(masks, expected);
    let m = image::open(out.join("masks/000000.png")).unwrap();
    assert_eq!((m.width(), m.height()), (768, 576));
}

#[test]
fn pose_only_and_seg_only_runs() {
    let out = scratch("video_pose_only");
    let r = edgesight(&["video", s(&clip()), "--out", s(&out), "--seg", "none", "--pose-size", "256"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let first: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(out.join("frames.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    assert!(first.get("mask").is_none());
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["models"][0]["input_shape"], serde_json::json!([1, 192, 256, 3]));

    let out = scratch("video_seg_only");
    let r = edgesight(&["video", s(&clip()), "--out", s(&out), "--pose", "none", "--seg", "meet"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let first: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(out.join("frames.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    assert!(first["people"].as_array().unwrap().is_empty());
    assert!(first["mask"]["coverage"].is_number());

    assert_clean_failure(&edgesight(&["video", s(&clip()), "--out", s(&out), "--pose", "none", "--seg", "none"]), &["nothing to do"]);
}

#[test]
fn images_give_coco_results() {
    let out = scratch("images");
    let results = out.join("results.json");
    let data = repo("tests/data/coco");
    let files: Vec<PathBuf> = ["000000000785.jpg", "000000040083.jpg"].iter().map(|f| data.join(f)).collect();
    let mut args = vec!["image", s(&files[0]), s(&files[1]), "--out", s(&out), "--coco-results", s(&results)];
    let r = edgesight(&args);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let res = read_json(&results);
    let res = res.as_array().unwrap();
    assert!(!res.is_empty());
    for d in res {
        assert!([785, 40083].contains(&d["image_id"].as_u64().unwrap()));
        assert_eq!(d["category_id"], 1);
        assert_eq!(d["keypoints"].as_array().unwrap().len(), 51);
        assert!(d["score"].as_f64().unwrap() > 0.0);
    }
    assert!(out.join("000000000785.annotated.png").is_file());
    assert_eq!(std::fs::read_to_string(out.join("images.jsonl")).unwrap().lines().count(), 2);

    // Ids from an annotations file, for a non-numeric name.
    let renamed = out.join("person.jpg");
    std::fs::copy(&files[0], &renamed).unwrap();
    let ann = out.join("ann.json");
    std::fs::write(&ann, r#"{"images":[{"id":42,"file_name":"person.jpg"}]}"#).unwrap();
    args = vec!["image", s(&renamed), "--out", s(&out), "--coco-results", s(&results), "--coco-annotations", s(&ann)];
    let r = edgesight(&args);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(read_json(&results).as_array().unwrap().iter().all(|d| d["image_id"] == 42));
    // Without it, the id is unknown: a clear error.
    assert_clean_failure(&edgesight(&["image", s(&renamed), "--out", s(&out), "--coco-results", s(&results)]), &["person.jpg", "--coco-annotations"]);
}

#[test]
fn models_lists_the_catalogue() {
    let r = edgesight(&["models"]);
    assert!(r.status.success());
    let text = String::from_utf8_lossy(&r.stdout);
    for m in ["movenet-multipose", "selfie", "meet", "Apache-2.0", "trained"] {
        assert!(text.contains(m), "{text}");
    }
}

#[test]
fn missing_input_video() {
    let out = scratch("bad_missing");
    assert_clean_failure(&edgesight(&["video", "/nonexistent/clip.mp4", "--out", s(&out)]), &["/nonexistent/clip.mp4", "does not exist"]);
}

#[test]
fn input_that_is_not_a_video() {
    let out = scratch("bad_notvideo");
    let f = out.join("notes.mp4");
    std::fs::write(&f, "this is not a video\n").unwrap();
    assert_clean_failure(&edgesight(&["video", s(&f), "--out", s(&out.join("o"))]), &["notes.mp4", "not a video"]);
    let empty = out.join("empty.mp4");
    std::fs::write(&empty, "").unwrap();
    assert_clean_failure(&edgesight(&["video", s(&empty), "--out", s(&out.join("o"))]), &["empty.mp4", "empty"]);
}

#[test]
fn truncated_video_keeps_frames_decoded_before_the_fault() {
    let out = scratch("bad_truncated");
    let bytes = std::fs::read(clip()).unwrap();
    let f = out.join("truncated.mp4");
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let o = out.join("o");
    assert_clean_failure(&edgesight(&["video", s(&f), "--out", s(&o)]), &["truncated.mp4", "ended early"]);
    let lines = std::fs::read_to_string(o.join("frames.jsonl")).unwrap().lines().count() as u64;
    assert!(lines > 0 && lines < 40, "{lines} frames kept");
    assert_eq!(ffprobe_frames(&o.join("annotated.mp4")), lines);
    let report = read_json(&o.join("report.json"));
    assert_eq!(report["input_ended_early"], true);
    assert_eq!(report["frames"], lines);
}

#[test]
fn video_with_zero_decodable_frames() {
    let out = scratch("bad_zero");
    let bytes = std::fs::read(clip()).unwrap();
    // The header (moov, first with +faststart) survives, no frame does.
    let f = out.join("headeronly.mp4");
    std::fs::write(&f, &bytes[..4000]).unwrap();
    assert_clean_failure(&edgesight(&["video", s(&f), "--out", s(&out.join("o"))]), &["headeronly.mp4", "no frames"]);
}

#[test]
fn wrong_or_corrupt_models() {
    let out = scratch("bad_models");
    let o = out.join("o");
    let models = repo("models");
    let selfie = models.join("selfie.onnx");
    let movenet = models.join("movenet-multipose.onnx");
    // Wrong dtype: a float32 segmentation model where MoveNet's int32 input is expected.
    assert_clean_failure(&edgesight(&["video", s(&clip()), "--out", s(&o), "--pose-model", s(&selfie)]), &["selfie.onnx", "float32", "int32"]);
    assert_clean_failure(&edgesight(&["video", s(&clip()), "--out", s(&o), "--seg-model", s(&movenet)]), &["movenet-multipose.onnx", "int32"]);
    // Wrong shape: selfie's 256x256 input where meet's 144x256 is expected.
    assert_clean_failure(
        &edgesight(&["video", s(&clip()), "--out", s(&o), "--seg", "meet", "--seg-model", s(&selfie)]),
        &["selfie.onnx", "shape"],
    );
    // Corrupt: a truncated ONNX file, and random bytes.
    let bytes = std::fs::read(&selfie).unwrap();
    let truncated = out.join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    assert_clean_failure(&edgesight(&["video", s(&clip()), "--out", s(&o), "--seg-model", s(&truncated)]), &["truncated.onnx", "not a valid ONNX model"]);
    let junk = out.join("junk.onnx");
    std::fs::write(&junk, (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>()).unwrap();
    assert_clean_failure(&edgesight(&["video", s(&clip()), "--out", s(&o), "--seg-model", s(&junk)]), &["junk.onnx"]);
    // Missing file, unknown name, wrong task.
    assert_clean_failure(&edgesight(&["video", s(&clip()), "--out", s(&o), "--pose-model", "/nonexistent/m.onnx"]), &["/nonexistent/m.onnx", "does not exist"]);
    assert_clean_failure(&edgesight(&["video", s(&clip()), "--out", s(&o), "--pose", "posenet"]), &["unknown model 'posenet'"]);
    assert_clean_failure(&edgesight(&["video", s(&clip()), "--out", s(&o), "--pose", "selfie"]), &["not a pose model"]);
    // Nothing was processed, so no outputs were started.
    assert!(!o.join("frames.jsonl").exists());
}

#[test]
fn unwritable_output_folder() {
    let out = scratch("bad_out");
    let file = out.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let target = file.join("sub");
    assert_clean_failure(&edgesight(&["video", s(&clip()), "--out", s(&target)]), &["a-file/sub", "cannot create output folder"]);
    assert_clean_failure(
        &edgesight(&["image", s(&repo("tests/data/coco/000000000785.jpg")), "--out", s(&target)]),
        &["a-file/sub"],
    );
}

#[test]
fn bad_images() {
    let out = scratch("bad_images");
    let junk = out.join("junk.jpg");
    std::fs::write(&junk, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    assert_clean_failure(&edgesight(&["image", s(&junk), "--out", s(&out.join("o"))]), &["junk.jpg"]);
    assert_clean_failure(&edgesight(&["image", "/nonexistent/a.jpg", "--out", s(&out.join("o"))]), &["/nonexistent/a.jpg", "does not exist"]);
}

#[test]
fn convert_official_checkpoint_and_run_it() {
    let out = scratch("convert");
    let ckpt = repo("tests/data/fixtures/litepose-XS.pth");
    let onnx = out.join("litepose-xs.onnx");
    let r = edgesight(&["convert", s(&ckpt), "--arch", "litepose-xs", "--out", s(&onnx)]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("17 joints"));
    // The converted file and the checkpoint itself both run as the litepose-xs description
    // (a user's file: no warning about the bundled fixture weights), with and without flip test.
    let img = repo("tests/data/coco/000000000785.jpg");
    let o = out.join("o");
    for (model, flip) in [(&onnx, "--flip-test"), (&ckpt, "")] {
        let mut args = vec!["image", s(&img), "--out", s(&o), "--pose", "litepose-xs", "--pose-model", s(model), "--seg", "none"];
        if flip == "--flip-test" {
            args.push(flip);
        }
        let r = edgesight(&args);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert!(!String::from_utf8_lossy(&r.stderr).contains("untrained weights"));
    }
    // The bundled fixture weights say they are untrained.
    let r = edgesight(&["image", s(&img), "--out", s(&out.join("o")), "--pose", "litepose-xs", "--seg", "none"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("warning: model 'litepose-xs' carries untrained weights"));
    assert_clean_failure(&edgesight(&["image", s(&img), "--out", s(&out.join("o")), "--flip-test"]), &["--flip-test", "movenet-multipose"]);
}

#[test]
fn convert_refuses_wrong_architecture_and_bad_files() {
    let out = scratch("convert_bad");
    let ckpt = repo("tests/data/fixtures/litepose-XS.pth");
    let o = out.join("x.onnx");
    // XS weights into the S architecture: mis-shaped keys, listed.
    assert_clean_failure(
        &edgesight(&["convert", s(&ckpt), "--arch", "litepose-s", "--out", s(&o)]),
        &["litepose-XS.pth", "does not match litepose-s", "mis-shaped keys", "checkpoint has"],
    );
    assert_clean_failure(&edgesight(&["convert", s(&ckpt), "--arch", "resnet", "--out", s(&o)]), &["unknown architecture 'resnet'"]);
    assert_clean_failure(&edgesight(&["convert", "/nonexistent/m.pth", "--arch", "litepose-xs", "--out", s(&o)]), &["/nonexistent/m.pth", "does not exist"]);
    let bytes = std::fs::read(&ckpt).unwrap();
    let truncated = out.join("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_failure(&edgesight(&["convert", s(&truncated), "--arch", "litepose-xs", "--out", s(&o)]), &["truncated.pth"]);
    // A checkpoint where an ONNX model is expected.
    assert_clean_failure(
        &edgesight(&["video", s(&clip()), "--out", s(&out.join("v")), "--pose-model", s(&ckpt)]),
        &["litepose-XS.pth", "PyTorch checkpoint", "movenet-multipose"],
    );
    assert!(!o.exists());
}

#[test]
fn bevanet_checkpoint_segments_with_class_fractions() {
    let Some([pth]) = common::shared_or_skip("bevanet_checkpoint_segments_with_class_fractions", ["reference/fixtures/BEVANet-S.pth"])
    else {
        return;
    };
    let out = scratch("bevanet");
    let img = repo("tests/data/coco/000000000785.jpg");
    let r = edgesight(&["image", s(&img), "--out", s(&out), "--pose", "none", "--seg", "bevanet-s", "--seg-model", s(&pth), "--seg-size", "256"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(out.join("images.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    let classes = line["classes"].as_object().unwrap();
    assert_eq!(classes.len(), 19);
    let total: f64 = classes.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-3, "class fractions sum to {total}");
    assert!(classes.contains_key("road") && classes.contains_key("person"));
}

#[test]
fn threads_flag_runs_multithreaded_and_rejects_zero() {
    let out = scratch("threads");
    let img = repo("tests/data/coco/000000000785.jpg");
    let r = edgesight(&["--threads", "2", "image", s(&img), "--out", s(&out), "--seg", "none"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = edgesight(&["video", s(&clip()), "--out", s(&out.join("v")), "--threads", "0"]);
    // A usage error (clap's exit status 2), naming what is accepted.
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("expected auto or a number of threads from 1 to 256"));
}

/// `--concurrent-models on` runs pose and segmentation at the same time; the results are
/// those of running them one after the other.
#[test]
fn concurrent_models_give_the_sequential_results() {
    let out = scratch("threads-auto");
    let run = |threads: &str, dir: &str| {
        let d = out.join(dir);
        let r = edgesight(&["--concurrent-models", threads, "video", s(&clip()), "--out", s(&d), "--quiet", "--max-frames", "6"]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("report.json")).unwrap()).unwrap();
        (report, std::fs::read_to_string(d.join("frames.jsonl")).unwrap())
    };
    let (auto, auto_lines) = run("on", "on");
    let (one, one_lines) = run("off", "off");
    assert_eq!((auto["concurrent_models"].as_bool(), one["concurrent_models"].as_bool()), (Some(true), Some(false)));
    assert_eq!(auto["frames"], 6);
    assert!(auto_lines.lines().count() == 6 && auto_lines.contains("\"mask\""), "{auto_lines}");
    assert_eq!(auto_lines, one_lines, "concurrent and sequential results differ");
}

/// `--backend gpu` without any adapter is one clear error; `auto` falls back to the CPU and says so.
/// (WGPU_BACKEND=metal on Linux leaves wgpu with no backend to search.)
#[test]
fn gpu_backend_without_adapter() {
    let out = scratch("no_adapter");
    let img = repo("tests/data/coco/000000000785.jpg");
    let run = |backend: &str| {
        Command::new(BIN)
            .env("WGPU_BACKEND", "metal")
            .args(["--backend", backend, "image", s(&img), "--out", s(&out), "--seg", "none"])
            .output()
            .unwrap()
    };
    if cfg!(target_os = "macos") {
        return;
    }
    assert_clean_failure(&run("gpu"), &["no GPU adapter found", "--backend cpu"]);
    let r = run("auto");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(stderr.contains("--backend auto: no GPU adapter found") && stderr.contains("running on the CPU"), "{stderr}");
    // An unknown backend is a usage error (clap, exit 2).
    let r = edgesight(&["--backend", "tpu", "models"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("possible values: cpu, gpu, auto"));
}

/// `bench --input HxW` needs no readable clip (speed does not depend on pixels): an unreadable
/// one is replaced by a synthetic frame with a note; without --input it is a clean failure.
#[test]
fn bench_with_input_size_survives_an_unreadable_clip() {
    let dir = scratch("bench_unreadable_clip");
    let bad = dir.join("not-a-video.mp4");
    std::fs::write(&bad, b"not a video").unwrap();
    let out_dir = dir.join("out");
    let out = edgesight(&["bench", "--clip", s(&bad), "--model", "selfie", "--input", "256x256", "--runs", "2", "--out", s(&out_dir)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("measuring on a synthetic 256x256 frame"), "stderr: {stderr}");
    let rows = read_json(&out_dir.join("bench.json"));
    assert_eq!(rows[0]["model"], "selfie");
    assert!(rows[0]["inference_p50_ms"].as_f64().unwrap() > 0.0);

    let out = edgesight(&["bench", "--clip", s(&bad), "--model", "selfie", "--runs", "2", "--out", s(&out_dir)]);
    assert_clean_failure(&out, &["not-a-video.mp4"]);
}
