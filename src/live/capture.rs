//! The capture thread: frames from a camera (desktop: nokhwa, the platform's native backend;
//! Android: the app's Camera2 backend through [`run_with`]) or from a video file played as a
//! camera (at the file's own frame rate, looping). It never waits for anyone: each frame is
//! published to the display watch and to the inference slots, where it replaces a frame nobody
//! took yet.
//!
//! Failures (no camera, camera busy, camera unplugged, unreadable file) become a status message
//! the window shows; the thread then retries every second, so replugging a camera recovers
//! without restarting the program.

use super::{Captured, Shared, SourceInfo};
use crate::frame::Frame;
use crate::video_source::{self, VideoReader};
use anyhow::{bail, Result};
#[cfg(feature = "desktop")]
use anyhow::{anyhow, Context};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// A video file, played at its frame rate and looped.
    File(PathBuf),
    /// A camera by index (0 is the first), asking for the resolution closest to this.
    Camera { index: u32, width: u32, height: u32 },
}

impl SourceSpec {
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::File(p) => format!("file {}", p.display()),
            SourceSpec::Camera { index, width, height } => format!("camera {index} ({width}x{height} requested)"),
        }
    }
}

/// A camera the system lists.
#[derive(Debug, Clone)]
pub struct CameraEntry {
    pub index: u32,
    pub name: String,
}

/// Cameras the native backend lists (empty when there are none or listing fails).
#[cfg(feature = "desktop")]
pub fn list_cameras() -> Result<Vec<CameraEntry>> {
    let cams = nokhwa::query(nokhwa::utils::ApiBackend::Auto).map_err(|e| anyhow!("cannot list cameras: {e}"))?;
    Ok(cams
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let index = match c.index() {
                nokhwa::utils::CameraIndex::Index(n) => *n,
                _ => i as u32,
            };
            CameraEntry { index, name: c.human_name() }
        })
        .collect())
}

/// Runs until `shared.stop` with this build's camera backend (see [`run_with`]).
pub fn run(shared: Arc<Shared>) {
    run_with(shared, run_camera)
}

