//! The phone's window (eframe/egui on wgpu): the newest camera frame with the newest pose and
//! segmentation results drawn by `edgesight::render::draw` (the renderer every desktop output
//! uses), a compact HUD and touch-sized controls in a panel that folds away (camera, size,
//! models, backend: tract on the CPU or the library's wgpu compute shaders, thresholds).
//!
//! It reads the same shared state as the desktop window (`edgesight::live::Shared`): frames and
//! results arrive through latest-wins watches, so the UI never waits for inference.

use crate::camera::{self, CameraInfo};
use crate::jvm;
use android_activity::AndroidApp;
use eframe::egui::{self, Color32, ColorImage, RichText, TextureHandle, TextureOptions};
use edgesight::catalog::{models_dir, Catalog, Task};
use edgesight::engine::Backend;
use edgesight::frame::Frame;
use edgesight::live::capture::SourceSpec;
use edgesight::live::hud::{Hud, P50P95};
use edgesight::live::worker::{Kind, ModelResult};
use edgesight::live::Shared;
use edgesight::render::{self, Overlay, Style};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Camera sizes offered (the closest size the camera has is used).
const RESOLUTIONS: [(u32, u32); 3] = [(640, 480), (1280, 720), (320, 240)];

pub struct PhoneApp {
    app: AndroidApp,
    shared: Arc<Shared>,
    style: Style,
    style_version: u64,
    texture: Option<TextureHandle>,
    frame_size: (usize, usize),
    /// Sequence numbers (frame, pose, seg, style) of what is on screen.
    shown: (u64, u64, u64, u64),
    shown_pose: u64,
    shown_seg: u64,
    behind: (Option<u64>, Option<u64>),
    hud: Hud,
    panel: bool,
    cameras: Vec<CameraInfo>,
    camera_error: Option<String>,
    resolution: (u32, u32),
    pose_models: Vec<String>,
    seg_models: Vec<String>,
    /// A problem found at start-up (e.g. the models could not be installed).
    startup_problem: Option<String>,
}

fn models_for(task: Task) -> Vec<String> {
    let dir = models_dir();
    Catalog::builtin().models.iter().filter(|m| m.task == task && dir.join(&m.file).is_file()).map(|m| m.name.clone()).collect()
}

impl PhoneApp {
    pub fn new(app: AndroidApp, shared: Arc<Shared>, style: Style, resolution: (u32, u32), startup_problem: Option<String>) -> PhoneApp {
        let mut a = PhoneApp {
            app,
            shared,
            style,
            style_version: 0,
            texture: None,
            frame_size: (0, 0),
            shown: (0, 0, 0, 0),
            shown_pose: 0,
            shown_seg: 0,
            behind: (None, None),
            hud: Hud::default(),
            panel: true,
            cameras: Vec::new(),
            camera_error: None,
            resolution,
            pose_models: models_for(Task::Pose),
            seg_models: models_for(Task::Segmentation),
            startup_problem,
        };
        a.rescan();
        a
    }

    fn rescan(&mut self) {
        match camera::list() {
            Ok(c) => {
                self.camera_error = c.is_empty().then(|| "this device lists no camera".to_string());
                self.cameras = c;
            }
            Err(e) => self.camera_error = Some(format!("{e:#}")),
        }
    }

