//! A user's files are never lost and odd paths never confuse the program: outputs that would
//! overwrite an input are refused before any work, images that share a name get distinct
//! outputs, a rerun leaves no stale masks, paths starting with `-` or not in UTF-8 work,
//! model and output paths of the wrong kind get a message that says what they are, and a size
//! that cannot fit in memory is refused before anything is allocated.

mod common;

use common::{assert_clean_failure, clip, edgesight, repo, s, scratch, BIN};
use std::path::{Path, PathBuf};
use std::process::Command;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn coco_image() -> PathBuf {
    repo("tests/data/coco/000000000785.jpg")
}

/// The first `n` frames of the bundled clip, re-encoded (10 fps, 768x576).
fn short_clip(dir: &Path, name: &str, n: usize) -> PathBuf {
    let out = dir.join(name);
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(clip())
        .args(["-frames:v", &n.to_string(), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(st.success());
    out
}

#[test]
fn an_output_that_is_the_input_is_refused_before_any_work() {
    let d = scratch("files-same");
    let input = d.join("annotated.mp4");
    std::fs::copy(clip(), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let r = edgesight(&["video", s(&input), "--out", s(&d), "--quiet"]);
    assert_clean_failure(&r, &["annotated video", "destroy the input", "annotated.mp4"]);
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input was changed");
    assert!(!d.join("frames.jsonl").exists() && !d.join("report.json").exists());
    // The same through another spelling of the folder, and as --csv.
    let other = d.join("sub/..");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    assert_clean_failure(&edgesight(&["video", s(&input), "--out", s(&other), "--quiet"]), &["destroy the input"]);
    let csv_input = d.join("people.mp4");
    std::fs::copy(clip(), &csv_input).unwrap();
    assert_clean_failure(&edgesight(&["video", s(&csv_input), "--out", s(&d.join("o")), "--csv", s(&csv_input)]), &["--csv", "destroy the input"]);
    // Two outputs that are one file.
    assert_clean_failure(
        &edgesight(&["video", s(&csv_input), "--out", s(&d.join("o")), "--csv", s(&d.join("o/frames.jsonl"))]),
        &["same file"],
    );
    assert_eq!(std::fs::read(&csv_input).unwrap(), before);

    // Images: the results file may be neither the annotations file nor an input image.
    let ann = d.join("ann.json");
    let ann_text = std::fs::read(repo("tests/data/coco/test_coco.json")).unwrap();
    std::fs::write(&ann, &ann_text).unwrap();
    let img = d.join("000000000785.jpg");
    std::fs::copy(coco_image(), &img).unwrap();
    let img_bytes = std::fs::read(&img).unwrap();
    let r = edgesight(&["image", s(&img), "--out", s(&d.join("io")), "--coco-results", s(&ann), "--coco-annotations", s(&ann)]);
    assert_clean_failure(&r, &["--coco-results", "--coco-annotations", "destroy the input"]);
    assert_eq!(std::fs::read(&ann).unwrap(), ann_text, "the annotations were overwritten");
    let r = edgesight(&["image", s(&img), "--out", s(&d.join("io")), "--coco-results", s(&img)]);
    assert_clean_failure(&r, &["--coco-results", "input image"]);
    assert_eq!(std::fs::read(&img).unwrap(), img_bytes);
    // An input image named like its own annotated output, in the output folder.
    let named = d.join("io2/x.annotated.png");
    std::fs::create_dir_all(named.parent().unwrap()).unwrap();
    image::open(coco_image()).unwrap().save(d.join("io2/x.png")).unwrap();
    std::fs::copy(d.join("io2/x.png"), &named).unwrap();
    let r = edgesight(&["image", s(&d.join("io2/x.png")), s(&named), "--out", s(&d.join("io2")), "--seg", "none"]);
    assert!(r.status.success() || stderr(&r).contains("destroy the input"), "{}", stderr(&r));
    assert!(image::open(&named).is_ok(), "an input image was destroyed");
}

#[test]
fn images_that_share_a_name_get_distinct_outputs() {
    let d = scratch("files-stems");
    let img = image::open(coco_image()).unwrap();
    let mut files = vec![d.join("a/x.png"), d.join("b/x.png"), d.join("a/x.jpg")];
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        files.push(d.join(std::ffi::OsStr::from_bytes(b"a/caf\xe9.png")));
        files.push(d.join(std::ffi::OsStr::from_bytes(b"a/caf\xe8.png")));
    }
    for f in &files {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        img.save(f).unwrap();
    }
    let out = d.join("out");
    let mut cmd = Command::new(BIN);
    cmd.args(["image", "--out"]).arg(&out).args(["--seg", "none"]).args(&files);
    let r = cmd.output().unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(out.join("images.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), files.len());
    let annotated: std::collections::HashSet<String> = lines.iter().map(|l| l["annotated"].as_str().unwrap().to_string()).collect();
    assert_eq!(annotated.len(), files.len(), "outputs overwrote each other: {annotated:?}");
    for a in &annotated {
        assert!(Path::new(a).is_file(), "{a} missing");
    }
    assert_eq!(std::fs::read_dir(&out).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".annotated.png")).count(), files.len());
}

#[test]
fn a_rerun_into_the_same_folder_leaves_no_stale_masks() {
    let d = scratch("files-masks");
    let long = short_clip(&d, "long.mp4", 8);
    let short = short_clip(&d, "short.mp4", 3);
    let out = d.join("out");
    let masks = |out: &Path| std::fs::read_dir(out.join("masks")).map(|r| r.count()).unwrap_or(0);
    let run = |input: &Path, extra: &[&str]| {
        let mut args = vec!["video", s(input), "--out", s(&out), "--pose", "none", "--quiet"];
        args.extend(extra);
        let r = edgesight(&args);
        assert!(r.status.success(), "{}", stderr(&r));
    };
    run(&long, &["--masks"]);
    assert_eq!(masks(&out), 8);
    // A user's own file in masks/ is kept.
    std::fs::write(out.join("masks/notes.txt"), "mine").unwrap();
    run(&short, &["--masks"]);
    assert_eq!(masks(&out), 3 + 1);
    assert!(out.join("masks/000002.png").is_file() && !out.join("masks/000003.png").exists());
    run(&short, &[]);
    assert_eq!(masks(&out), 1, "masks of the earlier run stayed");
}

/// A relative name that starts with `-` is a file, not an ffmpeg option; a name that is not
/// UTF-8 is processed and named (lossily) in report.json.
#[test]
fn odd_input_names_are_files() {
    let d = scratch("files-names");
    let src = short_clip(&d, "src.mp4", 3);
    std::fs::copy(&src, d.join("-clip.mp4")).unwrap();
    let r = Command::new(BIN).current_dir(&d).args(["video", "--out", "o1", "--quiet", "--seg", "none", "--", "-clip.mp4"]).output().unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("o1/report.json")).unwrap()).unwrap();
    assert_eq!(report["frames"], 3);
    assert_eq!(report["input"]["path"], "-clip.mp4");
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let odd = d.join(std::ffi::OsStr::from_bytes(b"caf\xe9.mp4"));
        std::fs::copy(&src, &odd).unwrap();
        let r = Command::new(BIN).arg("video").arg(&odd).args(["--out", s(&d.join("o2")), "--quiet", "--seg", "none"]).output().unwrap();
        assert!(r.status.success(), "{}", stderr(&r));
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("o2/report.json")).unwrap()).unwrap();
        assert!(report["input"]["path"].as_str().unwrap().ends_with("caf\u{fffd}.mp4"), "{}", report["input"]["path"]);
        assert_eq!(report["frames"], 3);
        // A damaged one fails naming the file.
        std::fs::write(&odd, b"not a video").unwrap();
        let r = Command::new(BIN).arg("video").arg(&odd).args(["--out", s(&d.join("o3"))]).output().unwrap();
        assert_clean_failure(&r, &["caf\u{fffd}.mp4", "not a video"]);
    }
}

