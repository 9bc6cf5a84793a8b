//! The desktop window (eframe, wgpu renderer): the newest frame with the newest results drawn
//! over it by the shared renderer (`render::draw`, the same as headless output; the composition
//! step is `live::compose`, shared with the Android app), a HUD, and controls (source, camera
//! size, models, backend: tract on the CPU or the wgpu compute shaders, thresholds, pause,
//! screenshot, record). The HUD grid and the controls both windows have are `live::panels`.
//!
//! The frame is shown at one screen pixel per frame pixel when it fits, so a screenshot of the
//! image region has the frame's size. Screenshots are read back from the window itself
//! (`ViewportCommand::Screenshot`), not re-rendered.

use super::capture::{self, CameraEntry, SourceSpec};
use super::compose::{self, Composer, ShownFrames};
use super::hud::HudFigures;
use super::panels::{self, BannerSize, Models, Row};
use super::worker::{Kind, ModelResult};
use super::{LiveOptions, Shared};
use crate::frame::Frame;
use crate::render::{self, Style};
use crate::video_writer::VideoWriter;
use anyhow::{anyhow, Result};
use eframe::egui::{self, Color32, ColorImage, RichText, TextureHandle, TextureOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PANEL_WIDTH: f32 = 340.0;
const RESOLUTIONS: [(u32, u32); 4] = [(640, 480), (1280, 720), (1920, 1080), (320, 240)];
const BANNER: BannerSize = BannerSize { font: 18.0, margin: 20.0, padding: 10.0, rounding: 6.0 };
/// The HUD's latency rows: every stage from capture to screen.
const HUD_ROWS: [Row; 6] = [
    ("capture -> start", |s| s.wait),
    ("preprocess", |s| s.preprocess),
    ("inference", |s| s.inference),
    ("decode", |s| s.decode),
    ("result -> screen", |s| s.to_screen),
    ("capture -> screen", |s| s.e2e),
];

/// Opens the window and runs until it closes. Ok(Some(problem)) when the run ended but did not
/// do what was asked (e.g. the screenshot could not be taken).
pub fn run_window(shared: Arc<Shared>, opts: &LiveOptions) -> Result<Option<String>> {
    let (w, h) = match &opts.source {
        SourceSpec::File(p) => {
            let info = crate::video_source::probe(p)?;
            (info.width as f32, info.height as f32)
        }
        SourceSpec::Camera { width, height, .. } => (*width as f32, *height as f32),
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("edgesight live")
            .with_inner_size([w + PANEL_WIDTH, h.max(720.0)]),
        // Never let the display's refresh pace the UI thread.
        vsync: false,
        ..Default::default()
    };
    let problem = Arc::new(std::sync::Mutex::new(None::<String>));
    let app_problem = problem.clone();
    let opts = opts.clone();
    let result = eframe::run_native(
        "edgesight live",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            shared.set_repaint(move || ctx.request_repaint());
            Ok(Box::new(LiveApp::new(shared, opts, app_problem)))
        }),
    );
    result.map_err(|e| anyhow!("cannot open the live window: {e}"))?;
    let p = problem.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(p)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ShotPurpose {
    /// The final screenshot of a `--frames` run (or of `--screenshot` on close).
    Final,
    /// The Screenshot button.
    Button,
}

struct Recorder {
    path: PathBuf,
    /// Frames with their time since the recording started: the video plays what was shown when.
    tx: Option<SyncSender<(Frame, f64)>>,
    started: Instant,
    thread: Option<JoinHandle<Result<u64>>>,
    size: (usize, usize),
    dropped: u64,
}

impl Recorder {
    fn start(path: &Path, width: usize, height: usize) -> Result<Recorder> {
        let mut writer = VideoWriter::create(path, width, height)?;
        // A few frames of slack; when the encoder falls behind, frames are dropped, the UI never waits.
        let (tx, rx) = sync_channel::<(Frame, f64)>(8);
        let thread = std::thread::Builder::new().name("recorder".into()).spawn(move || -> Result<u64> {
            for (f, t) in rx {
                writer.write(&f, t)?;
            }
            writer.finish()
        })?;
        Ok(Recorder { path: path.to_path_buf(), tx: Some(tx), started: Instant::now(), thread: Some(thread), size: (width, height), dropped: 0 })
    }

