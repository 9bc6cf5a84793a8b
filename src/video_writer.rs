//! Annotated video out: raw RGB frames piped into an ffmpeg child that encodes H.264 in MP4.

use crate::frame::Frame;
use crate::video_source::{drain, spawn_error, strip_component, tool};
use anyhow::{bail, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub struct VideoWriter {
    path: PathBuf,
    width: usize,
    height: usize,
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
    frames: u64,
}

impl VideoWriter {
    /// Starts an encoder for `width` x `height` frames at `frame_rate` (an ffmpeg rate, "10/1").
    pub fn create(path: &Path, width: usize, height: usize, frame_rate: &str) -> Result<VideoWriter> {
        let mut child = tool("ffmpeg")
            .args(["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"])
            .args(["-s", &format!("{width}x{height}"), "-framerate", frame_rate, "-i", "pipe:0"])
            // H.264 4:2:0 needs even sizes; pad by at most one pixel.
            .args(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-fps_mode", "passthrough"])
            .args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"])
            .args(["-movflags", "+faststart"])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error("ffmpeg", e))?;
        let stdin = child.stdin.take().map(|s| BufWriter::with_capacity(1 << 20, s));
        let (stderr, t) = drain(child.stderr.take().expect("piped"));
        Ok(VideoWriter {
            path: path.to_path_buf(),
            width,
            height,
            child,
            stdin,
            stderr,
            stderr_thread: Some(t),
            frames: 0,
        })
    }

    pub fn write(&mut self, frame: &Frame) -> Result<()> {
        if frame.width != self.width || frame.height != self.height {
            bail!("frame is {}x{}, the video is {}x{}", frame.width, frame.height, self.width, self.height);
        }
        let Some(stdin) = self.stdin.as_mut() else { bail!("video writer already finished") };
        if let Err(e) = stdin.write_all(&frame.rgb) {
            // The encoder died; its own message says why.
            self.stdin = None;
            let _ = self.child.wait();
            if let Some(t) = self.stderr_thread.take() {
                let _ = t.join();
            }
            bail!("encoding {} failed: {}", self.path.display(), self.encoder_message().unwrap_or_else(|| e.to_string()));
        }
        self.frames += 1;
        Ok(())
    }

    /// Flushes, waits for the encoder, and checks that it succeeded. Returns frames written.
    pub fn finish(&mut self) -> Result<u64> {
        let flushed = match self.stdin.take() {
            Some(mut s) => s.flush().map_err(|e| e.to_string()),
            None => Ok(()),
        };
        let status = self.child.wait();
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        let msg = self.encoder_message();
        match (status, flushed) {
            (Ok(s), Ok(())) if s.success() => Ok(self.frames),
            (Ok(s), _) => bail!("encoding {} failed ({s}): {}", self.path.display(), msg.unwrap_or_default()),
            (Err(e), _) => bail!("encoding {} failed: {e}", self.path.display()),
        }
    }

    fn encoder_message(&self) -> Option<String> {
        let s = self.stderr.lock().ok()?;
        let line = s.lines().map(str::trim).rfind(|l| !l.is_empty())?;
        Some(strip_component(line).to_string())
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        // Closing stdin lets the encoder write a playable file even on an error path.
        if self.stdin.take().is_some() {
            let _ = self.child.wait();
        }
    }
}
