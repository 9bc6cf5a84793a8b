//! Video files in: ffprobe describes the stream, an ffmpeg child process decodes it to raw RGB
//! frames on a pipe. Using the ffmpeg programs (not bindings) means any format the user's ffmpeg
//! reads works, and a crash in a demuxer cannot take edgesight down with it.

use crate::frame::{check_dims, Frame};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

#[derive(Debug, Clone, Serialize)]
pub struct VideoInfo {
    pub path: PathBuf,
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

/// Runs an ffmpeg-suite tool, mapping "not installed" to a clear message.
pub(crate) fn tool(name: &str) -> Command {
    let mut c = Command::new(name);
    c.stdin(Stdio::null());
    c
}

pub(crate) fn spawn_error(name: &str, e: std::io::Error) -> anyhow::Error {
    if e.kind() == ErrorKind::NotFound {
        anyhow::anyhow!("{name} was not found on PATH; install ffmpeg (Debian: apt-get install ffmpeg)")
    } else {
        anyhow::anyhow!("cannot start {name}: {e}")
    }
}

/// Describes the first video stream of `path`.
pub fn probe(path: &Path) -> Result<VideoInfo> {
    let shown = path.display();
    match std::fs::metadata(path) {
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
        .arg(path)
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

/// The first non-empty line of a tool's stderr, without ffmpeg's "[component @ 0x...] " prefix.
pub(crate) fn first_line(s: &str) -> String {
    let line = s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no message");
    strip_component(line).to_string()
}

pub(crate) fn strip_component(line: &str) -> &str {
    match (line.starts_with('['), line.find("] ")) {
        (true, Some(end)) if line[..end].contains(" @ ") => &line[end + 2..],
        _ => line,
    }
}

/// How decoding ended.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeEnd {
    pub frames: u64,
    /// True when the input stopped before its declared end or the decoder reported errors.
    pub ended_early: bool,
    /// The decoder's complaint, if any.
    pub message: Option<String>,
}

/// Streams frames from an ffmpeg child process.
pub struct VideoReader {
    info: VideoInfo,
    child: Child,
    stdout: Option<ChildStdout>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
    frame_bytes: usize,
    next_index: u64,
    partial_frame: bool,
}

impl VideoReader {
    pub fn open(info: &VideoInfo) -> Result<VideoReader> {
        let mut child = tool("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(&info.path)
            .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error("ffmpeg", e))?;
        let stdout = child.stdout.take().expect("piped");
        let (stderr, stderr_thread) = drain(child.stderr.take().expect("piped"));
        Ok(VideoReader {
            frame_bytes: info.width * info.height * 3,
            info: info.clone(),
            child,
            stdout: Some(stdout),
            stderr,
            stderr_thread: Some(stderr_thread),
            next_index: 0,
            partial_frame: false,
        })
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The next frame, or None at the end of the stream (clean or not: see `finish`).
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
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
        frame.timestamp_s = self.next_index as f64 / self.info.fps;
        self.next_index += 1;
        Ok(Some(frame))
    }

    /// Stops the decoder and says whether the whole stream was read.
    pub fn finish(&mut self) -> DecodeEnd {
        // Closing our end stops a decoder we left early.
        self.stdout = None;
        let status = self.child.wait();
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        let frames = self.next_index;
        let mut problems = Vec::new();
        match status {
            Ok(s) if !s.success() => problems.push(format!("ffmpeg exited with {s}")),
            Err(e) => problems.push(format!("ffmpeg: {e}")),
            _ => {}
        }
        if self.partial_frame {
            problems.push("the last frame was incomplete".to_string());
        }
        if let Some(declared) = self.info.declared_frames {
            if frames < declared {
                problems.push(format!("decoded {frames} of the {declared} frames the file declares"));
            }
        }
        let decoder_said = first_line(&stderr);
        let ended_early = !problems.is_empty() || !stderr.trim().is_empty();
        let message = ended_early.then(|| {
            if !stderr.trim().is_empty() {
                problems.push(format!("decoder: {decoder_said}"));
            }
            problems.join("; ")
        });
        DecodeEnd { frames, ended_early, message }
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

/// Keeps the last few KB a child prints on stderr, without ever blocking it.
pub(crate) fn drain(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let handle = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&String::from_utf8_lossy(&chunk[..n]));
                if s.len() > 16384 {
                    let cut = s.len() - 8192;
                    let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
                    s.drain(..cut);
                }
            }
        }
    });
    (text, handle)
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

    #[test]
    fn ffmpeg_component_prefix_is_stripped() {
        assert_eq!(first_line("\n[h264 @ 0x5622] Invalid NAL unit size\nmore"), "Invalid NAL unit size");
        assert_eq!(first_line("moov atom not found"), "moov atom not found");
        assert_eq!(first_line(""), "no message");
    }
}
