//! Runs that end in unusual ways keep consistent outputs, and valid unusual videos are not
//! called damaged:
//! - variable-frame-rate videos (a 10 fps + 30 fps concatenation, jittered timestamps) end
//!   normally, frames carry the decoder's presentation times (from the input's start),
//!   annotated.mp4 keeps them;
//! - Ctrl-C (SIGINT to the process group, as a terminal sends it): exit 130, whole lines, the
//!   video holds exactly the frames in frames.jsonl, report.json says it was interrupted;
//! - SIGKILL: whole lines, a playable video, report.json still says "running";
//! - a full disk (a small tmpfs in a private mount namespace; where that is not allowed, a
//!   file-size limit): whole lines, a playable video, report.json says the output failed and
//!   the message names what could not be written, not the input.

mod common;

use common::{clip, s, scratch, BIN};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).output().expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", stderr(&out));
}

/// Presentation times of a video's frames, by ffprobe.
fn frame_times(p: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(p)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe on {}: {}", p.display(), stderr(&out));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().trim_end_matches(',').parse().ok()).collect()
}

/// Frames ffprobe decodes from `p` (None: it cannot read the file at all).
fn decodable_frames(p: &Path) -> Option<u64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(p)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().trim_end_matches(',').parse().ok()
}

/// Every line of a JSONL file parses (no partial last line); returns them.
fn whole_lines(p: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(p).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "{} ends mid-line", p.display());
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", p.display()))).collect()
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
}

/// The bundled clip played `n` times in a row (10 fps, 768x576).
fn looped_clip(dir: &Path, n: usize) -> PathBuf {
    let out = dir.join(format!("loop{n}.mp4"));
    ffmpeg(&["-stream_loop", &(n - 1).to_string(), "-i", s(&clip()), "-c", "copy", s(&out)]);
    out
}

fn assert_times_match(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-4, "{what}: {got:?} vs {want:?}");
    }
}

#[test]
fn variable_frame_rate_videos_keep_their_timing() {
    let d = scratch("runs-vfr");
    // 1 s at 10 fps, then 2 s of the clip at 30 fps (frames retimed).
    let cat = d.join("concat-10-30.mp4");
    ffmpeg(&[
        "-t", "1", "-i", s(&clip()), "-ss", "1", "-t", "2", "-i", s(&clip()),
        "-filter_complex", "[0:v]settb=1/90000,setpts=PTS-STARTPTS[a];[1:v]settb=1/90000,setpts=N/(30*TB)[b];[a][b]concat=n=2:v=1[v]",
        "-map", "[v]", "-fps_mode", "passthrough", "-enc_time_base", "1/90000", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", s(&cat),
    ]);
    // A phone-like recording: 30 fps with timestamps jittered by up to 12 ms.
    let jitter = d.join("jitter.mp4");
    ffmpeg(&[
        "-t", "2", "-i", s(&clip()), "-vf", "settb=1/90000,setpts='(N/30+0.012*sin(N*1.7)+0.012)/TB'",
        "-fps_mode", "passthrough", "-enc_time_base", "1/90000", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", s(&jitter),
    ]);
    for input in [cat, jitter] {
        // Times from the input's start (ffmpeg counts from the file's start time, here the
        // first frame's: 0.012 s in the jittered file).
        let raw = frame_times(&input);
        assert!(raw.len() > 15, "{raw:?}");
        let want: Vec<f64> = raw.iter().map(|t| t - raw[0]).collect();
        let out = d.join(input.file_stem().unwrap());
        let r = Command::new(BIN).args(["video", s(&input), "--out", s(&out), "--quiet", "--pose", "none"]).output().unwrap();
        assert!(r.status.success(), "{}: {}", input.display(), stderr(&r));
        let rep = report(&out);
        assert_eq!(rep["ended"], "complete");
        assert_eq!(rep["input_ended_early"], false);
        let lines = whole_lines(&out.join("frames.jsonl"));
        let got: Vec<f64> = lines.iter().map(|l| l["timestamp_s"].as_f64().unwrap()).collect();
        assert_times_match(&got, &want, "frames.jsonl timestamps");
        assert_times_match(&frame_times(&out.join("annotated.mp4")), &want, "annotated.mp4 timing");
        println!("{}: {} frames from {:.3} to {:.3} s, kept", input.display(), want.len(), want[0], want[want.len() - 1]);
    }
}

/// Starts `video` on `input` in a process group of its own (as a terminal job is) and waits
/// until frames.jsonl has `lines` lines.
fn start_and_wait(input: &Path, out: &Path, lines: usize) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let child = Command::new(BIN)
        .args(["video", s(input), "--out", s(out), "--quiet", "--pose", "none"])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        let n = std::fs::read_to_string(out.join("frames.jsonl")).map(|t| t.lines().count()).unwrap_or(0);
        if n >= lines {
            return child;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "the run made only {n} lines");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal_group(child: &std::process::Child, sig: i32) {
    // SAFETY: a plain kill(2) on the group of a child this test started.
    assert_eq!(unsafe { libc::kill(-(child.id() as i32), sig) }, 0);
}

