//! The window (eframe, wgpu renderer): the newest frame with the newest results drawn over it
//! by the shared renderer (`render::draw`, the same as headless output), a HUD, and controls.
//!
//! The frame is shown at one screen pixel per frame pixel when it fits, so a screenshot of the
//! image region has the frame's size. Screenshots are read back from the window itself
//! (`ViewportCommand::Screenshot`), not re-rendered.

use super::capture::{self, CameraEntry, SourceSpec};
use super::hud::{Hud, HudFigures, P50P95};
use super::worker::{Kind, ModelResult};
use super::{LiveOptions, Shared};
use crate::engine::Backend;
use crate::catalog::{models_dir, Catalog, Task};
use crate::frame::Frame;
use crate::render::{self, Overlay, Style};
use crate::video_writer::VideoWriter;
use anyhow::{anyhow, Result};
use eframe::egui::{self, Color32, ColorImage, RichText, TextureHandle, TextureOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PANEL_WIDTH: f32 = 340.0;
const RESOLUTIONS: [(u32, u32); 4] = [(640, 480), (1280, 720), (1920, 1080), (320, 240)];

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

/// What is on screen now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ShownKey {
    frame: u64,
    pose: u64,
    seg: u64,
    style_version: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ShownFrames {
    /// Sequence number over the run and index in the source of the frame on screen.
    pub frame_seq: u64,
    pub frame_index: u64,
    /// The frames whose results are drawn over it (None: no result drawn).
    pub pose_frame_index: Option<u64>,
    pub seg_frame_index: Option<u64>,
    pub pose_frames_behind: Option<u64>,
    pub seg_frames_behind: Option<u64>,
    pub width: usize,
    pub height: usize,
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
    tx: Option<SyncSender<Frame>>,
    thread: Option<JoinHandle<Result<u64>>>,
    size: (usize, usize),
    dropped: u64,
}

impl Recorder {
    fn start(path: &Path, width: usize, height: usize, frame_rate: &str) -> Result<Recorder> {
        let mut writer = VideoWriter::create(path, width, height, frame_rate)?;
        // A few frames of slack; when the encoder falls behind, frames are dropped, the UI never waits.
        let (tx, rx) = sync_channel::<Frame>(8);
        let thread = std::thread::Builder::new().name("recorder".into()).spawn(move || -> Result<u64> {
            for f in rx {
                writer.write(&f)?;
            }
            writer.finish()
        })?;
        Ok(Recorder { path: path.to_path_buf(), tx: Some(tx), thread: Some(thread), size: (width, height), dropped: 0 })
    }

    fn push(&mut self, f: &Frame) {
        if let Some(tx) = &self.tx {
            match tx.try_send(f.clone()) {
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
    style: Style,
    style_version: u64,
    texture: Option<TextureHandle>,
    composed: Option<Frame>,
    shown_key: ShownKey,
    shown: ShownFrames,
    shown_pose_seq: u64,
    shown_seg_seq: u64,
    shown_pose_results: u64,
    shown_seg_results: u64,
    /// Source frames shown so far.
    frames_shown: u64,
    hud: Hud,
    started: Instant,
    limit_reached_at: Option<Instant>,
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
    pose_models: Vec<String>,
    seg_models: Vec<String>,
}

fn models_for(task: Task) -> Vec<String> {
    let dir = models_dir();
    Catalog::builtin()
        .models
        .iter()
        .filter(|m| m.task == task && dir.join(&m.file).is_file())
        .map(|m| m.name.clone())
        .collect()
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
            style: opts.style,
            style_version: 0,
            texture: None,
            composed: None,
            shown_key: ShownKey::default(),
            shown: ShownFrames::default(),
            shown_pose_seq: 0,
            shown_seg_seq: 0,
            shown_pose_results: 0,
            shown_seg_results: 0,
            frames_shown: 0,
            hud: Hud::default(),
            started: Instant::now(),
            limit_reached_at: None,
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
            pose_models: models_for(Task::Pose),
            seg_models: models_for(Task::Segmentation),
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

    /// Folds the other threads' timing events into the HUD.
    fn drain_events(&mut self) {
        for e in self.shared.take_events() {
            self.hud.absorb(e);
        }
    }

    /// Composes the newest frame with the newest results when anything changed; returns the
    /// frame and results that became visible for latency accounting.
    fn compose(&mut self, ctx: &egui::Context) {
        if self.frozen || self.shared.paused.load(Ordering::SeqCst) && self.composed.is_some() {
            return;
        }
        let (fseq, frame) = self.shared.frames.latest();
        let (pseq, pose) = self.shared.pose_out.latest();
        let (sseq, seg) = self.shared.seg_out.latest();
        let key = ShownKey { frame: fseq, pose: pseq, seg: sseq, style_version: self.style_version };
        if key == self.shown_key {
            return;
        }
        let Some(captured) = frame else { return };
        let size = (captured.frame.width, captured.frame.height);
        // Results of a frame of another size (the source changed) are not drawn.
        let fits = |r: &Option<Arc<ModelResult>>| r.as_ref().filter(|r| r.frame_size == size).cloned();
        let (pose, seg) = (fits(&pose), fits(&seg));
        let mut image = captured.frame.clone();
        let overlay = Overlay {
            people: pose.as_ref().map(|p| &p.people[..]).unwrap_or(&[]),
            schema: pose.as_ref().and_then(|p| p.schema),
            mask: seg.as_ref().and_then(|s| s.mask.as_ref()),
            classes: seg.as_ref().and_then(|s| s.classes.as_ref()),
        };
        render::draw(&mut image, &overlay, &self.style);
        let colour = ColorImage::from_rgb([image.width, image.height], &image.rgb);
        match &mut self.texture {
            Some(t) => t.set(colour, TextureOptions::NEAREST),
            None => self.texture = Some(ctx.load_texture("frame", colour, TextureOptions::NEAREST)),
        }
        let now = Instant::now();
        if self.record_pending {
            // --record: from the first frame on.
            self.record_pending = false;
            self.composed = Some(image.clone());
            self.start_recording();
        }
        if fseq != self.shown_key.frame {
            self.frames_shown += 1;
            self.hud.display.tick(now);
            self.hud.frame_to_screen.add(now, now - captured.at);
            if let Some(r) = &mut self.recorder {
                if r.size == size {
                    r.push(&image);
                } else {
                    self.message = Some("recording stopped: the frame size changed".into());
                    self.stop_recording();
                }
            }
        }
        self.account(&pose, Kind::Pose, now);
        self.account(&seg, Kind::Seg, now);
        self.shown = ShownFrames {
            frame_seq: captured.seq,
            frame_index: captured.frame.index,
            pose_frame_index: pose.as_ref().map(|p| p.source_index),
            seg_frame_index: seg.as_ref().map(|s| s.source_index),
            pose_frames_behind: pose.as_ref().map(|p| captured.seq.saturating_sub(p.seq)),
            seg_frames_behind: seg.as_ref().map(|s| captured.seq.saturating_sub(s.seq)),
            width: image.width,
            height: image.height,
        };
        self.shown_key = key;
        let old = self.composed.replace(image).map(|f| (f.width, f.height));
        if old.is_some() && old != Some(size) {
            // The source changed size: fit the window to it.
            let ppp = ctx.pixels_per_point();
            ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(egui::vec2(
                size.0 as f32 / ppp + PANEL_WIDTH,
                (size.1 as f32 / ppp).max(720.0),
            )));
        }
    }

    /// First time a result is on screen: its end-to-end and result-to-screen latency.
    fn account(&mut self, r: &Option<Arc<ModelResult>>, kind: Kind, now: Instant) {
        let Some(r) = r else { return };
        let (last, count, stages) = match kind {
            Kind::Pose => (&mut self.shown_pose_seq, &mut self.shown_pose_results, &mut self.hud.pose),
            Kind::Seg => (&mut self.shown_seg_seq, &mut self.shown_seg_results, &mut self.hud.seg),
        };
        if r.seq != *last {
            *last = r.seq;
            *count += 1;
            stages.to_screen.add(now, now - r.finished);
            stages.e2e.add(now, now - r.captured_at);
        }
    }

    fn stop_recording(&mut self) {
        if let Some(r) = self.recorder.take() {
            self.message = Some(match r.finish() {
                Ok(m) => m,
                Err(e) => format!("recording failed: {e:#}"),
            });
        }
    }

    fn start_recording(&mut self) {
        let Some(f) = &self.composed else {
            self.message = Some("nothing to record yet".into());
            return;
        };
        let rate = self.shared.source_info().map(|i| i.frame_rate).unwrap_or_else(|| "30/1".into());
        match Recorder::start(Path::new(&self.record_path), f.width, f.height, &rate) {
            Ok(r) => {
                self.message = Some(format!("recording to {}", self.record_path));
                self.recorder = Some(r);
            }
            Err(e) => self.message = Some(format!("cannot record: {e:#}")),
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
        self.stop_recording();
        if let Some(m) = &self.message {
            eprintln!("{m}");
        }
        let run = self.hud.run();
        let wall = self.started.elapsed().as_secs_f64();
        print_summary(&run, wall);
        if let Some(path) = self.opts.stats.clone() {
            let report = StatsFile {
                source: self.shared.source_info().map(|i| i.description).unwrap_or_default(),
                wall_time_s: wall,
                run,
                window: self.hud.window(Instant::now()),
                shown: self.shown.clone(),
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
        if self.closing || self.frozen || self.frames_shown < limit {
            return;
        }
        let reached = *self.limit_reached_at.get_or_insert_with(Instant::now);
        // Each enabled model has had two results on screen (so its rate is defined), or failed.
        let results_shown = |kind: Kind| match kind {
            Kind::Pose => self.shown_pose_results,
            Kind::Seg => self.shown_seg_results,
        };
        let wants = |kind: Kind| self.shared.config(kind).model.is_none() || self.shared.worker_failed(kind) || results_shown(kind) >= 2;
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
        let f = self.hud.window(now);
        ui.heading("HUD");
        ui.label(format!(
            "camera {:.1} fps   inference {:.1} fps   display {:.1} fps",
            f.camera_fps, f.inference_fps, f.display_fps
        ));
        ui.label(RichText::new(format!("last {} s: p50 / p95 in ms", super::hud::WINDOW.as_secs())).small());
        let cell = |p: &P50P95| if p.count == 0 { "-".to_string() } else { format!("{:.1} / {:.1}", p.p50_ms, p.p95_ms) };
        egui::Grid::new("hud").striped(true).num_columns(3).show(ui, |ui| {
            ui.label("stage");
            ui.label("pose");
            ui.label("segmentation");
            ui.end_row();
            let rows: [(&str, fn(&super::hud::StageFigures) -> P50P95); 6] = [
                ("capture -> start", |s| s.wait),
                ("preprocess", |s| s.preprocess),
                ("inference", |s| s.inference),
                ("decode", |s| s.decode),
                ("result -> screen", |s| s.to_screen),
                ("capture -> screen", |s| s.e2e),
            ];
            for (name, get) in rows {
                ui.label(name);
                ui.label(f.pose.as_ref().map(|s| cell(&get(s))).unwrap_or("-".into()));
                ui.label(f.seg.as_ref().map(|s| cell(&get(s))).unwrap_or("-".into()));
                ui.end_row();
            }
            ui.label("model fps");
            ui.label(f.pose.as_ref().map(|s| format!("{:.1}", s.fps)).unwrap_or("-".into()));
            ui.label(f.seg.as_ref().map(|s| format!("{:.1}", s.fps)).unwrap_or("-".into()));
            ui.end_row();
        });
        ui.label(format!("frame capture -> screen {}", cell(&f.frame_to_screen)));
        ui.label(format!("UI update {}", cell(&f.ui_update)));
        let age = |name: &str, behind: Option<u64>, seq: u64, which: &Option<Arc<ModelResult>>| match (behind, which) {
            (Some(b), Some(r)) => format!("{name} result: {b} frames, {:.0} ms old", now.duration_since(r.captured_at).as_secs_f64() * 1000.0),
            _ => format!("{name} result: none{}", if seq == 0 { "" } else { " yet" }),
        };
        let pose = self.shared.pose_out.latest();
        let seg = self.shared.seg_out.latest();
        ui.label(age("pose", self.shown.pose_frames_behind, pose.0, &pose.1));
        if let Some(r) = pose.1.as_ref().filter(|_| self.shown.pose_frame_index.is_some()) {
            // Per person: colour as drawn, person score, joints at or above the joint threshold
            // and their mean confidence.
            for (i, person) in r.people.iter().enumerate() {
                let c = render::PERSON_COLOURS[i % render::PERSON_COLOURS.len()];
                let shown: Vec<f32> = person.keypoints.iter().map(|k| k.score).filter(|&s| s >= self.style.keypoint_threshold).collect();
                let mean = if shown.is_empty() { 0.0 } else { shown.iter().sum::<f32>() / shown.len() as f32 };
                let text = format!(
                    "person {}: score {:.2}, {}/{} joints, mean joint confidence {:.2}",
                    i + 1,
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
        ui.label(age("segmentation", self.shown.seg_frames_behind, seg.0, &seg.1));
        if let Some(r) = &seg.1 {
            legend(ui, r, &self.style);
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
            egui::ComboBox::from_label("resolution").selected_text(format!("{}x{}", res.0, res.1)).show_ui(ui, |ui| {
                for r in RESOLUTIONS {
                    ui.selectable_value(&mut res, r, format!("{}x{}", r.0, r.1));
                }
            });
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
        for (kind, label) in [(Kind::Pose, "pose model"), (Kind::Seg, "segmentation")] {
            let mut c = self.shared.config(kind);
            let models = if kind == Kind::Pose { &self.pose_models } else { &self.seg_models };
            let mut model = c.model.clone();
            egui::ComboBox::from_label(label).selected_text(model.clone().unwrap_or("none".into())).show_ui(ui, |ui| {
                for m in models {
                    ui.selectable_value(&mut model, Some(m.clone()), m);
                }
                ui.selectable_value(&mut model, None, "none");
            });
            if model != c.model {
                c.model = model;
                c.file = None; // a file given on the command line belongs to the model it was given for
                self.shared.set_config(kind, c);
            }
            if let Some(s) = self.shared.worker_status(kind) {
                ui.label(RichText::new(s).color(Color32::YELLOW));
            }
        }
        let current = self.shared.config(Kind::Pose).engine.backend;
        let mut backend = current;
        let label = |b: Backend| match b {
            Backend::Cpu => "cpu (tract)",
            Backend::Gpu => "gpu (wgpu shaders)",
            Backend::Auto => "auto",
        };
        egui::ComboBox::from_label("backend").selected_text(label(current)).show_ui(ui, |ui| {
            for b in [Backend::Cpu, Backend::Gpu, Backend::Auto] {
                ui.selectable_value(&mut backend, b, label(b));
            }
        });
        if backend != current {
            // Both workers replan on the new backend; a failure (no adapter) shows as their status.
            for kind in [Kind::Pose, Kind::Seg] {
                let mut c = self.shared.config(kind);
                c.engine.backend = backend;
                self.shared.set_config(kind, c);
            }
        }
        let mut pose = self.shared.config(Kind::Pose);
        if ui.add(egui::Slider::new(&mut pose.person_threshold, 0.0..=1.0).text("person threshold")).changed() {
            self.shared.set_config(Kind::Pose, pose);
        }
        let mut style = self.style;
        ui.add(egui::Slider::new(&mut style.keypoint_threshold, 0.0..=1.0).text("joint threshold"));
        ui.add(egui::Slider::new(&mut style.mask_opacity, 0.0..=1.0).text("mask opacity"));
        if style.keypoint_threshold != self.style.keypoint_threshold || style.mask_opacity != self.style.mask_opacity {
            self.style = style;
            self.style_version += 1;
        }
        ui.horizontal(|ui| {
            let mut paused = self.shared.paused.load(Ordering::SeqCst);
            if ui.checkbox(&mut paused, "pause").changed() {
                self.shared.paused.store(paused, Ordering::SeqCst);
            }
            if ui.button("screenshot").on_hover_text("saves the image region of this window as edgesight-<time>.png").clicked() {
                self.request_shot(ctx, ShotPurpose::Button);
            }
            if self.recorder.is_some() {
                if ui.button(RichText::new("stop recording").color(Color32::RED)).clicked() {
                    self.stop_recording();
                }
            } else if ui.button("record").clicked() {
                self.start_recording();
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
        if let Some(i) = self.shared.source_info() {
            ui.label(RichText::new(&i.description).small());
        }
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
        match (&self.texture, &self.composed) {
            (Some(t), Some(f)) => {
                // One screen pixel per frame pixel when it fits, else scaled down to fit.
                let full = egui::vec2(f.width as f32 / ppp, f.height as f32 / ppp);
                let scale = (avail.width() / full.x).min(avail.height() / full.y).min(1.0);
                let min_px = (avail.min.to_vec2() * ppp).round();
                let min = egui::pos2(min_px.x / ppp, min_px.y / ppp);
                let rect = egui::Rect::from_min_size(min, full * scale);
                ui.painter().image(t.id(), rect, egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)), Color32::WHITE);
                let size_px = ((full * scale) * ppp).round();
                self.shot_rect_px = Some([min_px.x as usize, min_px.y as usize, size_px.x as usize, size_px.y as usize]);
                if let Some(e) = &error {
                    banner(ui, rect, e);
                }
            }
            _ => {
                let text = match &error {
                    Some(e) => e.clone(),
                    None => format!("waiting for {} ...", self.shared.source().1.describe()),
                };
                banner(ui, avail, &text);
            }
        }
    }
}

impl eframe::App for LiveApp {
    fn update(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let t0 = Instant::now();
        self.hud.repaints.tick(t0);
        self.drain_events();
        self.handle_shots(ctx);
        self.compose(ctx);
        egui::SidePanel::right("panel").exact_width(PANEL_WIDTH).resizable(false).show(ctx, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                self.hud_ui(ui);
                ui.separator();
                self.controls_ui(ui, ctx);
            });
        });
        egui::CentralPanel::default().frame(egui::Frame::NONE.fill(Color32::from_gray(24))).show(ctx, |ui| self.image_ui(ui));
        self.check_limit(ctx);
        if ctx.input(|i| i.viewport().close_requested()) && !self.closing {
            // Closed by the user: still write what was asked for (stats; no final screenshot).
            self.close(ctx);
        }
        self.hud.ui_update.add(Instant::now(), t0.elapsed());
        // Frames and results request repaints themselves; this keeps the HUD moving when idle.
        ctx.request_repaint_after(Duration::from_millis(250));
    }
}

fn banner(ui: &egui::Ui, rect: egui::Rect, text: &str) {
    let painter = ui.painter_at(rect);
    let galley = painter.layout(text.to_string(), egui::FontId::proportional(18.0), Color32::WHITE, rect.width() - 40.0);
    let pos = egui::pos2(rect.min.x + 20.0, rect.center().y - galley.size().y / 2.0);
    painter.rect_filled(egui::Rect::from_min_size(pos, galley.size()).expand(10.0), 6.0, Color32::from_rgba_unmultiplied(120, 0, 0, 220));
    painter.galley(pos, galley, Color32::WHITE);
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
