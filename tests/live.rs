//! `edgesight live` end to end in a real window under Xvfb: the bundled clip played as a camera
//! for N frames, then checks on the window's screenshot (frame size, the same pixels the headless
//! renderer draws for the same frame and results), the HUD figures (--stats) and the recording.
//!
//! Needs Xvfb (Debian: xvfb) and an OpenGL driver (Mesa llvmpipe). Without Xvfb the GUI test
//! prints a note and passes, unless EDGESIGHT_REQUIRE_GUI=1 (CI sets it), where it fails.

mod common;

use common::{repo, scratch, BIN};
use edgesight::analyzer::{AnalysisTimes, Analyzer, ModelChoice};
use edgesight::decode::PoseThresholds;
use edgesight::frame::Frame;
use edgesight::render::{self, Overlay, Style};
use edgesight::track::TrackOptions;
use edgesight::video_source::{probe, VideoReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// An X server of our own, killed on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_xvfb() -> Option<Xvfb> {
    if Command::new("Xvfb").arg("-help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        return None;
    }
    // A display number nobody uses. Tests in this process run in parallel: each call starts at
    // its own number, and the display counts as ours only when its lock file names our Xvfb
    // (two tests that spawned on one number both saw the winner's socket, and the loser's test
    // then lost its display when the winner's test ended).
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let first = 100 + std::process::id() % 400 + 7 * CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for n in first..first + 100 {
        if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() || Path::new(&format!("/tmp/.X{n}-lock")).exists() {
            continue;
        }
        let child = Command::new("Xvfb")
            .args([format!(":{n}").as_str(), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut x = Xvfb { child, display: format!(":{n}") };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                let owner = std::fs::read_to_string(format!("/tmp/.X{n}-lock")).ok().and_then(|s| s.trim().parse::<u32>().ok());
                if owner == Some(x.child.id()) {
                    return Some(x);
                }
                break; // another Xvfb holds this number: try the next
            }
            if let Ok(Some(_)) = x.child.try_wait() {
                break; // lost a race for this number: try the next
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    None
}

fn xvfb_or_skip(test: &str) -> Option<Xvfb> {
    let x = start_xvfb();
    if x.is_none() {
        if common::switch("EDGESIGHT_REQUIRE_GUI") {
            panic!("{test}: Xvfb could not be started and EDGESIGHT_REQUIRE_GUI=1");
        }
        eprintln!("note: {test} skipped: Xvfb could not be started (apt-get install xvfb)");
    }
    x
}

fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("binary runs");
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "edgesight live did not finish within {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn live(x: &Xvfb, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("live").args(args).env("DISPLAY", &x.display).env_remove("WAYLAND_DISPLAY");
    // Software OpenGL (Mesa llvmpipe) in the virtual X server.
    cmd.env("LIBGL_ALWAYS_SOFTWARE", "1");
    run_with_timeout(cmd, Duration::from_secs(240))
}

fn decode_frames(path: &Path, upto: u64) -> Vec<Frame> {
    let info = probe(path).unwrap();
    let mut r = VideoReader::open(&info).unwrap();
    let mut v = Vec::new();
    while (v.len() as u64) <= upto {
        match r.next_frame().unwrap() {
            Some(f) => v.push(f),
            None => break,
        }
    }
    v
}

#[test]
fn live_window_on_the_bundled_clip_matches_the_headless_renderer() {
    let Some(x) = xvfb_or_skip("live_window_on_the_bundled_clip_matches_the_headless_renderer") else { return };
    let dir = scratch("live-window");
    let clip = repo("assets/vtest-4s.mp4");
    let (shot, win, stats, rec) = (dir.join("out.png"), dir.join("window.png"), dir.join("stats.json"), dir.join("rec.mp4"));
    let out = live(
        &x,
        &[
            "--source",
            clip.to_str().unwrap(),
            "--frames",
            "30",
            "--screenshot",
            shot.to_str().unwrap(),
            "--window-screenshot",
            win.to_str().unwrap(),
            "--stats",
            stats.to_str().unwrap(),
            "--record",
            rec.to_str().unwrap(),
            // Raw joints, so a fresh analysis of the same frame draws the same skeletons; the
            // people are still tracked and tagged with their ids.
            "--smooth",
            "none",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\nstdout: {stdout}\nstderr: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    eprintln!("{stdout}");

    // The screenshot is the window's image region: the frame's size.
    let img = image::open(&shot).expect("screenshot PNG").into_rgb8();
    assert_eq!((img.width(), img.height()), (768, 576));
    let window = image::open(&win).expect("window PNG").into_rgb8();
    assert!(window.width() > 768 && window.height() >= 576, "window {}x{}", window.width(), window.height());

    // HUD figures.
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    for scope in ["run", "window"] {
        for key in ["display_fps", "camera_fps", "inference_fps"] {
            let v = s[scope][key].as_f64().unwrap();
            assert!(v > 0.0, "{scope}.{key} = {v}: {s:#}");
        }
        for model in ["pose", "seg"] {
            let e2e = &s[scope][model]["e2e"];
            assert!(e2e["p50_ms"].as_f64().unwrap() > 0.0 && e2e["p95_ms"].as_f64().unwrap() >= e2e["p50_ms"].as_f64().unwrap(), "{scope}.{model}: {s:#}");
        }
    }
    assert!(s["run"]["frames_displayed"].as_u64().unwrap() >= 30);
    // The clip plays at its own rate (10 fps): the camera rate is close to it.
    let cam = s["run"]["camera_fps"].as_f64().unwrap();
    assert!((6.0..=14.0).contains(&cam), "camera fps {cam}");

    // The same frame and results through the headless renderer.
    let shown = &s["shown"];
    let d = shown["frame_index"].as_u64().unwrap();
    let p = shown["pose_frame_index"].as_u64().expect("pose result on screen");
    let q = shown["seg_frame_index"].as_u64().expect("segmentation result on screen");
    let frames = decode_frames(&clip, d.max(p).max(q));
    let mut pose = Analyzer::new(&ModelChoice { pose: Some("movenet-multipose".into()), ..Default::default() }, PoseThresholds::default()).unwrap();
    let mut seg = Analyzer::new(&ModelChoice { seg: Some("selfie".into()), ..Default::default() }, PoseThresholds::default()).unwrap();
    // The tracker's decoder keeps people down to its second-stage score and shows those it
    // reports: the people on screen are those of the shown boxes, with the shown ids.
    pose.thresholds.person = TrackOptions::default().decode_threshold(PoseThresholds::default().person);
    let mut pa = pose.analyze(&frames[p as usize], &mut AnalysisTimes::default()).unwrap();
    let sa = seg.analyze(&frames[q as usize], &mut AnalysisTimes::default()).unwrap();
    let ids: Vec<u64> = serde_json::from_value(shown["pose_track_ids"].clone()).expect("track ids in --stats");
    let boxes: Vec<[f32; 4]> = serde_json::from_value(shown["pose_boxes"].clone()).expect("boxes in --stats");
    println!("track ids on screen: {ids:?}");
    assert!(!ids.is_empty() && ids.len() == boxes.len(), "the clip's people are tracked: ids {ids:?}, boxes {boxes:?}");
    pa.people = boxes
        .iter()
        .zip(&ids)
        .map(|(b, &id)| {
            let found = pa.people.iter().find(|q| q.bbox.iter().zip(b).all(|(x, y)| (x - y).abs() < 0.01));
            let mut q = found.unwrap_or_else(|| panic!("no person of box {b:?} in a fresh analysis")).clone();
            q.track_id = Some(id);
            q
        })
        .collect();
    let style = Style::default();
    let mut expected = frames[d as usize].clone();
    render::draw(&mut expected, &Overlay { people: &pa.people, schema: pose.schema(), mask: sa.mask.as_ref(), classes: None }, &style);
    // Skeleton pixels: where the skeletons alone change the raw frame a lot.
    let mut skeleton_only = frames[d as usize].clone();
    render::draw(&mut skeleton_only, &Overlay { people: &pa.people, schema: pose.schema(), mask: None, classes: None }, &style);
    let raw = &frames[d as usize].rgb;
    let got = img.as_raw();
    let (mut skeleton_px, mut skeleton_match, mut far, mut total_diff) = (0usize, 0usize, 0usize, 0u64);
    for i in 0..raw.len() / 3 {
        let px = |b: &[u8]| [b[3 * i] as i32, b[3 * i + 1] as i32, b[3 * i + 2] as i32];
        let dist = |a: [i32; 3], b: [i32; 3]| (0..3).map(|c| (a[c] - b[c]).abs()).max().unwrap();
        let (e, g) = (px(&expected.rgb), px(got));
        let diff = dist(e, g);
        total_diff += diff as u64;
        if diff > 24 {
            far += 1;
        }
        if dist(px(&skeleton_only.rgb), px(raw)) > 60 {
            skeleton_px += 1;
            if diff <= 24 {
                skeleton_match += 1;
            }
        }
    }
    let n = raw.len() / 3;
    let mean = total_diff as f64 / n as f64;
    eprintln!("skeleton pixels {skeleton_px}, matching {skeleton_match}; pixels off by > 24: {far} of {n}; mean difference {mean:.2}");
    assert!(skeleton_px > 500, "too few skeleton pixels to compare: {skeleton_px}");
    assert!(skeleton_match as f64 >= 0.95 * skeleton_px as f64, "skeletons differ: {skeleton_match} of {skeleton_px} match");
    assert!((far as f64) < 0.01 * n as f64, "{far} of {n} pixels differ from the headless render");
    assert!(mean < 3.0, "mean difference {mean}");

    // The recording went through the headless writer.
    let probe = probe(&rec).expect("recording is a video");
    assert_eq!((probe.width, probe.height), (768, 576));
}

#[test]
fn live_without_a_display_says_so() {
    let out = Command::new(BIN)
        .args(["live", "--source", repo("assets/vtest-4s.mp4").to_str().unwrap(), "--frames", "1"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no display"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn no_command_without_a_display_prints_help() {
    let out = Command::new(BIN).env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("live"), "help lists the commands");
    assert!(stderr.contains("no display"), "{stderr}");
}

#[test]
fn live_refuses_bad_arguments_before_opening_a_window() {
    let cases: [(&[&str], &str); 3] = [
        (&["--source", "/nonexistent/clip.mp4", "--frames", "1"], "is not a file"),
        (&["--source", "Cargo.toml", "--frames", "1"], "Cargo.toml"),
        (&["--screenshot", "x.png"], "--frames"),
    ];
    for (args, needle) in cases {
        let out = Command::new(BIN).arg("live").args(args).env("DISPLAY", ":9999").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn live_with_a_camera_that_is_missing_shows_a_message_and_exits_cleanly() {
    // No camera here: the window opens, shows why there is no picture (also printed on stderr),
    // keeps retrying (so a camera plugged in later is picked up) and neither panics nor exits.
    let Some(x) = xvfb_or_skip("live_with_a_camera_that_is_missing_shows_a_message_and_exits_cleanly") else { return };
    if Path::new("/dev/video0").exists() {
        eprintln!("note: a camera is present; the missing-camera test does not apply");
        return;
    }
    let mut child = Command::new(BIN)
        .args(["live", "--camera", "7", "--pose", "none", "--seg", "meet"])
        .env("DISPLAY", &x.display)
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let status = child.try_wait().unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.is_none(), "the window should stay open waiting for the camera; exited {status:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("camera 7"), "the problem is reported: {stderr}");
}

/// The live window with segmentation on the GPU backend (lavapipe in CI): it runs, and results
/// reach the screen.
#[test]
fn live_window_with_the_gpu_backend() {
    if !common::gpu_available() {
        return;
    }
    let Some(x) = xvfb_or_skip("live_window_with_the_gpu_backend") else { return };
    let dir = scratch("live-gpu");
    let stats = dir.join("stats.json");
    let clip = repo("assets/vtest-4s.mp4");
    let out = live(
        &x,
        &["--backend", "gpu", "--source", clip.to_str().unwrap(), "--pose", "none", "--frames", "20", "--stats", stats.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\nstderr: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let e2e = s["run"]["seg"]["e2e"]["p50_ms"].as_f64().unwrap_or(0.0);
    assert!(e2e > 0.0, "no segmentation result reached the screen: {s:#}");
}

/// `--frames N` with a source that gives no frames (a camera that does not exist) ends with a
/// clear error and exit status 1 after `--source-timeout`, instead of waiting forever.
#[test]
fn live_frames_run_without_frames_fails_after_the_source_timeout() {
    let Some(x) = xvfb_or_skip("live_frames_run_without_frames_fails_after_the_source_timeout") else { return };
    let t = Instant::now();
    let out = live(&x, &["--camera", "99", "--frames", "5", "--source-timeout", "2"]);
    let took = t.elapsed();
    common::assert_clean_failure(&out, &["no frame came from the source within 2 s", "--source-timeout", "camera 99", "0 of 5 frames"]);
    // 2 s of waiting plus the window's start; far below the 240 s the helper allows.
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

/// The live window with top-down pose: the pipeline loads in the worker and its people reach
/// the screen (shown in the --stats list of what is on screen).
#[test]
fn live_window_with_topdown_pose() {
    let Some(x) = xvfb_or_skip("live_window_with_topdown_pose") else { return };
    let dir = scratch("live-topdown");
    let stats = dir.join("stats.json");
    let clip = repo("assets/vtest-4s.mp4");
    let out = live(&x, &["--source", clip.to_str().unwrap(), "--pose", "topdown-lightning", "--seg", "none", "--frames", "20", "--stats", stats.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\nstderr: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let e2e = s["run"]["pose"]["e2e"]["p50_ms"].as_f64().unwrap_or(0.0);
    assert!(e2e > 0.0, "no top-down result reached the screen: {s:#}");
}