#[test]
fn ctrl_c_ends_with_whole_outputs_and_a_report() {
    let d = scratch("runs-sigint");
    let input = looped_clip(&d, 10);
    let out = d.join("out");
    let child = start_and_wait(&input, &out, 10);
    signal_group(&child, libc::SIGINT);
    let r = child.wait_with_output().unwrap();
    let err = stderr(&r);
    assert_eq!(r.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by SIGINT") && !err.contains("panicked"), "{err}");
    let rep = report(&out);
    assert_eq!(rep["ended"], "interrupted");
    assert_eq!(rep["input_ended_early"], false);
    let lines = whole_lines(&out.join("frames.jsonl"));
    assert!(lines.len() < 400, "it ran to the end");
    assert_eq!(rep["frames"], lines.len() as u64);
    assert_eq!(decodable_frames(&out.join("annotated.mp4")), Some(lines.len() as u64), "annotated.mp4 and frames.jsonl disagree");
    println!("interrupted after {} frames: {}", lines.len(), err.trim());
}

#[test]
fn a_killed_run_keeps_whole_lines_and_a_playable_video() {
    let d = scratch("runs-sigkill");
    let input = looped_clip(&d, 10);
    let out = d.join("out");
    let mut child = start_and_wait(&input, &out, 25);
    signal_group(&child, libc::SIGKILL);
    let _ = child.wait();
    // The encoder, in its own group, sees its input end and finishes the file.
    let t = Instant::now();
    let video = out.join("annotated.mp4");
    let frames = loop {
        if let Some(n) = decodable_frames(&video).filter(|&n| n > 0) {
            break n;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "annotated.mp4 never became playable");
        std::thread::sleep(Duration::from_millis(200));
    };
    let lines = whole_lines(&out.join("frames.jsonl"));
    assert!(lines.len() >= 25);
    assert!(frames <= lines.len() as u64 && frames + 12 >= lines.len() as u64, "{frames} frames in the video, {} lines", lines.len());
    assert_eq!(report(&out)["ended"], "running");
    println!("killed: {} lines, {frames} playable frames", lines.len());
}

/// Runs `video` writing into a full-to-be filesystem; returns its output (exit status, stderr)
/// and where the outputs were copied.
fn run_on_small_disk(d: &Path, input: &Path) -> (Option<i32>, String, PathBuf, &'static str) {
    let mnt = d.join("mnt");
    let kept = d.join("kept");
    std::fs::create_dir_all(&mnt).unwrap();
    // A tmpfs that fills up half way through, seen by this command only; the outputs are copied
    // out before the namespace (and the tmpfs) goes away.
    let script = format!(
        "mount -t tmpfs -o size=900k edgesight-full {mnt} || exit 97; \
         {bin} video {input} --out {mnt}/out --quiet --pose none 2> {d}/stderr.txt; echo $? > {d}/status.txt; \
         cp -r {mnt}/out {kept}",
        mnt = s(&mnt),
        bin = BIN,
        input = s(input),
        d = s(d),
        kept = s(&kept)
    );
    let st = Command::new("unshare").args(["-m", "sh", "-c", &script]).status();
    let how = if st.as_ref().is_ok_and(|s| s.code() != Some(97) && s.success()) {
        "tmpfs"
    } else {
        // Not allowed here (no privileges for a mount namespace): a file-size limit instead
        // (writes past it fail as on a full disk, with EFBIG); SIGXFSZ ignored so they fail
        // rather than kill.
        let _ = std::fs::remove_dir_all(&kept);
        let script = format!(
            "trap '' XFSZ; ulimit -f 900; {bin} video {input} --out {kept} --quiet --pose none 2> {d}/stderr.txt; echo $? > {d}/status.txt",
            bin = BIN,
            input = s(input),
            d = s(d),
            kept = s(&kept)
        );
        assert!(Command::new("bash").args(["-c", &script]).status().unwrap().success());
        "file-size limit"
    };
    let status = std::fs::read_to_string(d.join("status.txt")).unwrap().trim().parse().ok();
    (status, std::fs::read_to_string(d.join("stderr.txt")).unwrap(), kept, how)
}

#[cfg(unix)]
#[test]
fn a_full_disk_ends_with_consistent_outputs_and_names_what_failed() {
    let d = scratch("runs-full");
    let input = looped_clip(&d, 10);
    let (status, err, kept, how) = run_on_small_disk(&d, &input);
    assert_eq!(status, Some(1), "({how}) {err}");
    assert!(!err.contains("panicked"), "{err}");
    let message = err.lines().find(|l| l.starts_with("edgesight: error:")).unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(message.contains("No space left on device") || message.contains("too large"), "({how}) {message}");
    assert!(message.contains("annotated.mp4") || message.contains("frames.jsonl"), "({how}) {message}");
    assert!(!message.contains("ended early"), "the input was blamed: {message}");
    let rep = report(&kept);
    assert_eq!(rep["ended"], "output_failed", "({how}) {rep}");
    assert_eq!(rep["input_ended_early"], false);
    let lines = whole_lines(&kept.join("frames.jsonl"));
    assert!(!lines.is_empty() && (lines.len() as u64) < 400);
    assert_eq!(rep["frames"].as_u64().unwrap() <= lines.len() as u64, true);
    let frames = decodable_frames(&kept.join("annotated.mp4")).expect("annotated.mp4 does not play");
    assert!(frames > 0 && frames <= lines.len() as u64, "{frames} frames, {} lines", lines.len());
    println!("full disk ({how}): {} lines, {frames} playable frames; {message}", lines.len());
}
