//! The environment the binary runs in: GPU adapter choice (CPU emulations never picked by
//! `--backend auto`), `WGPU_BACKEND` values, stray library lines about XDG_RUNTIME_DIR, and a
//! binary copied away from the source tree finding (or not finding) its models folder.
//!
//! The GPU tests need an adapter (CI: Mesa's lavapipe); without one they pass with a note,
//! unless EDGESIGHT_REQUIRE_GPU=1, where they fail.

mod common;

use common::{assert_clean_failure, data, repo, s, scratch, BIN};
use std::process::{Command, Output};

fn image_run(args: &[&str], out: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("image").arg(data("coco/000000000785.jpg")).arg("--out").arg(out);
    cmd
}

/// `edgesight video` on the bundled clip with segmentation only (quick on any backend); returns
/// the run and the backend report.json names.
fn video_backend(backend: &str, dir: &std::path::Path, no_runtime_dir: bool) -> (Output, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["--backend", backend, "video", s(&common::clip()), "--out", s(dir), "--pose", "none", "--quiet"]);
    if no_runtime_dir {
        cmd.env_remove("XDG_RUNTIME_DIR");
    }
    let out = cmd.output().unwrap();
    let report: serde_json::Value = std::fs::read(dir.join("report.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    (out, report["backend"].as_str().unwrap_or("").to_string())
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_unknown_wgpu_backend_is_refused_with_the_valid_values() {
    let out = image_run(&["--backend", "gpu"], &scratch("env-wgpu-backend")).env("WGPU_BACKEND", "vulkn").output().unwrap();
    assert_clean_failure(&out, &["WGPU_BACKEND", "\"vulkn\"", "valid values: vulkan", "metal", "dx12", "gl"]);
    // A valid value is not refused by the check (it may still find no adapter: metal on Linux).
    let out = image_run(&["--backend", "cpu"], &scratch("env-wgpu-backend-ok")).env("WGPU_BACKEND", "vulkan,gl").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// Whether this machine's adapter is a CPU emulation (None: no adapter, test skipped).
fn adapter_is_cpu_emulation() -> Option<(bool, String)> {
    if !common::gpu_available() {
        return None;
    }
    let c = edgesight::engine::gpu::context().unwrap();
    Some((edgesight::engine::gpu::is_cpu_emulation(&c.adapter), c.adapter.name.clone()))
}

#[test]
fn auto_never_runs_on_a_cpu_emulated_adapter() {
    let Some((emulated, name)) = adapter_is_cpu_emulation() else { return };
    let (out, backend) = video_backend("auto", &scratch("env-auto-emulated"), false);
    let stderr = text(&out);
    assert!(out.status.success(), "{stderr}");
    let notice = format!("GPU adapter {name} is a CPU emulation; using the CPU");
    if emulated {
        assert_eq!(stderr.matches(&notice).count(), 1, "one notice: {stderr}");
        assert!(backend.starts_with("cpu"), "auto ran on the emulated adapter: {backend}");
    } else {
        assert!(!stderr.contains("CPU emulation"), "{stderr}");
    }
}

#[test]
fn gpu_on_a_cpu_emulated_adapter_works_and_warns_once_without_xdg_runtime_dir_noise() {
    let Some((emulated, name)) = adapter_is_cpu_emulation() else { return };
    let (out, backend) = video_backend("gpu", &scratch("env-gpu-emulated"), true);
    let stderr = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(backend.starts_with("gpu (wgpu"), "--backend gpu runs on the GPU engine: {backend}");
    let warning = format!("warning: GPU adapter {name} is a CPU emulation");
    assert_eq!(stderr.matches(&warning).count(), usize::from(emulated), "{stderr}");
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "library noise about XDG_RUNTIME_DIR: {stderr}");
}

#[test]
fn a_copied_binary_finds_models_next_to_it_and_names_every_place_it_looked() {
    let root = scratch("env-copied-binary");
    let bin_dir = root.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let exe = bin_dir.join("edgesight");
    std::fs::copy(BIN, &exe).unwrap();
    let out_dir = root.join("out");
    let run = |args: &[&str]| {
        Command::new(&exe)
            .args(args)
            .current_dir(&root)
            .env_remove("EDGESIGHT_MODELS")
            // The source tree the binary was built from would be found last: leave it out.
            .env("EDGESIGHT_NO_SOURCE_TREE", "1")
            .env("XDG_DATA_HOME", root.join("data"))
            .env("HOME", &root)
            .output()
            .unwrap()
    };
    let image = data("coco/000000000785.jpg");
    let args = ["image", s(&image), "--out", s(&out_dir)];
    let out = run(&args);
    assert_clean_failure(
        &out,
        &[
            "no models folder found",
            s(&bin_dir.join("models")),
            s(&bin_dir.join("../share/edgesight/models")),
            s(&root.join("data/edgesight/models")),
            s(&root.join("models")),
            "EDGESIGHT_MODELS",
        ],
    );
    assert!(!out_dir.join("images.jsonl").exists());

    std::os::unix::fs::symlink(repo("models"), bin_dir.join("models")).unwrap();
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(out_dir.join("images.jsonl").is_file());
    let out = run(&["models"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains(&format!("model files are read from {}", bin_dir.join("models").display())), "{stdout}");
}

#[test]
fn live_record_to_a_folder_that_does_not_exist_fails_before_any_window() {
    let dir = scratch("env-live-record");
    let target = dir.join("no-such-folder/rec.mp4");
    // No display is needed: the path is checked before the window would open.
    let out = Command::new(BIN)
        .args(["live", "--source", s(&common::clip()), "--frames", "3", "--record", s(&target)])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert_clean_failure(&out, &["--record: cannot write", s(&target)]);
    let stderr = text(&out);
    assert!(!stderr.contains("no display"), "{stderr}");
    // An existing, writable folder passes the check (then the missing display is the error).
    let ok = dir.join("rec.mp4");
    let out = Command::new(BIN)
        .args(["live", "--source", s(&common::clip()), "--frames", "3", "--record", s(&ok)])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert_clean_failure(&out, &["no display"]);
    assert!(!ok.exists(), "the check leaves no file behind");
}
