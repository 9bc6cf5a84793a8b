//! Headless live sources (`edgesight video URL | - | --camera N`), against streams served by
//! ffmpeg on 127.0.0.1 inside the test:
//! - standard input is read to its end, every frame;
//! - a stream faster than the models: the newest frame wins, dropped frames are counted in
//!   report.json and show as gaps in the frame index, times follow the stream's clock;
//! - a stream that dies is reconnected (frames numbered and timed on), and one that does not
//!   come back is given up after --reconnect-timeout: exit 1, every frame processed until then
//!   kept whole in frames.jsonl and annotated.mp4, report.json says "input_lost";
//! - sources that cannot be opened fail with one message, before any output is made.

mod common;

use common::{assert_clean_failure, clip, s, scratch, BIN};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// ffmpeg serving the bundled clip, looped, as an MPEG-TS over HTTP to one client.
struct Server {
    child: Child,
}

impl Server {
    /// `rate`: how many times real time the clip is sent.
    fn start(port: u16, rate: f64) -> Server {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "quiet", "-readrate", &rate.to_string(), "-stream_loop", "-1", "-i", s(&clip())])
            .args(["-c", "copy", "-f", "mpegts", "-listen", "1", &url(port)])
            .stdin(Stdio::null())
            .spawn()
            .expect("ffmpeg runs");
        let t = Instant::now();
        // Listening (watched in /proc, so no connection is spent on finding out).
        while !listening(port) {
            assert!(t.elapsed() < Duration::from_secs(10), "the test server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/live.ts")
}

fn listening(port: u16) -> bool {
    let want = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp").unwrap_or_default().lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
}

/// Every line of frames.jsonl parses (no partial line).
fn lines(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("frames.jsonl")).unwrap_or_default();
    let whole = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    whole.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn decodable_frames(p: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(p)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout).trim().trim_end_matches(',').parse().unwrap_or(0)
}

fn wait_output(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let t = Instant::now();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if t.elapsed() > limit {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("edgesight did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter.join().unwrap()
}

/// Indices and times strictly increase; annotated.mp4 holds exactly the frames of frames.jsonl.
fn assert_consistent(dir: &Path, r: &serde_json::Value) -> Vec<(u64, f64)> {
    let lines = lines(dir);
    assert_eq!(lines.len() as u64, r["frames"].as_u64().unwrap(), "frames.jsonl vs report");
    let frames: Vec<(u64, f64)> = lines.iter().map(|l| (l["index"].as_u64().unwrap(), l["timestamp_s"].as_f64().unwrap())).collect();
    assert!(frames.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "{frames:?}");
    assert_eq!(decodable_frames(&dir.join("annotated.mp4")), lines.len() as u64, "annotated.mp4 vs frames.jsonl");
    // Every frame read was processed, dropped, or (at most one) still waiting when it ended.
    let (read, dropped, done) = (r["frames_read"].as_u64().unwrap(), r["dropped_frames"].as_u64().unwrap(), r["frames"].as_u64().unwrap());
    assert!(read >= done + dropped && read <= done + dropped + 1, "read {read}, dropped {dropped}, processed {done}");
    frames
}

#[test]
fn standard_input_is_read_to_its_end() {
    let d = scratch("live-stdin");
    let out = d.join("o");
    let r = Command::new(BIN)
        .args(["video", "-", "--out", s(&out), "--quiet", "--seg", "none"])
        .stdin(std::fs::File::open(clip()).unwrap())
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let rep = report(&out);
    assert_eq!((rep["ended"].as_str(), rep["input"]["source"].as_str(), rep["keep_up"].as_bool()), (Some("complete"), Some("stdin"), Some(false)));
    assert_eq!((rep["frames"].as_u64(), rep["dropped_frames"].as_u64()), (Some(40), Some(0)));
    assert_eq!(rep["input"]["codec"], "h264");
    let frames = assert_consistent(&out, &rep);
    // Every frame, at the clip's 10 fps.
    assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), (0..40).collect::<Vec<_>>());
    assert!(frames.iter().all(|&(i, t)| (t - i as f64 / 10.0).abs() < 1e-3), "{frames:?}");
}

#[test]
fn a_stream_faster_than_the_models_drops_frames_and_counts_them() {
    let d = scratch("live-fast");
    let port = free_port();
    // 60 frames a second: more than two cores run pose and segmentation at.
    let server = Server::start(port, 6.0);
    let out = d.join("o");
    let r = Command::new(BIN).args(["video", &url(port), "--out", s(&out), "--quiet", "--max-frames", "15"]).output().unwrap();
    server.kill();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let rep = report(&out);
    assert_eq!((rep["ended"].as_str(), rep["input"]["source"].as_str(), rep["keep_up"].as_bool()), (Some("complete"), Some("stream"), Some(true)));
    assert_eq!(rep["frames"], 15);
    assert_eq!(rep["frame_limit"], 15);
    let dropped = rep["dropped_frames"].as_u64().unwrap();
    assert!(dropped > 0, "nothing dropped: {rep}");
    let frames = assert_consistent(&out, &rep);
    // The drops are gaps in the index (and frames read while the last one was processed);
    // times stay the stream's (10 fps clip), from 0.
    let gaps: u64 = frames.windows(2).map(|w| w[1].0 - w[0].0 - 1).sum();
    assert!(gaps > 0 && gaps <= dropped, "gaps {gaps}, dropped {dropped}");
    assert!(frames.iter().all(|&(i, t)| (t - i as f64 / 10.0).abs() < 0.051), "{frames:?}");
}

