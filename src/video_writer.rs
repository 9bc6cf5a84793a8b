//! Annotated video out: frames piped into an ffmpeg child that encodes H.264 in MP4.
//!
//! Frames go in as a Matroska stream with each frame's own timestamp (`ffmpeg::matroska`), so
//! the output keeps the source's timing, variable frame rates included. The MP4 is fragmented
//! (a fragment at least every second): whatever happens to the run (killed, disk full), the file
//! plays up to its last complete fragment; a run that ends normally finalises it.

use crate::ffmpeg::log::LogReader;
use crate::ffmpeg::{file_arg, matroska, spawn_error, tool};
use crate::frame::Frame;
use anyhow::{bail, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};

/// The encoder's time base (MPEG's 90 kHz clock): source times are kept to 11 microseconds.
const TICKS_PER_S: f64 = 90_000.0;

pub struct VideoWriter {
    path: PathBuf,
    width: usize,
    height: usize,
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    log: LogReader,
    frames: u64,
    last_tick: Option<u64>,
}

impl VideoWriter {
    /// Starts an encoder for `width` x `height` frames into `path`.
    pub fn create(path: &Path, width: usize, height: usize) -> Result<VideoWriter> {
        let mut child = tool("ffmpeg")
            .args(["-hide_banner", "-nostats", "-loglevel", "level+warning", "-y", "-f", "matroska", "-i", "pipe:0"])
            // H.264 4:2:0 needs even sizes; pad by at most one pixel.
            .args(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-fps_mode", "passthrough", "-enc_time_base", "1/90000"])
            // No B-frames: a fragmented MP4 has no edit list to hide their delay, and the first
            // frame must show at the source's first timestamp.
            .args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-bf", "0", "-pix_fmt", "yuv420p"])
            .args(["-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "1000000"])
            .arg(file_arg(path))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error("ffmpeg", e))?;
        let mut stdin = child.stdin.take().map(|s| BufWriter::with_capacity(1 << 20, s));
        let log = LogReader::spawn(child.stderr.take().expect("piped"), None);
        let header = stdin.as_mut().map(|s| s.write_all(&matroska::header(width, height)));
        let mut w = VideoWriter { path: path.to_path_buf(), width, height, child, stdin, log, frames: 0, last_tick: None };
        if let Some(Err(e)) = header {
            return Err(w.died(e));
        }
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds `frame`, shown from `time_s` (seconds from the start of the video; a time at or
    /// before the previous frame's is moved just after it, as MP4 needs).
    pub fn write(&mut self, frame: &Frame, time_s: f64) -> Result<()> {
        if frame.width != self.width || frame.height != self.height {
            bail!("frame is {}x{}, the video is {}x{}", frame.width, frame.height, self.width, self.height);
        }
        let Some(stdin) = self.stdin.as_mut() else { bail!("video writer already finished") };
        let mut tick = if time_s.is_finite() { (time_s.max(0.0) * TICKS_PER_S).round() as u64 } else { 0 };
        if let Some(last) = self.last_tick {
            tick = tick.max(last + 1);
        }
        let time_us = (tick as f64 * 1e6 / TICKS_PER_S).round() as u64;
        if let Err(e) = matroska::write_frame(stdin, time_us, &frame.rgb) {
            return Err(self.died(e));
        }
        self.last_tick = Some(tick);
        self.frames += 1;
        Ok(())
    }

    /// The encoder stopped taking frames: its own message says why.
    fn died(&mut self, e: std::io::Error) -> anyhow::Error {
        self.stdin = None;
        let _ = self.child.wait();
        let reason = self.log.finish().reason().unwrap_or_else(|| e.to_string());
        anyhow::anyhow!("encoding {} failed: {reason}", self.path.display())
    }

    /// Flushes, waits for the encoder, and checks that it succeeded. Returns frames written.
    /// Without any frame there is no video: the encoder is stopped and its file removed.
    pub fn finish(&mut self) -> Result<u64> {
        if self.frames == 0 {
            self.stdin = None;
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = self.log.finish();
            let _ = std::fs::remove_file(&self.path);
            return Ok(0);
        }
        let flushed = match self.stdin.take() {
            Some(mut s) => s.flush().map_err(|e| e.to_string()),
            None => Ok(()),
        };
        let status = self.child.wait();
        let log = self.log.finish();
        let reason = log.reason();
        match (status, flushed) {
            (Ok(s), Ok(())) if s.success() && log.error_count == 0 => Ok(self.frames),
            (Ok(s), flushed) => bail!(
                "encoding {} failed ({s}): {}",
                self.path.display(),
                reason.or(flushed.err()).unwrap_or_default()
            ),
            (Err(e), _) => bail!("encoding {} failed: {e}", self.path.display()),
        }
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        // Closing stdin lets the encoder finish a playable file even on an error path.
        if self.stdin.take().is_some() {
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: u8) -> Frame {
        Frame::new(33, 20, vec![v; 33 * 20 * 3]).unwrap()
    }

    /// Presentation times of a video's frames, by ffprobe.
    fn probe_times(path: &Path) -> Vec<f64> {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().trim_end_matches(',').parse().ok()).collect()
    }

    /// Variable timing goes through unchanged (to the 90 kHz clock); repeated or backwards
    /// times are moved just after the previous frame.
    #[test]
    fn frames_keep_their_times() {
        let dir = std::env::temp_dir().join(format!("edgesight-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("-vfr.mp4");
        let times = [0.0, 0.1, 0.2, 0.3, 1.0, 1.0333, 1.0667, 1.1, 1.1, 1.05, 2.5];
        let mut w = VideoWriter::create(&path, 33, 20).unwrap();
        for (i, t) in times.iter().enumerate() {
            w.write(&frame(i as u8 * 20), *t).unwrap();
        }
        assert_eq!(w.finish().unwrap(), times.len() as u64);
        let got = probe_times(&path);
        assert_eq!(got.len(), times.len(), "{got:?}");
        let tick = 1.0 / TICKS_PER_S;
        let expected = [0.0, 0.1, 0.2, 0.3, 1.0, 1.0333, 1.0667, 1.1, 1.1 + tick, 1.1 + 2.0 * tick, 2.5];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 2e-5, "{got:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_encoder_that_cannot_write_says_so() {
        let mut w = VideoWriter::create(Path::new("/nonexistent-dir/x.mp4"), 33, 20).unwrap();
        let mut err = None;
        for i in 0..50 {
            if let Err(e) = w.write(&frame(1), i as f64 * 0.04) {
                err = Some(e);
                break;
            }
        }
        let err = err.or_else(|| w.finish().err()).expect("an error");
        assert!(err.to_string().contains("/nonexistent-dir/x.mp4"), "{err}");
    }
}