/// Runs until `shared.stop`: (re)opens the current source, publishes its frames, and turns every
/// failure into a status message followed by a retry. `camera(shared, generation, index, width,
/// height)` opens a camera and publishes its frames until [`leave`] says so; it returns an error
/// (shown to the user, then retried) when the camera cannot be opened or stops.
pub fn run_with(shared: Arc<Shared>, camera: impl Fn(&Shared, u64, u32, u32, u32) -> Result<()>) {
    while !shared.stopping() {
        let (generation, spec) = shared.source();
        let outcome = match &spec {
            SourceSpec::File(path) => play_file(&shared, generation, path),
            SourceSpec::Camera { index, width, height } => camera(&shared, generation, *index, *width, *height),
        };
        if let Err(e) = outcome {
            shared.set_source_error(Some(format!("{}: {e:#}", spec.describe())));
            // Retry after a second, at once if the user picked another source.
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(1) && !shared.stopping() && shared.source().0 == generation {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// True when the thread should drop the current source (stop, or another source was picked).
pub fn leave(shared: &Shared, generation: u64) -> bool {
    shared.stopping() || shared.source_generation.load(Ordering::SeqCst) != generation
}

fn play_file(shared: &Shared, generation: u64, path: &Path) -> Result<()> {
    let info = video_source::probe(path)?;
    let fps = if info.fps.is_finite() && info.fps > 0.0 { info.fps } else { 25.0 };
    shared.set_source_info(SourceInfo {
        description: format!("{} (looping at {fps:.3} fps)", path.display()),
        width: info.width,
        height: info.height,
        fps,
        frame_rate: if info.frame_rate.contains('/') { info.frame_rate.clone() } else { format!("{fps}") },
    });
    let period = 1.0 / fps;
    // Frames are shown at their presentation times (variable frame rates too), on one clock
    // across passes so looping does not change the rate: `anchor` is the wall time at which
    // media time `anchor.1` shows; `base` is the media time of this pass's first frame.
    let mut anchor: Option<(Instant, f64)> = None;
    let mut base = 0.0;
    loop {
        let mut reader = VideoReader::open(&info)?;
        let mut n: u32 = 0;
        let mut first: Option<f64> = None;
        let mut last = base;
        while let Some(frame) = reader.next_frame()? {
            let media = base + (frame.timestamp_s - *first.get_or_insert(frame.timestamp_s)).max(0.0);
            let (wall0, media0) = *anchor.get_or_insert((Instant::now(), media));
            let due_now = wall0 + Duration::from_secs_f64((media - media0).max(0.0));
            loop {
                if leave(shared, generation) {
                    return Ok(());
                }
                let now = Instant::now();
                if now >= due_now {
                    break;
                }
                std::thread::sleep((due_now - now).min(Duration::from_millis(20)));
            }
            shared.publish_frame(frame);
            n += 1;
            last = media;
            // After a stall, go on from now rather than catching up.
            if Instant::now() > due_now + Duration::from_secs_f64(period) {
                anchor = Some((Instant::now(), media));
            }
        }
        base = last + period;
        let end = reader.finish();
        if n == 0 {
            bail!("no frame could be decoded{}", end.message.map(|m| format!(" ({m})")).unwrap_or_default());
        }
        if leave(shared, generation) {
            return Ok(());
        }
    }
}

#[cfg(not(feature = "desktop"))]
fn run_camera(_: &Shared, _: u64, index: u32, _: u32, _: u32) -> Result<()> {
    bail!("camera {index}: this build has no camera backend (the `desktop` feature adds it; the Android app brings its own)")
}

#[cfg(feature = "desktop")]
fn run_camera(shared: &Shared, generation: u64, index: u32, width: u32, height: u32) -> Result<()> {
    use nokhwa::pixel_format::RgbFormat;
    use nokhwa::utils::{CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution};
    let cams = list_cameras()?;
    if cams.is_empty() {
        bail!("no camera found; connect one (it is picked up within a second) or play a video file with --source FILE");
    }
    if !cams.iter().any(|c| c.index == index) {
        let names: Vec<String> = cams.iter().map(|c| format!("{} ({})", c.index, c.name)).collect();
        bail!("camera {index} is not connected; cameras: {}", names.join(", "));
    }
    let wanted = CameraFormat::new(Resolution::new(width, height), FrameFormat::MJPEG, 30);
    let mut cam = nokhwa::Camera::new(CameraIndex::Index(index), RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(wanted)))
        .map_err(|e| anyhow!("cannot open camera {index}: {e} (is another program using it?)"))?;
    cam.open_stream().map_err(|e| anyhow!("cannot start camera {index}: {e} (is another program using it?)"))?;
    let format = cam.camera_format();
    shared.set_source_info(SourceInfo {
        description: format!("camera {index}: {} {}x{} {} @ {} fps", cam.info().human_name(), format.width(), format.height(), format.format(), format.frame_rate()),
        width: format.width() as usize,
        height: format.height() as usize,
        fps: format.frame_rate().max(1) as f64,
        frame_rate: format!("{}/1", format.frame_rate().max(1)),
    });
    while !leave(shared, generation) {
        let buffer = cam.frame().map_err(|e| anyhow!("camera {index} stopped delivering frames: {e} (unplugged?)"))?;
        let frame = to_frame(&buffer).context("camera frame")?;
        shared.publish_frame(frame);
    }
    let _ = cam.stop_stream();
    Ok(())
}

/// Camera buffer (MJPEG, YUYV, NV12, grey, RGB, BGR) -> RGB frame.
#[cfg(feature = "desktop")]
fn to_frame(buffer: &nokhwa::Buffer) -> Result<Frame> {
    use nokhwa::utils::FrameFormat;
    let res = buffer.resolution();
    let (w, h) = (res.width() as usize, res.height() as usize);
    let data = buffer.buffer();
    let rgb = match buffer.source_frame_format() {
        FrameFormat::MJPEG => {
            let img = image::load_from_memory_with_format(data, image::ImageFormat::Jpeg).context("corrupt MJPEG frame")?.into_rgb8();
            return Frame::new(img.width() as usize, img.height() as usize, img.into_raw());
        }
        FrameFormat::YUYV => nokhwa::utils::yuyv422_to_rgb(data, false).map_err(|e| anyhow!("{e}"))?,
        FrameFormat::NV12 => {
            let mut out = vec![0u8; w * h * 3];
            nokhwa::utils::buf_nv12_to_rgb(res, data, &mut out, false).map_err(|e| anyhow!("{e}"))?;
            out
        }
        FrameFormat::GRAY => data.iter().flat_map(|&g| [g, g, g]).collect(),
        FrameFormat::RAWRGB => data.to_vec(),
        FrameFormat::RAWBGR => data.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect(),
    };
    if rgb.len() < w * h * 3 {
        bail!("camera frame has {} bytes, expected {}", rgb.len(), w * h * 3);
    }
    let mut rgb = rgb;
    rgb.truncate(w * h * 3);
    Frame::new(w, h, rgb)
}

/// A frame stamped with its capture time and a sequence number across the whole run.
pub fn stamp(frame: Frame, seq: u64) -> Captured {
    Captured { frame, seq, at: Instant::now() }
}

#[cfg(all(test, feature = "desktop"))]
mod tests {
    use super::*;
    use nokhwa::utils::{FrameFormat, Resolution};

    #[test]
    fn camera_buffers_become_rgb_frames() {
        let res = Resolution::new(2, 1);
        let bgr = nokhwa::Buffer::new(res, &[1, 2, 3, 4, 5, 6], FrameFormat::RAWBGR);
        assert_eq!(to_frame(&bgr).unwrap().rgb, vec![3, 2, 1, 6, 5, 4]);
        let grey = nokhwa::Buffer::new(res, &[7, 9], FrameFormat::GRAY);
        assert_eq!(to_frame(&grey).unwrap().rgb, vec![7, 7, 7, 9, 9, 9]);
        // YUYV: one pair of pixels; mid-grey stays grey.
        let yuyv = nokhwa::Buffer::new(res, &[128, 128, 128, 128], FrameFormat::YUYV);
        let f = to_frame(&yuyv).unwrap();
        assert_eq!((f.width, f.height), (2, 1));
        assert!(f.rgb.iter().all(|&v| (120..=136).contains(&v)), "{:?}", f.rgb);
        // A short buffer is an error, not a panic.
        let short = nokhwa::Buffer::new(res, &[1, 2, 3], FrameFormat::RAWRGB);
        assert!(to_frame(&short).is_err());
        let bad_jpeg = nokhwa::Buffer::new(res, &[0xff, 0xd8, 0], FrameFormat::MJPEG);
        assert!(to_frame(&bad_jpeg).is_err());
    }
}