    /// Draws the newest results onto the newest frame when either changed, and accounts the
    /// latencies of results seen for the first time.
    fn compose(&mut self, ctx: &egui::Context) {
        if self.shared.paused.load(Ordering::SeqCst) && self.texture.is_some() {
            return;
        }
        let (fseq, frame) = self.shared.frames.latest();
        let (pseq, pose) = self.shared.pose_out.latest();
        let (sseq, seg) = self.shared.seg_out.latest();
        let key = (fseq, pseq, sseq, self.style_version);
        if key == self.shown {
            return;
        }
        let Some(captured) = frame else { return };
        let size = (captured.frame.width, captured.frame.height);
        // Results of a frame of another size (camera switched) are not drawn.
        let fits = |r: &Option<Arc<ModelResult>>| r.as_ref().filter(|r| r.frame_size == size).cloned();
        let (pose, seg) = (fits(&pose), fits(&seg));
        let mut image: Frame = captured.frame.clone();
        let overlay = Overlay {
            people: pose.as_ref().map(|p| &p.people[..]).unwrap_or(&[]),
            schema: pose.as_ref().and_then(|p| p.schema),
            mask: seg.as_ref().and_then(|s| s.mask.as_ref()),
            classes: seg.as_ref().and_then(|s| s.classes.as_ref()),
        };
        render::draw(&mut image, &overlay, &self.style);
        let colour = ColorImage::from_rgb([image.width, image.height], &image.rgb);
        match &mut self.texture {
            Some(t) => t.set(colour, TextureOptions::LINEAR),
            None => self.texture = Some(ctx.load_texture("frame", colour, TextureOptions::LINEAR)),
        }
        let now = Instant::now();
        if fseq != self.shown.0 {
            self.hud.display.tick(now);
            self.hud.frame_to_screen.add(now, now - captured.at);
        }
        for (r, last, stages) in [(&pose, &mut self.shown_pose, &mut self.hud.pose), (&seg, &mut self.shown_seg, &mut self.hud.seg)] {
            if let Some(r) = r {
                if r.seq != *last {
                    *last = r.seq;
                    stages.to_screen.add(now, now - r.finished);
                    stages.e2e.add(now, now - r.captured_at);
                }
            }
        }
        self.behind = (pose.as_ref().map(|p| captured.seq.saturating_sub(p.seq)), seg.as_ref().map(|s| captured.seq.saturating_sub(s.seq)));
        self.frame_size = size;
        self.shown = key;
    }

    fn hud_ui(&mut self, ui: &mut egui::Ui) {
        let f = self.hud.window(Instant::now());
        ui.label(format!("camera {:.1} fps  display {:.1} fps  inference {:.1} fps", f.camera_fps, f.display_fps, f.inference_fps));
        let cell = |p: &P50P95| if p.count == 0 { "-".to_string() } else { format!("{:.0} / {:.0}", p.p50_ms, p.p95_ms) };
        egui::Grid::new("hud").striped(true).num_columns(3).show(ui, |ui| {
            ui.label(RichText::new("p50 / p95 ms").small());
            ui.label("pose");
            ui.label("seg");
            ui.end_row();
            let rows: [(&str, fn(&edgesight::live::hud::StageFigures) -> P50P95); 4] = [
                ("wait", |s| s.wait),
                ("inference", |s| s.inference),
                ("pre + decode", |s| P50P95 { count: s.preprocess.count, p50_ms: s.preprocess.p50_ms + s.decode.p50_ms, p95_ms: s.preprocess.p95_ms + s.decode.p95_ms }),
                ("camera -> screen", |s| s.e2e),
            ];
            for (name, get) in rows {
                ui.label(name);
                ui.label(f.pose.as_ref().map(|s| cell(&get(s))).unwrap_or("-".into()));
                ui.label(f.seg.as_ref().map(|s| cell(&get(s))).unwrap_or("-".into()));
                ui.end_row();
            }
        });
        let behind = |b: Option<u64>| b.map(|b| format!("{b} frames behind")).unwrap_or("none yet".into());
        ui.label(RichText::new(format!("pose: {}   seg: {}", behind(self.behind.0), behind(self.behind.1))).small());
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui) {
        let (_, spec) = self.shared.source();
        let current = match spec {
            SourceSpec::Camera { index, .. } => index,
            SourceSpec::File(_) => 0,
        };
        let mut index = current;
        let name = |i: u32, cams: &[CameraInfo]| cams.get(i as usize).map(|c| c.describe(i as usize)).unwrap_or(format!("camera {i}"));
        egui::ComboBox::from_label("camera").selected_text(name(current, &self.cameras)).show_ui(ui, |ui| {
            for i in 0..self.cameras.len().max(1) as u32 {
                ui.selectable_value(&mut index, i, name(i, &self.cameras));
            }
        });
        let mut res = self.resolution;
        egui::ComboBox::from_label("size").selected_text(format!("{}x{}", res.0, res.1)).show_ui(ui, |ui| {
            for r in RESOLUTIONS {
                ui.selectable_value(&mut res, r, format!("{}x{}", r.0, r.1));
            }
        });
        if index != current || res != self.resolution {
            self.resolution = res;
            self.shared.set_source(SourceSpec::Camera { index, width: res.0, height: res.1 });
        }
        if let Some(e) = &self.camera_error {
            ui.label(RichText::new(e).small());
        }
        for (kind, label) in [(Kind::Pose, "pose"), (Kind::Seg, "segmentation")] {
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
            // Both workers replan; a GPU that cannot run a model shows as the worker's status.
            for kind in [Kind::Pose, Kind::Seg] {
                let mut c = self.shared.config(kind);
                c.engine.backend = backend;
                self.shared.set_config(kind, c);
            }
        }
        let mut pose = self.shared.config(Kind::Pose);
        if ui.add(egui::Slider::new(&mut pose.person_threshold, 0.0..=1.0).text("person")).changed() {
            self.shared.set_config(Kind::Pose, pose);
        }
        let mut style = self.style;
        ui.add(egui::Slider::new(&mut style.keypoint_threshold, 0.0..=1.0).text("joints"));
        ui.add(egui::Slider::new(&mut style.mask_opacity, 0.0..=1.0).text("mask"));
        if style.keypoint_threshold != self.style.keypoint_threshold || style.mask_opacity != self.style.mask_opacity {
            self.style = style;
            self.style_version += 1;
        }
        let mut paused = self.shared.paused.load(Ordering::SeqCst);
        if ui.checkbox(&mut paused, "pause").changed() {
            self.shared.paused.store(paused, Ordering::SeqCst);
        }
        if let Some(i) = self.shared.source_info() {
            ui.label(RichText::new(i.description).small());
        }
    }

