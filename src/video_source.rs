//! Video files in: ffprobe describes the stream, an ffmpeg child process decodes it to raw RGB
//! frames on a pipe. Using the ffmpeg programs (not bindings) means any format the user's ffmpeg
//! reads works, and a crash in a demuxer cannot take edgesight down with it.
//!
//! Each frame carries its presentation time from the decoder (the `showinfo` filter's line for
//! it on stderr), so variable-frame-rate files keep their timing. Only messages at ffmpeg's
//! error level count as damage; warnings are reported, never turned into a failed run.

use crate::ffmpeg::log::{FrameMeta, LogReader, LogSummary};
use crate::ffmpeg::{file_arg, first_line, looks_like_stream, spawn_error, tool};
use std::ffi::OsString;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};
use crate::frame::{check_dims, Frame};
use anyhow::{bail, Context, Result};
use serde::{Serialize, Serializer};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::mpsc::{channel, Receiver};

/// A path in JSON output: its text, with bytes that are not UTF-8 replaced (U+FFFD) rather than
/// failing the whole report.
pub fn serialize_path<S: Serializer>(p: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// Where frames come from: a file, or a live source read as it comes (a stream URL, standard
/// input, a camera).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// Anything ffmpeg opens by URL: rtsp, rtmp, http(s), udp, tcp, srt...
    Url(String),
    Stdin,
    /// A V4L2 camera (/dev/videoN).
    Camera(u32),
}

impl Source {
    /// `-` is standard input, `scheme://...` a stream, anything else a file.
    pub fn from_arg(arg: &Path) -> Source {
        if arg.as_os_str() == "-" {
            Source::Stdin
        } else if looks_like_stream(arg.as_os_str()) {
            Source::Url(arg.to_string_lossy().into_owned())
        } else {
            Source::File(arg.to_path_buf())
        }
    }

    pub fn is_live(&self) -> bool {
        !matches!(self, Source::File(_))
    }