#[test]
fn a_stream_that_dies_is_reconnected_then_given_up_as_lost() {
    let d = scratch("live-lost");
    let port = free_port();
    let out = d.join("o");
    let server = Server::start(port, 1.0);
    let child = Command::new(BIN)
        .args(["video", &url(port), "--out", s(&out), "--quiet", "--seg", "none", "--reconnect-timeout", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let wait_for = |n: usize, what: &str| {
        let t = Instant::now();
        while lines(&out).len() < n {
            assert!(t.elapsed() < Duration::from_secs(30), "{what}: {} lines", lines(&out).len());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(5, "first connection");
    server.kill();
    let before = lines(&out).len();
    std::thread::sleep(Duration::from_millis(1500));
    let server = Server::start(port, 1.0);
    wait_for(before + 5, "after reconnecting");
    server.kill();
    let r = wait_output(child, Duration::from_secs(60));
    assert_clean_failure(&r, &["was lost after", "not back within 4 s", &url(port)]);
    let rep = report(&out);
    assert_eq!(rep["ended"], "input_lost", "{rep}");
    let recon = rep["reconnections"].as_array().expect("reconnections listed");
    assert_eq!(recon.len(), 1, "{rep}");
    let gap = recon[0]["gap_s"].as_f64().unwrap();
    assert!(gap > 1.0 && gap < 10.0, "gap {gap}");
    let frames = assert_consistent(&out, &rep);
    // Numbering and time go on across the reconnection, the time by at least the gap.
    let at = recon[0]["at_frame"].as_u64().unwrap();
    let k = frames.iter().position(|f| f.0 >= at).expect("frames after the reconnection");
    assert!(k > 0);
    assert!(frames[k].1 - frames[k - 1].1 >= gap, "{:?} -> {:?}, gap {gap}", frames[k - 1], frames[k]);
}

#[test]
fn sources_that_cannot_be_opened_fail_before_any_output() {
    let d = scratch("live-refused");
    let out = d.join("o");
    let port = free_port();
    let t = Instant::now();
    let r = Command::new(BIN).args(["video", &url(port), "--out", s(&out), "--connect-timeout", "1"]).output().unwrap();
    assert_clean_failure(&r, &["cannot open", &url(port), "refused"]);
    // Refusals are retried until the connect timeout, not longer.
    assert!(t.elapsed() >= Duration::from_millis(900) && t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(!out.exists(), "outputs were made for a stream that never opened");
    // Standard input that is not a video.
    let r = Command::new(BIN).args(["video", "-", "--out", s(&out)]).stdin(Stdio::null()).output().unwrap();
    assert_clean_failure(&r, &["cannot open standard input"]);
    // A camera that is not there.
    let r = Command::new(BIN).args(["video", "--camera", "63", "--out", s(&out)]).output().unwrap();
    assert_clean_failure(&r, &["camera 63", "does not exist"]);
    assert!(!out.exists());
    // A stream that opens but never sends a frame.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let hold = std::thread::spawn(move || {
        let conn = listener.accept().map(|c| c.0);
        std::thread::sleep(Duration::from_secs(4));
        drop(conn);
    });
    let t = Instant::now();
    let r = Command::new(BIN).args(["video", &silent, "--out", s(&out), "--connect-timeout", "1.5"]).output().unwrap();
    assert_clean_failure(&r, &[&silent, "no frame within 2 s"]);
    assert!(t.elapsed() < Duration::from_secs(30));
    hold.join().unwrap();
}

#[test]
fn a_server_that_starts_late_is_waited_for_within_the_connect_timeout() {
    // An IP camera that is booting refuses connections; edgesight keeps asking until
    // --connect-timeout and then reads it as if it had been there all along.
    let d = scratch("live-late");
    let port = free_port();
    let out = d.join("o");
    let child = Command::new(BIN)
        .args(["video", &url(port), "--out", s(&out), "--quiet", "--max-frames", "3", "--seg", "none", "--connect-timeout", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let server = Server::start(port, 1.0);
    let r = wait_output(child, Duration::from_secs(60));
    server.kill();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let rep = report(&out);
    assert_eq!(rep["ended"].as_str(), Some("complete"));
    assert_eq!(rep["frames"].as_u64(), Some(3));
}