#[test]
fn paths_of_the_wrong_kind_are_named_for_what_they_are() {
    let d = scratch("files-kinds");
    // A stream URL is opened as a stream (not looked for as a file).
    let r = edgesight(&["video", "--out", s(&d.join("o")), "--", "rtsp://127.0.0.1:9/cam"]);
    assert_clean_failure(&r, &["cannot open rtsp://127.0.0.1:9/cam"]);
    // Where a file is needed, a stream is named as one.
    let r = edgesight(&["bench", "--clip", "rtsp://127.0.0.1:9/cam", "--runs", "1"]);
    assert_clean_failure(&r, &["is a stream", "needs a video file"]);
    // A folder as a model.
    let r = edgesight(&["image", s(&coco_image()), "--out", s(&d.join("o")), "--pose-model", s(&d)]);
    assert_clean_failure(&r, &["is a folder, not a model file"]);
    // A plain zip is not called a PyTorch checkpoint.
    let zip = d.join("photos.zip");
    let st = Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w'); z.writestr('a.txt', 'hello'); z.close()"])
        .arg(&zip)
        .status()
        .expect("python3 runs");
    assert!(st.success());
    let r = edgesight(&["image", s(&coco_image()), "--out", s(&d.join("o")), "--pose-model", s(&zip)]);
    assert_clean_failure(&r, &["photos.zip", "zip archive but not a PyTorch checkpoint"]);
    // --coco-results into a missing folder fails before any image is processed.
    let out = d.join("coco-out");
    let r = edgesight(&["image", s(&coco_image()), s(&coco_image()), "--out", s(&out), "--coco-results", s(&d.join("missing/r.json"))]);
    assert_clean_failure(&r, &["COCO results", "missing/r.json"]);
    assert!(!out.join("000000000785.annotated.png").exists(), "images were processed before the check");
    // bench names an unknown model before printing anything.
    let r = edgesight(&["bench", "--model", "posenet", "--out", s(&d.join("b"))]);
    assert_clean_failure(&r, &["unknown model 'posenet'"]);
    assert!(r.stdout.is_empty(), "{}", String::from_utf8_lossy(&r.stdout));
}