    fn push(&mut self, f: &Frame) {
        if let Some(tx) = &self.tx {
            match tx.try_send((f.clone(), self.started.elapsed().as_secs_f64())) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => self.dropped += 1,
                Err(TrySendError::Disconnected(_)) => self.tx = None,
            }
        }
    }

    fn finish(mut self) -> Result<String> {
        self.tx = None;
        let n = match self.thread.take() {
            Some(t) => t.join().map_err(|_| anyhow!("the recorder thread panicked"))??,
            None => 0,
        };
        Ok(format!("recorded {n} frames to {} ({} dropped)", self.path.display(), self.dropped))
    }
}

struct LiveApp {
    shared: Arc<Shared>,
    opts: LiveOptions,
    problem: Arc<std::sync::Mutex<Option<String>>>,
    /// The composed picture, what is on screen, the HUD figures.
    composer: Composer,
    texture: Option<TextureHandle>,
    started: Instant,
    limit_reached_at: Option<Instant>,
    /// Frames shown so far and when that count last grew (the `--frames` source timeout).
    last_frame: (u64, Instant),
    /// Set once the run is ending: no more updates to the image (so the screenshot shows it).
    frozen: bool,
    shots: Vec<(ShotPurpose, Instant)>,
    shot_rect_px: Option<[usize; 4]>,
    closing: bool,
    recorder: Option<Recorder>,
    record_pending: bool,
    record_path: String,
    message: Option<String>,
    cameras: Vec<CameraEntry>,
    camera_error: Option<String>,
    resolution: (u32, u32),
    models: Models,
}

fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl LiveApp {
    fn new(shared: Arc<Shared>, opts: LiveOptions, problem: Arc<std::sync::Mutex<Option<String>>>) -> LiveApp {
        let resolution = match &opts.source {
            SourceSpec::Camera { width, height, .. } => (*width, *height),
            SourceSpec::File(_) => (1280, 720),
        };
        let mut app = LiveApp {
            composer: Composer::new(opts.style),
            texture: None,
            started: Instant::now(),
            limit_reached_at: None,
            last_frame: (0, Instant::now()),
            frozen: false,
            shots: Vec::new(),
            shot_rect_px: None,
            closing: false,
            recorder: None,
            record_pending: opts.record.is_some(),
            record_path: opts.record.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| format!("edgesight-{}.mp4", unix_secs())),
            message: None,
            cameras: Vec::new(),
            camera_error: None,
            resolution,
            models: Models::installed(),
            shared,
            opts,
            problem,
        };
        app.rescan_cameras();
        app
    }

    fn rescan_cameras(&mut self) {
        match capture::list_cameras() {
            Ok(c) => {
                self.camera_error = c.is_empty().then(|| "no camera found".to_string());
                self.cameras = c;
            }
            Err(e) => {
                self.cameras.clear();
                self.camera_error = Some(format!("{e:#}"));
            }
        }
    }

    fn fail(&self, p: String) {
        let mut g = self.problem.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(p);
        }
    }

    /// Composes the newest frame with the newest results when anything changed (nothing once
    /// the run is ending, so the final screenshot shows what was composed last), uploads it,
    /// and feeds the recording and the window size.
    fn compose(&mut self, ctx: &egui::Context) {
        let texture = &mut self.texture;
        let shown = self.composer.compose(&self.shared, self.frozen, |image| panels::upload(ctx, texture, image, TextureOptions::NEAREST));
        let Some(shown) = shown else { return };
        if self.record_pending {
            // --record: from the first frame on.
            self.record_pending = false;
            if let Err(e) = self.start_recording() {
                // Asked for on the command line: the run fails, it does not carry on unrecorded.
                self.fail(e);
                self.close(ctx);
                return;
            }
        }
        let Some(image) = self.composer.image() else { return };
        let size = (image.width, image.height);
        if shown.new_frame {
            if let Some(r) = &mut self.recorder {
                if r.size == size {
                    r.push(image);
                } else {
                    let _ = self.stop_recording();
                    self.message = Some("recording stopped: the frame size changed".into());
                }
            }
        }
        if shown.resized {
            // The source changed size: fit the window to it.
            let ppp = ctx.pixels_per_point();
            ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(egui::vec2(
                size.0 as f32 / ppp + PANEL_WIDTH,
                (size.1 as f32 / ppp).max(720.0),
            )));
        }
    }

    /// Ends the recording; Err (also shown as the message) when the encoder failed.
    fn stop_recording(&mut self) -> Result<(), String> {
        let Some(r) = self.recorder.take() else { return Ok(()) };
        let outcome = r.finish().map_err(|e| format!("recording failed: {e:#}"));
        self.message = Some(outcome.clone().unwrap_or_else(|e| e));
        outcome.map(|_| ())
    }

    /// Starts recording the composed frames; Err (also shown as the message) when it cannot.
    fn start_recording(&mut self) -> Result<(), String> {
        let Some(f) = self.composer.image() else {
            self.message = Some("nothing to record yet".into());
            return Ok(());
        };
        match Recorder::start(Path::new(&self.record_path), f.width, f.height) {
            Ok(r) => {
                self.message = Some(format!("recording to {}", self.record_path));
                self.recorder = Some(r);
                Ok(())
            }
            Err(e) => {
                let m = format!("cannot record to {}: {e:#}", self.record_path);
                self.message = Some(m.clone());
                Err(m)
            }
        }
    }

    fn request_shot(&mut self, ctx: &egui::Context, purpose: ShotPurpose) {
        self.shots.push((purpose, Instant::now()));
        ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(egui::UserData::default()));
    }

    /// Screenshots read back from the window.
    fn handle_shots(&mut self, ctx: &egui::Context) {
        let images: Vec<Arc<ColorImage>> = ctx.input(|i| {
            i.raw
                .events
                .iter()
                .filter_map(|e| match e {
                    egui::Event::Screenshot { image, .. } => Some(image.clone()),
                    _ => None,
                })
                .collect()
        });
        for image in images {
            if self.shots.is_empty() {
                break;
            }
            let (purpose, _) = self.shots.remove(0);
            match purpose {
                ShotPurpose::Button => {
                    let path = PathBuf::from(format!("edgesight-{}.png", unix_secs()));
                    self.message = Some(match self.save_region(&image, &path) {
                        Ok(()) => format!("saved {}", path.display()),
                        Err(e) => format!("screenshot failed: {e:#}"),
                    });
                }
                ShotPurpose::Final => {
                    if let Some(p) = self.opts.screenshot.clone() {
                        if let Err(e) = self.save_region(&image, &p) {
                            self.fail(format!("screenshot: {e:#}"));
                        }
                    }
                    if let Some(p) = self.opts.window_screenshot.clone() {
                        if let Err(e) = save_color_image(&image, [0, 0, image.size[0], image.size[1]], &p) {
                            self.fail(format!("window screenshot: {e:#}"));
                        }
                    }
                    self.close(ctx);
                }
            }
        }
        // A screenshot that never comes must not hang a scripted run.
        if let Some((ShotPurpose::Final, t)) = self.shots.first() {
            if t.elapsed() > Duration::from_secs(10) {
                self.fail("the window did not deliver a screenshot within 10 s".into());
                self.shots.clear();
                self.close(ctx);
            }
        }
    }

    fn save_region(&self, image: &ColorImage, path: &Path) -> Result<()> {
        let rect = self.shot_rect_px.ok_or_else(|| anyhow!("no frame was on screen"))?;
        save_color_image(image, rect, path)
    }

    /// Ends the run: stats, recording, window.
    fn close(&mut self, ctx: &egui::Context) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.frozen = true;
        if let Err(e) = self.stop_recording() {
            self.fail(e);
        }
        if let Some(m) = &self.message {
            eprintln!("{m}");
        }
        let run = self.composer.hud.run();
        let wall = self.started.elapsed().as_secs_f64();
        print_summary(&run, wall);
        if let Some(path) = self.opts.stats.clone() {
            let report = StatsFile {
                source: self.shared.source_info().map(|i| i.description).unwrap_or_default(),
                wall_time_s: wall,
                run,
                window: self.composer.hud.window(Instant::now()),
                shown: self.composer.shown().clone(),
                screenshot: self.opts.screenshot.as_ref().map(|p| p.display().to_string()),
            };
            let written = serde_json::to_vec_pretty(&report)
                .map_err(anyhow::Error::from)
                .and_then(|b| std::fs::write(&path, b).map_err(|e| anyhow!("cannot write {}: {e}", path.display())));
            if let Err(e) = written {
                self.fail(format!("{e:#}"));
            }
        }
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }

    /// `--frames N`: after N frames, wait (up to 30 s) until each enabled model has had two results
    /// on screen, then take the final screenshot and close.
    fn check_limit(&mut self, ctx: &egui::Context) {
        let Some(limit) = self.opts.frames else { return };
        if self.closing || self.frozen {
            return;
        }
        let shown = self.composer.frames_shown();
        if shown < limit {
            if shown != self.last_frame.0 {
                self.last_frame = (shown, Instant::now());
            } else if self.last_frame.1.elapsed() >= self.opts.source_timeout {
                // No camera, a stalled or empty source: end a scripted run instead of waiting forever.
                let why = self.shared.source_error().map(|e| format!(" ({e})")).unwrap_or_default();
                let what = if shown == 0 { "no frame came".to_string() } else { format!("no new frame came after {shown} frames") };
                self.fail(format!(
                    "{what} from the source within {} s (--source-timeout){why}; {shown} of {limit} frames shown",
                    self.opts.source_timeout.as_secs_f64()
                ));
                self.close(ctx);
            }
            return;
        }
        let reached = *self.limit_reached_at.get_or_insert_with(Instant::now);
        // Each enabled model has had two results on screen (so its rate is defined), or failed.
        let wants = |kind: Kind| {
            self.shared.config(kind).model.is_none() || self.shared.worker_failed(kind) || self.composer.results_shown(kind) >= 2
        };
        let ready = wants(Kind::Pose) && wants(Kind::Seg);
        if !ready && reached.elapsed() < Duration::from_secs(30) {
            return;
        }
        self.frozen = true;
        if self.opts.screenshot.is_some() || self.opts.window_screenshot.is_some() {
            self.request_shot(ctx, ShotPurpose::Final);
        } else {
            self.close(ctx);
        }
    }

    fn hud_ui(&mut self, ui: &mut egui::Ui) {
        let now = Instant::now();
        let f = self.composer.hud.window(now);
        ui.heading("HUD");
        ui.label(format!(
            "camera {:.1} fps   inference {:.1} fps   display {:.1} fps",
            f.camera_fps, f.inference_fps, f.display_fps
        ));
        ui.label(RichText::new(format!("last {} s: p50 / p95 in ms", super::hud::WINDOW.as_secs())).small());
        panels::latency_grid(ui, &f, ["stage".into(), "pose".into(), "segmentation".into()], &HUD_ROWS, 1, true);
        ui.label(format!("frame capture -> screen {}", panels::cell(&f.frame_to_screen, 1)));
        ui.label(format!("UI update {}", panels::cell(&f.ui_update, 1)));
        let age = |name: &str, behind: Option<u64>, seq: u64, which: &Option<Arc<ModelResult>>| match (behind, which) {
            (Some(b), Some(r)) => format!("{name} result: {b} frames, {:.0} ms old", now.duration_since(r.captured_at).as_secs_f64() * 1000.0),
            _ => format!("{name} result: none{}", if seq == 0 { "" } else { " yet" }),
        };
        let pose = self.shared.pose_out.latest();
        let seg = self.shared.seg_out.latest();
        let shown = self.composer.shown();
        let style = self.composer.style();
        ui.label(age("pose", shown.pose_frames_behind, pose.0, &pose.1));
        if let Some(r) = pose.1.as_ref().filter(|_| shown.pose_frame_index.is_some()) {
            // Per person: colour as drawn, track id, person score, joints at or above the joint
            // threshold and their mean confidence.
            for (i, person) in r.people.iter().enumerate() {
                let c = render::person_colour(person, i);
                let shown: Vec<f32> = person.keypoints.iter().map(|k| k.score).filter(|&s| s >= style.keypoint_threshold).collect();
                let mean = if shown.is_empty() { 0.0 } else { shown.iter().sum::<f32>() / shown.len() as f32 };
                let who = match person.track_id {
                    Some(id) => format!("track {id}"),
                    None => format!("person {}", i + 1),
                };
                let text = format!(
                    "{who}: score {:.2}, {}/{} joints, mean joint confidence {:.2}",
                    person.score,
                    shown.len(),
                    person.keypoints.len(),
                    mean
                );
                ui.horizontal(|ui| {
                    let (rect, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                    ui.painter().rect_filled(rect, 2.0, Color32::from_rgb(c[0], c[1], c[2]));
                    ui.label(RichText::new(text).small());
                });
            }
        }
        ui.label(age("segmentation", shown.seg_frames_behind, seg.0, &seg.1));
        if let Some(r) = &seg.1 {
            legend(ui, r, style);
        }
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, ctx: &egui::Context) {
        ui.heading("Controls");
        let (_, spec) = self.shared.source();
        let mut chosen = spec.clone();
        egui::ComboBox::from_label("source").width(200.0).selected_text(short(&spec.describe(), 30)).show_ui(ui, |ui| {
            if let Some(p) = self.opts_file() {
                ui.selectable_value(&mut chosen, SourceSpec::File(p.clone()), format!("file {}", p.display()));
            }
            for c in &self.cameras {
                let s = SourceSpec::Camera { index: c.index, width: self.resolution.0, height: self.resolution.1 };
                ui.selectable_value(&mut chosen, s, format!("camera {}: {}", c.index, c.name));
            }
            if self.cameras.is_empty() {
                let s = SourceSpec::Camera { index: 0, width: self.resolution.0, height: self.resolution.1 };
                ui.selectable_value(&mut chosen, s, "camera 0 (none found yet)");
            }
        });
        if chosen != spec {
            self.shared.set_source(chosen);
        }
        ui.horizontal(|ui| {
            let mut res = self.resolution;
            panels::resolution_picker(ui, "resolution", &RESOLUTIONS, &mut res);
            if res != self.resolution {
                self.resolution = res;
                if let SourceSpec::Camera { index, .. } = spec {
                    self.shared.set_source(SourceSpec::Camera { index, width: res.0, height: res.1 });
                }
            }
            if ui.button("rescan").on_hover_text("list cameras again").clicked() {
                self.rescan_cameras();
            }
        });
        if let Some(e) = &self.camera_error {
            ui.label(RichText::new(format!("cameras: {e}")).small());
        }
        panels::model_pickers(ui, &self.shared, &self.models, ["pose model", "segmentation"]);
        panels::backend_picker(ui, &self.shared);
        panels::thresholds(ui, &self.shared, &mut self.composer, ["person threshold", "joint threshold", "mask opacity"]);
        panels::tracking(ui, &self.shared, "track people (ids, smoothing)");
        ui.horizontal(|ui| {
            panels::pause(ui, &self.shared);
            if ui.button("screenshot").on_hover_text("saves the image region of this window as edgesight-<time>.png").clicked() {
                self.request_shot(ctx, ShotPurpose::Button);
            }
            if self.recorder.is_some() {
                if ui.button(RichText::new("stop recording").color(Color32::RED)).clicked() {
                    let _ = self.stop_recording();
                }
            } else if ui.button("record").clicked() {
                let _ = self.start_recording();
            }
        });
        if self.recorder.is_none() {
            ui.horizontal(|ui| {
                ui.label("mp4:");
                ui.text_edit_singleline(&mut self.record_path);
            });
        }
        if let Some(m) = &self.message {
            ui.label(RichText::new(m).small());
        }
        panels::source_description(ui, &self.shared);
    }

    fn opts_file(&self) -> Option<PathBuf> {
        match &self.opts.source {
            SourceSpec::File(p) => Some(p.clone()),
            _ => None,
        }
    }

    fn image_ui(&mut self, ui: &mut egui::Ui) {
        let ppp = ui.ctx().pixels_per_point();
        let avail = ui.available_rect_before_wrap();
        let error = self.shared.source_error();
        match (&self.texture, self.composer.image()) {
            (Some(t), Some(f)) => {
                // One screen pixel per frame pixel when it fits, else scaled down to fit.
                let full = egui::vec2(f.width as f32 / ppp, f.height as f32 / ppp);
                let scale = (avail.width() / full.x).min(avail.height() / full.y).min(1.0);
                let min_px = (avail.min.to_vec2() * ppp).round();
                let min = egui::pos2(min_px.x / ppp, min_px.y / ppp);
                let rect = egui::Rect::from_min_size(min, full * scale);
                panels::paint_frame(ui, t, rect);
                let size_px = ((full * scale) * ppp).round();
                self.shot_rect_px = Some([min_px.x as usize, min_px.y as usize, size_px.x as usize, size_px.y as usize]);
                if let Some(e) = &error {
                    panels::banner(ui, rect, e, BANNER);
                }
            }
            _ => {
                let text = match &error {
                    Some(e) => e.clone(),
                    None => compose::waiting_message(&self.shared),
                };
                panels::banner(ui, avail, &text, BANNER);
            }
        }
    }
}