    fn image_ui(&mut self, ui: &mut egui::Ui) {
        let avail = ui.available_rect_before_wrap();
        let problem = self.startup_problem.clone().or_else(|| self.shared.source_error());
        let permission = problem.as_deref().is_some_and(|p| p.contains(camera::PERMISSION_MESSAGE));
        let mut rect = avail;
        if let Some(t) = &self.texture {
            // Fit the frame into the free area, keeping its aspect ratio.
            let (w, h) = (self.frame_size.0.max(1) as f32, self.frame_size.1.max(1) as f32);
            let scale = (avail.width() / w).min(avail.height() / h);
            rect = egui::Rect::from_center_size(avail.center(), egui::vec2(w * scale, h * scale));
            ui.painter().image(t.id(), rect, egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)), Color32::WHITE);
        }
        let text = match &problem {
            Some(p) => Some(p.clone()),
            None if self.texture.is_none() => Some(format!("waiting for {} ...", self.shared.source().1.describe())),
            None => None,
        };
        if let Some(text) = text {
            let painter = ui.painter_at(rect);
            let galley = painter.layout(text, egui::FontId::proportional(20.0), Color32::WHITE, rect.width() - 60.0);
            let pos = egui::pos2(rect.min.x + 30.0, rect.center().y - galley.size().y / 2.0);
            painter.rect_filled(egui::Rect::from_min_size(pos, galley.size()).expand(12.0), 8.0, Color32::from_rgba_unmultiplied(120, 0, 0, 220));
            painter.galley(pos, galley, Color32::WHITE);
            if permission {
                let button = egui::Rect::from_center_size(egui::pos2(rect.center().x, rect.max.y - 60.0), egui::vec2(240.0, 56.0));
                if ui.put(button, egui::Button::new(RichText::new("allow camera").size(22.0))).clicked() {
                    jvm::request_camera_permission_on_main_thread(&self.app);
                }
            }
        }
    }
}

impl eframe::App for PhoneApp {
    fn update(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let t0 = Instant::now();
        self.hud.repaints.tick(t0);
        for e in self.shared.take_events() {
            self.hud.absorb(e);
        }
        self.compose(ctx);
        egui::TopBottomPanel::top("bar").show(ctx, |ui| {
            ui.horizontal(|ui| {
                let label = if self.panel { "hide panel" } else { "panel" };
                if ui.button(RichText::new(label).size(18.0)).clicked() {
                    self.panel = !self.panel;
                }
                if ui.button(RichText::new("rescan cameras").size(18.0)).clicked() {
                    self.rescan();
                }
                ui.label("edgesight");
            });
        });
        if self.panel {
            egui::SidePanel::right("panel").exact_width(360.0).resizable(false).show(ctx, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.hud_ui(ui);
                    ui.separator();
                    self.controls_ui(ui);
                });
            });
        }
        egui::CentralPanel::default().frame(egui::Frame::NONE.fill(Color32::from_gray(16))).show(ctx, |ui| self.image_ui(ui));
        self.hud.ui_update.add(Instant::now(), t0.elapsed());
        // New frames and results request repaints; this keeps the HUD figures moving otherwise.
        ctx.request_repaint_after(Duration::from_millis(250));
    }
}