/// Runs `cmd` and returns its exit code, stderr and peak resident memory (kB), from wait4 on
/// that one child (other tests' children do not count).
#[cfg(unix)]
fn run_measured(cmd: &mut Command) -> (Option<i32>, String, u64) {
    use std::io::Read;
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 on our own child's pid, which std never waits for here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, reader.join().unwrap(), usage.ru_maxrss as u64)
}

/// An input size whose plan cannot fit is refused by the estimate, before planning allocates:
/// the run ends at once, its memory small.
#[cfg(unix)]
#[test]
fn a_size_that_cannot_fit_in_memory_is_refused_first() {
    let d = scratch("files-memory");
    let t = std::time::Instant::now();
    let mut cmd = Command::new(BIN);
    cmd.args(["--max-memory", "2G", "image"]).arg(coco_image()).args(["--out", s(&d), "--pose-size", "8192", "--seg", "none"]);
    let (code, err, rss_kb) = run_measured(&mut cmd);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("edgesight: error:") && err.contains("needs about") && err.contains("--max-memory"), "{err}");
    assert!(err.contains("--pose-size") && !err.contains("panicked"), "{err}");
    assert!(rss_kb < 1_000_000, "peak RSS {rss_kb} kB before refusing");
    println!("refused in {:.1} s at {} MB peak RSS: {}", t.elapsed().as_secs_f64(), rss_kb / 1000, err.trim());
    // A size that fits runs under the same limit, and the estimate is not below what it took.
    let estimate_mb = |size: &str| -> f64 {
        let r = edgesight(&["--max-memory", "1M", "image", s(&coco_image()), "--out", s(&d.join("est")), "--pose-size", size, "--seg", "none"]);
        let e = stderr(&r);
        let words: Vec<&str> = e.split_whitespace().collect();
        let i = words.iter().position(|w| *w == "about").unwrap_or_else(|| panic!("no estimate: {e}"));
        let v: f64 = words[i + 1].parse().unwrap();
        if words[i + 2] == "GB" { v * 1000.0 } else { v }
    };
    let mut cmd = Command::new(BIN);
    cmd.args(["--max-memory", "2G", "image"]).arg(coco_image()).args(["--out", s(&d.join("ok")), "--pose-size", "1024", "--seg", "none"]);
    let (code, err, rss_kb) = run_measured(&mut cmd);
    assert_eq!(code, Some(0), "{err}");
    let est = estimate_mb("1024");
    println!("--pose-size 1024: estimate {est:.0} MB, peak RSS {} MB", rss_kb / 1000);
    assert!(est * 1000.0 >= rss_kb as f64 * 0.9 && est * 1000.0 <= rss_kb as f64 * 3.0, "estimate {est} MB, peak RSS {rss_kb} kB");
    // Nonsense limits are usage errors.
    let r = edgesight(&["--max-memory", "lots", "models"]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
}

/// The input opens while the models load: a model that fails is reported first, as before, and
/// a stream still being waited for (nothing listens there) is given up at once, leaving nothing.
#[test]
fn a_model_that_fails_while_a_stream_is_awaited_is_reported_at_once() {
    let d = scratch("files-model-first");
    let out = d.join("o");
    let t = std::time::Instant::now();
    let r = edgesight(&[
        "video",
        "--out",
        s(&out),
        "--pose-model",
        s(&d.join("missing.onnx")),
        "--connect-timeout",
        "60",
        "--",
        "rtsp://127.0.0.1:9/cam",
    ]);
    assert_clean_failure(&r, &["missing.onnx", "does not exist"]);
    // Far short of the 60 s connect timeout (a hang check, not a speed measure).
    assert!(t.elapsed().as_secs() < 30, "waited {:?} for a stream after the model failed", t.elapsed());
    assert!(!out.exists(), "a failed start left {}", out.display());
}