impl eframe::App for LiveApp {
    fn update(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let t0 = Instant::now();
        self.composer.begin(&self.shared, t0);
        self.handle_shots(ctx);
        self.compose(ctx);
        panels::side_panel(ctx, PANEL_WIDTH, |ui| {
            self.hud_ui(ui);
            ui.separator();
            self.controls_ui(ui, ctx);
        });
        panels::picture_area(ctx, 24, |ui| self.image_ui(ui));
        self.check_limit(ctx);
        if ctx.input(|i| i.viewport().close_requested()) && !self.closing {
            // Closed by the user: still write what was asked for (stats; no final screenshot).
            self.close(ctx);
        }
        self.composer.end(t0);
        // Frames and results request repaints themselves; this keeps the HUD moving when idle.
        ctx.request_repaint_after(Duration::from_millis(250));
    }
}

fn legend(ui: &mut egui::Ui, r: &ModelResult, style: &Style) {
    let swatch = |ui: &mut egui::Ui, c: [u8; 3], name: &str| {
        ui.horizontal(|ui| {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            ui.painter().rect_filled(rect, 2.0, Color32::from_rgb(c[0], c[1], c[2]));
            ui.label(name);
        });
    };
    if let Some(c) = &r.classes {
        ui.label("classes:");
        for (name, colour) in c.classes.iter().zip(&c.palette) {
            swatch(ui, *colour, name);
        }
    } else if r.mask.is_some() {
        swatch(ui, style.mask_colour, "person");
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s.chars().rev().take(n - 3).collect::<Vec<_>>().into_iter().rev().collect();
        format!("...{tail}")
    }
}

