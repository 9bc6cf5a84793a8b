//! Video files in: ffprobe describes the stream, an ffmpeg child process decodes it to raw RGB
//! frames on a pipe. Using the ffmpeg programs (not bindings) means any format the user's ffmpeg
//! reads works, and a crash in a demuxer cannot take edgesight down with it.
//!
//! Each frame carries its presentation time from the decoder (the `showinfo` filter's line for
//! it on stderr), so variable-frame-rate files keep their timing. Only messages at ffmpeg's
//! error level count as damage; warnings are reported, never turned into a failed run.

use crate::ffmpeg::log::{LogReader, LogSummary};
use crate::ffmpeg::{file_arg, first_line, looks_like_stream, spawn_error, tool};
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

#[derive(Debug, Clone, Serialize)]
pub struct VideoInfo {
    #[serde(serialize_with = "serialize_path")]
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

/// Describes the first video stream of `path`.
pub fn probe(path: &Path) -> Result<VideoInfo> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(_) if looks_like_stream(path.as_os_str()) => {
            bail!("{shown} is a stream; stream input (URLs, - for stdin) is not supported yet: give a video file")
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
    /// showinfo's presentation time of each frame, in order.
    times: Receiver<Option<f64>>,
    last_time: Option<f64>,
    frame_bytes: usize,
    next_index: u64,
    partial_frame: bool,
    stopped: bool,
}

impl VideoReader {
    pub fn open(info: &VideoInfo) -> Result<VideoReader> {
        let mut child = tool("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-i"])
            .arg(file_arg(&info.path))
            // showinfo prints each frame's presentation time (checksums off: they cost time);
            // the encoder time base follows the input, so no timestamp is rounded onto another.
            .args(["-map", "0:v:0", "-vf", "showinfo=checksum=0", "-fps_mode", "passthrough", "-enc_time_base", "-1"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error("ffmpeg", e))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, times) = channel();
        let log = LogReader::spawn(child.stderr.take().expect("piped"), Some(tx));
        Ok(VideoReader {
            frame_bytes: info.width * info.height * 3,
            info: info.clone(),
            child,
            stdout: Some(stdout),
            log,
            times,
            last_time: None,
            next_index: 0,
            partial_frame: false,
            stopped: false,
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
        frame.timestamp_s = self.next_time();
        self.next_index += 1;
        Ok(Some(frame))
    }

    /// The decoder's presentation time of the frame just read. showinfo prints it before the
    /// frame reaches the pipe, so it has arrived or is on its way; a frame without one (or a
    /// decoder that closed stderr) continues from the last time at the nominal rate.
    fn next_time(&mut self) -> f64 {
        let step = 1.0 / self.info.fps;
        let t = match self.times.recv() {
            // Before the input's start (a negative time) counts as its start.
            Ok(Some(t)) => t.max(0.0),
            _ => self.last_time.map_or(0.0, |l| l + step),
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