    /// "file", "stream", "stdin" or "camera" (report.json's `input.source`).
    pub fn kind(&self) -> &'static str {
        match self {
            Source::File(_) => "file",
            Source::Url(_) => "stream",
            Source::Stdin => "stdin",
            Source::Camera(_) => "camera",
        }
    }

    /// For messages and report.json.
    pub fn name(&self) -> PathBuf {
        match self {
            Source::File(p) => p.clone(),
            Source::Url(u) => PathBuf::from(u),
            Source::Stdin => PathBuf::from("-"),
            Source::Camera(i) => PathBuf::from(format!("/dev/video{i}")),
        }
    }

    /// For messages: "standard input" rather than "-".
    pub fn describe(&self) -> String {
        match self {
            Source::Stdin => "standard input (-)".into(),
            other => other.name().display().to_string(),
        }
    }

    /// A stream that ends may come back: reconnect to it.
    pub fn reconnectable(&self) -> bool {
        matches!(self, Source::Url(_))
    }

    /// ffmpeg's input arguments (after its global options).
    fn input_args(&self) -> Vec<OsString> {
        match self {
            Source::File(p) => vec!["-i".into(), file_arg(p)],
            Source::Url(u) => {
                let mut a: Vec<OsString> = vec![];
                // Reads that stall for 5 s end the connection (then it is reconnected).
                if ["tcp://", "http://", "https://"].iter().any(|s| u.starts_with(s)) {
                    a.extend(["-rw_timeout".into(), "5000000".into()]);
                }
                // ffmpeg would read 5 s of a stream to describe it, then give those frames at once.
                a.extend(["-analyzeduration".into(), "500000".into()]);
                if u.starts_with("rtsp://") {
                    a.extend(["-rtsp_transport".into(), "tcp".into()]);
                }
                a.extend(["-i".into(), u.into()]);
                a
            }
            Source::Stdin => vec!["-i".into(), "pipe:0".into()],
            Source::Camera(i) => vec!["-f".into(), "v4l2".into(), "-i".into(), format!("/dev/video{i}").into()],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VideoInfo {
    #[serde(serialize_with = "serialize_path")]
    pub path: PathBuf,
    /// "file", "stream", "stdin" or "camera".
    pub source: &'static str,
    pub codec: String,
    /// Display size (after the rotation stored in the file, which ffmpeg applies).
    pub width: usize,
    pub height: usize,
    /// Frame rate as ffprobe gives it (e.g. "30000/1001") and as a number.
    pub frame_rate: String,
    pub fps: f64,
    /// Frame count stored in the container, when it stores one.
    pub declared_frames: Option<u64>,
    pub duration_s: Option<f64>,
}

/// Describes the first video stream of `path`.
pub fn probe(path: &Path) -> Result<VideoInfo> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(_) if looks_like_stream(path.as_os_str()) => {
            bail!("{shown} is a stream; this needs a video file (`edgesight video` reads streams, - and --camera)")
        }
        Err(e) if e.kind() == ErrorKind::NotFound => bail!("input video {shown} does not exist"),
        Err(e) => bail!("cannot read input video {shown}: {e}"),
        Ok(m) if !m.is_file() => bail!("input video {shown} is not a regular file"),
        Ok(m) if m.len() == 0 => bail!("input video {shown} is empty (0 bytes)"),
        Ok(_) => {}
    }
    let out = tool("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg("stream=codec_name,width,height,avg_frame_rate,r_frame_rate,nb_frames,duration:stream_side_data=rotation:format=duration")
        .args(["-of", "json"])
        .arg(file_arg(path))
        .output()
        .map_err(|e| spawn_error("ffprobe", e))?;
    if !out.status.success() {
        let msg = first_line(&String::from_utf8_lossy(&out.stderr));
        bail!("{shown} is not a video ffmpeg can read: {msg}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).with_context(|| format!("ffprobe gave unreadable output for {shown}"))?;
    let Some(stream) = json["streams"].get(0) else { bail!("{shown} has no video stream") };
    let dim = |k: &str| stream[k].as_u64().map(|v| v as usize);
    let (Some(mut width), Some(mut height)) = (dim("width"), dim("height")) else {
        bail!("{shown}: the video stream has no picture size")
    };
    check_dims(width, height).with_context(|| format!("{shown}: unsupported video"))?;
    let rotation = stream["side_data_list"]
        .as_array()
        .and_then(|l| l.iter().find_map(|s| s["rotation"].as_i64()))
        .unwrap_or(0);
    if rotation.rem_euclid(180) == 90 {
        std::mem::swap(&mut width, &mut height);
    }
    let rate_of = |k: &str| stream[k].as_str().and_then(parse_rate).map(|r| (stream[k].as_str().unwrap().to_string(), r));
    let (frame_rate, fps) = rate_of("avg_frame_rate").or_else(|| rate_of("r_frame_rate")).unwrap_or(("25/1".into(), 25.0));
    let declared_frames = stream["nb_frames"].as_str().and_then(|s| s.parse().ok());
    let duration_s = stream["duration"]
        .as_str()
        .or(json["format"]["duration"].as_str())
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d > 0.0);
    Ok(VideoInfo {
        path: path.to_path_buf(),
        source: "file",
        codec: stream["codec_name"].as_str().unwrap_or("unknown").to_string(),
        width,
        height,
        frame_rate,
        fps,
        declared_frames,
        duration_s,
    })
}

fn parse_rate(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let r = n.parse::<f64>().ok()? / d.parse::<f64>().ok()?;
    (r.is_finite() && r > 0.0 && r < 10_000.0).then_some(r)
}

/// How decoding ended.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DecodeEnd {
    pub frames: u64,
    /// True when the decoder reported damage (errors), failed, or gave a partial last frame.
    pub ended_early: bool,
    /// What the decoder said about the damage, if any.
    pub message: Option<String>,
    /// Decoder warnings (not faults): the first few, word for word, and how many there were.
    pub warnings: Vec<String>,
    pub warning_count: u64,
    /// True when edgesight stopped decoding before the end (interrupted, an output failed).
    pub stopped: bool,
}

/// Streams frames from an ffmpeg child process.
pub struct VideoReader {
    info: VideoInfo,
    child: Child,
    stdout: Option<ChildStdout>,
    log: LogReader,
    /// showinfo's frames (presentation time, size), in order; the first one of a live source
    /// is read ahead (`connect`) and waits here.
    frames: Receiver<FrameMeta>,
    pending: Option<FrameMeta>,
    last_time: Option<f64>,
    /// A live source's frames are timed from `Some(t)`: its first frame is at t (0 on a first
    /// connection, later after a reconnection), whatever the stream's own clock says.
    live_start: Option<f64>,
    live_shift: f64,
    frame_bytes: usize,
    next_index: u64,
    partial_frame: bool,
    stopped: bool,
}

impl VideoReader {
    pub fn open(info: &VideoInfo) -> Result<VideoReader> {
        Self::spawn(&Source::File(info.path.clone()), info.clone())
    }

    fn spawn(source: &Source, info: VideoInfo) -> Result<VideoReader> {
        let mut cmd = tool("ffmpeg");
        cmd.args(["-hide_banner", "-nostats", "-loglevel", "level+info"]);
        if *source == Source::Stdin {
            // ffmpeg reads the frames from our standard input.
            cmd.stdin(Stdio::inherit());
        } else {
            cmd.arg("-nostdin");
        }
        let mut child = cmd
            .args(source.input_args())
            // showinfo prints each frame's presentation time and size (checksums off: they cost
            // time); the encoder time base follows the input, so no time is rounded onto another.
            .args(["-map", "0:v:0", "-vf", "showinfo=checksum=0", "-fps_mode", "passthrough", "-enc_time_base", "-1"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error("ffmpeg", e))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, frames) = channel();
        let log = LogReader::spawn(child.stderr.take().expect("piped"), Some(tx));
        Ok(VideoReader {
            frame_bytes: info.width * info.height * 3,
            info,
            child,
            stdout: Some(stdout),
            log,
            frames,
            pending: None,
            last_time: None,
            live_start: source.is_live().then_some(0.0),
            live_shift: 0.0,
            next_index: 0,
            partial_frame: false,
            stopped: false,
        })
    }

    /// Opens a live source (a stream, standard input, a camera) and waits up to `timeout` for
    /// its first frame, which gives the picture size and rate; `cancelled` is polled meanwhile
    /// (a signal ends the wait).
    pub fn connect(source: &Source, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<VideoReader> {
        let name = source.name();
        let shown = source.describe();
        if let Source::Camera(i) = source {
            if !cfg!(target_os = "linux") {
                bail!("camera {i}: headless capture reads V4L2 cameras (Linux); play the camera's stream URL instead");
            }
            if !name.exists() {
                bail!("camera {i} ({}) does not exist: no camera connected there", name.display());
            }
        }
        let placeholder = VideoInfo {
            path: name.clone(),
            source: source.kind(),
            codec: "unknown".into(),
            width: 0,
            height: 0,
            frame_rate: "25/1".into(),
            fps: 25.0,
            declared_frames: None,
            duration_s: None,
        };
        let mut r = Self::spawn(source, placeholder.clone())?;
        let deadline = Instant::now() + timeout;
        // Why the attempts so far were refused: the deadline may pass during the next one.
        let mut refusals: Option<String> = None;
        let first = loop {
            let step = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(100));
            let failure = match r.frames.recv_timeout(step) {
                Ok(f) => break f,
                Err(RecvTimeoutError::Timeout) if cancelled() => Some("interrupted"),
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => None,
                Err(RecvTimeoutError::Timeout) => Some("timeout"),
                Err(RecvTimeoutError::Disconnected) => Some("failed"),
            };
            let Some(failure) = failure else { continue };
            r.stop();
            let _ = r.child.wait();
            let log = r.log.finish();
            let why = log.reason().unwrap_or_else(|| "no frame".into());
            // A camera or server that is starting (or restarting) refuses connections for a
            // while: asked again until the connect timeout, a little apart.
            if failure == "failed" && refused(&why) && !cancelled() {
                let pause = Duration::from_millis(250).min(deadline.saturating_duration_since(Instant::now()));
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                    if Instant::now() < deadline {
                        refusals = Some(why);
                        r = Self::spawn(source, placeholder.clone())?;
                        continue;
                    }
                }
            }
            match (failure, refusals) {
                ("interrupted", _) => bail!("interrupted while connecting to {shown}"),
                ("timeout", Some(refused)) => {
                    bail!("cannot open {shown}: {refused} (still refused after {:.0} s)", timeout.as_secs_f64())
                }
                ("timeout", None) => bail!("{shown} gave no frame within {:.0} s ({why})", timeout.as_secs_f64()),
                _ => bail!("cannot open {shown}: {why}"),
            }
        };
        let Some((w, h)) = first.size else { bail!("{shown}: the decoder did not say the picture size") };
        check_dims(w, h).with_context(|| format!("{shown}: unsupported video"))?;
        let log = r.log.snapshot();
        let fps = log.frame_rate.unwrap_or(25.0);
        r.info.width = w;
        r.info.height = h;
        r.info.fps = fps;
        r.info.frame_rate = format!("{fps}");
        r.info.duration_s = log.duration.flatten();
        r.info.codec = log.video_codec.unwrap_or_else(|| "unknown".into());
        r.frame_bytes = w * h * 3;
        r.pending = Some(first);
        Ok(r)
    }

    /// Carries on after an earlier connection to the same source: frames numbered from
    /// `next_index`, the first one at `start_s`.
    pub fn continue_from(&mut self, next_index: u64, start_s: f64) {
        self.next_index = next_index;
        self.live_start = Some(start_s);
    }

    /// The index the next frame gets, and the time of the last one.
    pub fn position(&self) -> (u64, Option<f64>) {
        (self.next_index, self.last_time)
    }

    /// Whether the source said it has a duration (a finite file served by URL): such a source
    /// that ends has ended, it is not lost.
    pub fn has_duration(&self) -> bool {
        matches!(self.log.snapshot().duration, Some(Some(_)))
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The next frame, or None at the end of the stream (clean or not: see `finish`).
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.stdout.is_none() {
            return Ok(None);
        }
        // showinfo's line for a frame comes before the frame reaches the pipe: its time and
        // size first, then its pixels. No line: the decoder has ended.
        let meta = match self.pending.take() {
            Some(m) => m,
            None => match self.frames.recv() {
                Ok(m) => m,
                Err(_) => FrameMeta { pts: None, size: None },
            },
        };
        if let Some((w, h)) = meta.size {
            if (w, h) != (self.info.width, self.info.height) {
                bail!("{} changed its picture size from {}x{} to {w}x{h}", self.info.path.display(), self.info.width, self.info.height);
            }
        }
        let mut buf = vec![0u8; self.frame_bytes];
        let mut filled = 0;
        let Some(stdout) = self.stdout.as_mut() else { return Ok(None) };
        while filled < buf.len() {
            match stdout.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => bail!("reading decoded frames of {}: {e}", self.info.path.display()),
            }
        }
        if filled < buf.len() {
            self.partial_frame = filled > 0;
            return Ok(None);
        }
        let mut frame = Frame::new(self.info.width, self.info.height, buf)?;
        frame.index = self.next_index;
        frame.timestamp_s = self.next_time(meta.pts);
        self.next_index += 1;
        Ok(Some(frame))
    }

    /// A frame's time: the decoder's (before the input's start counts as its start), or, for a
    /// frame without one, the last time plus one nominal frame.
    fn next_time(&mut self, pts: Option<f64>) -> f64 {
        let step = 1.0 / self.info.fps;
        let live = self.info.source != "file";
        let t = match pts {
            Some(p) => {
                if let Some(start) = self.live_start.take() {
                    self.live_shift = start - p;
                }
                let t = p + self.live_shift;
                match self.last_time {
                    // A live stream's clock may jump back (a camera restarting): its times never do.
                    Some(l) if live => t.max(l + step * 0.5),
                    _ => t.max(0.0),
                }
            }
            None => self.last_time.map_or_else(|| self.live_start.unwrap_or(0.0), |l| l + step),
        };
        self.last_time = Some(t);
        t
    }

    /// Stops decoding before the end (edgesight's choice: an interrupt, a failed output); the
    /// decoder's complaints about its closed pipe are then no fault of the input.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.stdout = None;
        let _ = self.child.kill();
    }

    /// Stops the decoder and says whether the whole stream was read.
    pub fn finish(&mut self) -> DecodeEnd {
        // Closing our end stops a decoder we left early.
        self.stdout = None;
        let status = self.child.wait();
        let log = self.log.finish();
        let frames = self.next_index;
        if self.stopped {
            return DecodeEnd { frames, stopped: true, ..DecodeEnd::default() };
        }
        let mut problems = Vec::new();
        match status {
            Ok(s) if !s.success() => problems.push(format!("ffmpeg exited with {s}")),
            Err(e) => problems.push(format!("ffmpeg: {e}")),
            _ => {}
        }
        if self.partial_frame {
            problems.push("the last frame was incomplete".to_string());
        }
        if log.error_count > 0 || !problems.is_empty() {
            if let Some(reason) = log.reason() {
                problems.push(format!("decoder: {reason}"));
            }
        }
        let mut end = decode_end(frames, problems, &log);
        // Fewer frames than the container declares, with no error, is not damage (edit lists
        // drop frames; some muxers count wrongly): a warning.
        if let Some(declared) = self.info.declared_frames {
            if frames < declared && !end.ended_early {
                end.warnings.push(format!("decoded {frames} of the {declared} frames the file declares"));
                end.warning_count += 1;
            }
        }
        end
    }
}

fn decode_end(frames: u64, problems: Vec<String>, log: &LogSummary) -> DecodeEnd {
    let ended_early = !problems.is_empty();
    DecodeEnd {
        frames,
        ended_early,
        message: ended_early.then(|| problems.join("; ")),
        warnings: log.warnings.clone(),
        warning_count: log.warning_count,
        stopped: false,
    }
}

impl Drop for VideoReader {
    fn drop(&mut self) {
        // A reader dropped on an error path must not leave its decoder running.
        if self.stdout.take().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether ffmpeg's reason for a failed open says the other end refused the connection (nothing
/// listening there yet), which waiting may cure.
fn refused(why: &str) -> bool {
    let why = why.to_ascii_lowercase();
    why.contains("connection refused") || why.contains("connection reset")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_reject_nonsense() {
        assert_eq!(parse_rate("10/1"), Some(10.0));
        assert!((parse_rate("30000/1001").unwrap() - 29.97).abs() < 1e-2);
        assert_eq!(parse_rate("0/0"), None);
        assert_eq!(parse_rate("abc"), None);
    }
}
