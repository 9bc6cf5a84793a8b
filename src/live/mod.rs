//! `edgesight live`: the desktop demo. Frames from a camera (or a video file played as one) are
//! shown in a window with the newest pose and segmentation results drawn over them, a HUD of
//! rates and latencies, and controls.
//!
//! The window (`ui`), desktop cameras and `run` need the `desktop` feature; the rest (shared
//! state, slots, workers, HUD figures, the capture loop) is platform-neutral and is what the
//! Android app (`android/`) drives with its own camera and window.
//!
//! Threads (see ARCHITECTURE.md):
//!
//! ```text
//! capture (capture.rs) --Watch (newest)--------------------------------> UI (ui.rs, eframe)
//!                      --Slot (latest wins)--> pose worker  --Watch-->  composes frame + newest
//!                      --Slot (latest wins)--> seg worker   --Watch-->  results with render::draw
//! ```
//!
//! Nobody waits for a slower stage: the capture thread replaces frames inference has not taken,
//! the workers run concurrently at their own pace, and the UI draws every new frame with the
//! newest results and shows how old they are.

pub mod capture;
pub mod compose;
pub mod hud;
#[cfg(feature = "panels")]
pub mod panels;
pub mod slot;
#[cfg(feature = "desktop")]
pub mod ui;
pub mod worker;

use crate::frame::Frame;
use crate::render::Style;
use anyhow::{bail, Result};
use capture::SourceSpec;
use slot::{Slot, Watch};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use worker::{Kind, ModelResult, WorkerConfig};

/// A frame as captured: the picture, a sequence number over the whole run, the capture time.
#[derive(Debug)]
pub struct Captured {
    pub frame: Frame,
    pub seq: u64,
    pub at: Instant,
}

/// What the current source delivers.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub description: String,
    pub width: usize,
    pub height: usize,
    pub fps: f64,
    /// ffmpeg rate for recordings, e.g. "10/1".
    pub frame_rate: String,
}

/// Timing events the HUD collects from the other threads (so it misses none).
#[derive(Debug, Clone, Copy)]
pub enum Event {
    Captured(Instant),
    Result { kind: Kind, wait: Duration, times: crate::session::StageTimes, finished: Instant },
}

/// State shared by the capture thread, the workers and the UI.
pub struct Shared {
    stop: AtomicBool,
    pub paused: AtomicBool,
    source_spec: Mutex<SourceSpec>,
    pub source_generation: AtomicU64,
    source_info: Mutex<Option<SourceInfo>>,
    source_error: Mutex<Option<String>>,
    next_seq: AtomicU64,
    pub frames: Watch<Captured>,
    pub pose_in: Slot<Arc<Captured>>,
    pub seg_in: Slot<Arc<Captured>>,
    pub pose_out: Watch<ModelResult>,
    pub seg_out: Watch<ModelResult>,
    configs: Mutex<[WorkerConfig; 2]>,
    /// Per worker: a message for the window, and whether it is a failure (not just loading).
    worker_status: Mutex<[(Option<String>, bool); 2]>,
    events: Mutex<Vec<Event>>,
    /// Asks the window to redraw (a closure, so the pipeline does not depend on a UI toolkit).
    repaint: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(source: SourceSpec, pose: WorkerConfig, seg: WorkerConfig) -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            source_spec: Mutex::new(source),
            source_generation: AtomicU64::new(1),
            source_info: Mutex::new(None),
            source_error: Mutex::new(None),
            next_seq: AtomicU64::new(1),
            frames: Watch::new(),
            pose_in: Slot::new(),
            seg_in: Slot::new(),
            pose_out: Watch::new(),
            seg_out: Watch::new(),
            configs: Mutex::new([pose, seg]),
            worker_status: Mutex::new([(None, false), (None, false)]),
            events: Mutex::new(Vec::new()),
            repaint: Mutex::new(None),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.pose_in.close();
        self.seg_in.close();
    }

    pub fn source(&self) -> (u64, SourceSpec) {
        let spec = lock(&self.source_spec).clone();
        (self.source_generation.load(Ordering::SeqCst), spec)
    }

    pub fn set_source(&self, spec: SourceSpec) {
        let mut s = lock(&self.source_spec);
        if *s != spec {
            *s = spec;
            *lock(&self.source_info) = None;
            self.source_generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn source_info(&self) -> Option<SourceInfo> {
        lock(&self.source_info).clone()
    }

    pub fn set_source_info(&self, info: SourceInfo) {
        *lock(&self.source_info) = Some(info);
    }

    pub fn source_error(&self) -> Option<String> {
        lock(&self.source_error).clone()
    }

    pub fn set_source_error(&self, e: Option<String>) {
        let mut current = lock(&self.source_error);
        if let Some(m) = &e {
            if current.as_ref() != Some(m) {
                eprintln!("edgesight live: {m}");
            }
        }
        *current = e;
        drop(current);
        self.repaint();
    }

    /// Called by the capture thread for each frame.
    pub fn publish_frame(&self, frame: Frame) {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let captured = Arc::new(capture::stamp(frame, seq));
        self.frames.publish(captured.clone());
        if !self.paused.load(Ordering::SeqCst) {
            self.pose_in.put(captured.clone());
            self.seg_in.put(captured.clone());
        }
        self.push_event(Event::Captured(captured.at));
        let mut err = lock(&self.source_error);
        if err.is_some() {
            *err = None;
        }
        drop(err);
        self.repaint();
    }

    pub fn config(&self, kind: Kind) -> WorkerConfig {
        lock(&self.configs)[kind as usize].clone()
    }

    pub fn set_config(&self, kind: Kind, c: WorkerConfig) {
        lock(&self.configs)[kind as usize] = c;
    }

    pub fn worker_status(&self, kind: Kind) -> Option<String> {
        lock(&self.worker_status)[kind as usize].0.clone()
    }

    /// True when the worker's model failed to load or to run on the last frame.
    pub fn worker_failed(&self, kind: Kind) -> bool {
        lock(&self.worker_status)[kind as usize].1
    }

    pub fn set_worker_status(&self, kind: Kind, s: Option<String>, failed: bool) {
        let mut st = lock(&self.worker_status);
        if failed && st[kind as usize].0 != s {
            if let Some(m) = &s {
                eprintln!("edgesight live: {m}");
            }
        }
        st[kind as usize] = (s, failed);
        drop(st);
        self.repaint();
    }

    pub fn push_event(&self, e: Event) {
        let mut v = lock(&self.events);
        // Bounded even when no UI drains it.
        if v.len() < 100_000 {
            v.push(e);
        }
    }

    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *lock(&self.events))
    }

    /// Installs what wakes the UI when a frame, result or message arrives.
    pub fn set_repaint(&self, request_repaint: impl Fn() + Send + Sync + 'static) {
        *lock(&self.repaint) = Some(Box::new(request_repaint));
    }

    pub fn repaint(&self) {
        if let Some(request_repaint) = lock(&self.repaint).as_ref() {
            request_repaint();
        }
    }
}