fn save_color_image(image: &ColorImage, [x, y, w, h]: [usize; 4], path: &Path) -> Result<()> {
    let [iw, ih] = image.size;
    if w == 0 || h == 0 || x + w > iw || y + h > ih {
        return Err(anyhow!("the image region {w}x{h}+{x}+{y} is outside the {iw}x{ih} window"));
    }
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in y..y + h {
        for p in &image.pixels[row * iw + x..row * iw + x + w] {
            rgb.extend_from_slice(&[p.r(), p.g(), p.b()]);
        }
    }
    Frame::new(w, h, rgb)?.save_png(path)
}

#[derive(Serialize)]
struct StatsFile {
    source: String,
    wall_time_s: f64,
    /// Over the whole run.
    run: HudFigures,
    /// Over the HUD's sliding window at the end (what the HUD showed).
    window: HudFigures,
    /// The frame on screen at the end and the frames its results came from.
    shown: ShownFrames,
    screenshot: Option<String>,
}

fn print_summary(f: &HudFigures, wall: f64) {
    let e2e = |s: &Option<super::hud::StageFigures>| {
        s.as_ref().map(|s| format!("p50 {:.1} ms, p95 {:.1} ms", s.e2e.p50_ms, s.e2e.p95_ms)).unwrap_or("-".into())
    };
    println!(
        "live: {} frames shown in {wall:.1} s; camera {:.2} fps, display {:.2} fps, inference {:.2} fps (pose {:.2}, segmentation {:.2})",
        f.frames_displayed,
        f.camera_fps,
        f.display_fps,
        f.inference_fps,
        f.pose.as_ref().map(|s| s.fps).unwrap_or(0.0),
        f.seg.as_ref().map(|s| s.fps).unwrap_or(0.0),
    );
    println!("live: end to end, capture -> screen: pose {}; segmentation {}", e2e(&f.pose), e2e(&f.seg));
    println!(
        "live: frame capture -> screen p50 {:.1} ms, p95 {:.1} ms; UI update p50 {:.2} ms, p95 {:.2} ms",
        f.frame_to_screen.p50_ms, f.frame_to_screen.p95_ms, f.ui_update.p50_ms, f.ui_update.p95_ms
    );
}