/// Everything `edgesight live` was asked for on the command line.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub source: SourceSpec,
    pub pose: WorkerConfig,
    pub seg: WorkerConfig,
    pub style: Style,
    /// Quit after this many source frames were shown.
    pub frames: Option<u64>,
    /// At the end (with --frames) or on close: the window's image region as PNG.
    pub screenshot: Option<PathBuf>,
    /// Likewise, the whole window.
    pub window_screenshot: Option<PathBuf>,
    /// HUD figures as JSON, written on exit.
    pub stats: Option<PathBuf>,
    /// Record the shown frames (with overlay) to this MP4 from the start.
    pub record: Option<PathBuf>,
    /// A `--frames` run fails when no new frame arrives for this long (no camera, a stalled or
    /// empty source), rather than waiting forever.
    pub source_timeout: Duration,
}

/// Says why no window can be opened, before trying (a clear message rather than a backend error).
pub fn check_display() -> Result<()> {
    let has = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    if cfg!(target_os = "linux") && !has("DISPLAY") && !has("WAYLAND_DISPLAY") {
        bail!(
            "no display: live mode needs a desktop session (DISPLAY is not set). On a machine without one, \
             run it under Xvfb (xvfb-run -a edgesight live ...) or use `edgesight video` for headless processing"
        );
    }
    Ok(())
}

/// Runs the live demo until the window closes (or `--frames` are shown).
#[cfg(feature = "desktop")]
pub fn run(opts: LiveOptions) -> Result<()> {
    use anyhow::anyhow;
    check_display()?;
    if let SourceSpec::File(p) = &opts.source {
        // Fail before opening a window when the file cannot be played at all.
        crate::video_source::probe(p)?;
    }
    let shared = Arc::new(Shared::new(opts.source.clone(), opts.pose.clone(), opts.seg.clone()));
    let mut threads = Vec::new();
    {
        let s = shared.clone();
        threads.push(std::thread::Builder::new().name("capture".into()).spawn(move || capture::run(s))?);
    }
    threads.extend(spawn_workers(&shared)?);
    let outcome = ui::run_window(shared.clone(), &opts);
    shared.request_stop();
    join_within(threads, Duration::from_secs(3));
    match outcome {
        Ok(None) => Ok(()),
        Ok(Some(problem)) => Err(anyhow!(problem)),
        Err(e) => Err(e),
    }
}

/// Starts the pose and segmentation workers (they run until `Shared::request_stop`).
pub fn spawn_workers(shared: &Arc<Shared>) -> Result<Vec<std::thread::JoinHandle<()>>> {
    let mut threads = Vec::new();
    for kind in [Kind::Pose, Kind::Seg] {
        let s = shared.clone();
        threads.push(std::thread::Builder::new().name(format!("{kind:?} worker")).spawn(move || worker::run(s, kind))?);
    }
    Ok(threads)
}

/// Joins threads told to stop (`Shared::request_stop`), waiting at most `limit`: they notice the
/// stop within a frame or an inference, but a camera driver stuck in a read must not keep the
/// program alive, so a thread still running then is left behind.
pub fn join_within(threads: Vec<std::thread::JoinHandle<()>>, limit: Duration) {
    let t = Instant::now();
    while !threads.iter().all(|t| t.is_finished()) && t.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
    for t in threads.into_iter().filter(|t| t.is_finished()) {
        let _ = t.join();
    }
}
