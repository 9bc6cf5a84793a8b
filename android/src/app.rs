//! The phone's window (eframe/egui on wgpu): the newest camera frame with the newest pose and
//! segmentation results drawn by `edgesight::render::draw` (the renderer every desktop output
//! uses), a compact HUD and touch-sized controls in a panel that folds away (camera, size,
//! models, backend: tract on the CPU or the library's wgpu compute shaders, thresholds).
//!
//! It reads the same shared state as the desktop window (`edgesight::live::Shared`) and is made
//! of the same parts: the composition step and its latency accounting (`live::compose`) and the
//! panels (`live::panels`: HUD grid, model and backend pickers, sliders, pause, banner). What is
//! its own: the Android camera list, the touch-sized layout (a bar that folds the panel away,
//! larger text, the frame scaled to fit), and the camera permission message and button.

use crate::camera::{self, CameraInfo};
use crate::jvm;
use android_activity::AndroidApp;
use eframe::egui::{self, RichText, TextureHandle, TextureOptions};
use edgesight::live::capture::SourceSpec;
use edgesight::live::compose::{self, Composer};
use edgesight::live::hud::P50P95;
use edgesight::live::panels::{self, BannerSize, Models, Row};
use edgesight::live::Shared;
use edgesight::render::Style;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Camera sizes offered (the closest size the camera has is used).
const RESOLUTIONS: [(u32, u32); 3] = [(640, 480), (1280, 720), (320, 240)];
const PANEL_WIDTH: f32 = 360.0;
/// Larger than the desktop's, for a phone held at arm's length.
const BANNER: BannerSize = BannerSize { font: 20.0, margin: 30.0, padding: 12.0, rounding: 8.0 };
/// The HUD's latency rows, fewer than the desktop's to fit a phone.
const HUD_ROWS: [Row; 4] = [
    ("wait", |s| s.wait),
    ("inference", |s| s.inference),
    ("pre + decode", |s| P50P95 { count: s.preprocess.count, p50_ms: s.preprocess.p50_ms + s.decode.p50_ms, p95_ms: s.preprocess.p95_ms + s.decode.p95_ms }),
    ("camera -> screen", |s| s.e2e),
];

pub struct PhoneApp {
    app: AndroidApp,
    shared: Arc<Shared>,
    /// The composed picture, what is on screen, the HUD figures.
    composer: Composer,
    texture: Option<TextureHandle>,
    panel: bool,
    cameras: Vec<CameraInfo>,
    camera_error: Option<String>,
    resolution: (u32, u32),
    models: Models,
    /// A problem found at start-up (e.g. the models could not be installed).
    startup_problem: Option<String>,
}

impl PhoneApp {
    pub fn new(app: AndroidApp, shared: Arc<Shared>, style: Style, resolution: (u32, u32), startup_problem: Option<String>) -> PhoneApp {
        let mut a = PhoneApp {
            app,
            shared,
            composer: Composer::new(style),
            texture: None,
            panel: true,
            cameras: Vec::new(),
            camera_error: None,
            resolution,
            models: Models::installed(),
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

    fn hud_ui(&mut self, ui: &mut egui::Ui) {
        let f = self.composer.hud.window(Instant::now());
        ui.label(format!("camera {:.1} fps  display {:.1} fps  inference {:.1} fps", f.camera_fps, f.display_fps, f.inference_fps));
        panels::latency_grid(ui, &f, [RichText::new("p50 / p95 ms").small().into(), "pose".into(), "seg".into()], &HUD_ROWS, 0, false);
        let behind = |b: Option<u64>| b.map(|b| format!("{b} frames behind")).unwrap_or("none yet".into());
        let shown = self.composer.shown();
        ui.label(RichText::new(format!("pose: {}   seg: {}", behind(shown.pose_frames_behind), behind(shown.seg_frames_behind))).small());
        panels::track_ids(ui, &self.shared, &self.composer, "tracks");
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
        panels::resolution_picker(ui, "size", &RESOLUTIONS, &mut res);
        if index != current || res != self.resolution {
            self.resolution = res;
            self.shared.set_source(SourceSpec::Camera { index, width: res.0, height: res.1 });
        }
        if let Some(e) = &self.camera_error {
            ui.label(RichText::new(e).small());
        }
        panels::model_pickers(ui, &self.shared, &self.models, ["pose", "segmentation"]);
        panels::backend_picker(ui, &self.shared);
        panels::thresholds(ui, &self.shared, &mut self.composer, ["person", "joints", "mask"]);
        panels::tracking(ui, &self.shared, "track");
        panels::pause(ui, &self.shared);
        panels::source_description(ui, &self.shared);
    }

    fn image_ui(&mut self, ui: &mut egui::Ui) {
        let avail = ui.available_rect_before_wrap();
        let problem = self.startup_problem.clone().or_else(|| self.shared.source_error());
        let permission = problem.as_deref().is_some_and(|p| p.contains(camera::PERMISSION_MESSAGE));
        let mut rect = avail;
        if let Some(t) = &self.texture {
            // Fit the frame into the free area, keeping its aspect ratio.
            let shown = self.composer.shown();
            let (w, h) = (shown.width.max(1) as f32, shown.height.max(1) as f32);
            let scale = (avail.width() / w).min(avail.height() / h);
            rect = egui::Rect::from_center_size(avail.center(), egui::vec2(w * scale, h * scale));
            panels::paint_frame(ui, t, rect);
        }
        let text = match &problem {
            Some(p) => Some(p.clone()),
            None if self.texture.is_none() => Some(compose::waiting_message(&self.shared)),
            None => None,
        };
        if let Some(text) = text {
            panels::banner(ui, rect, &text, BANNER);
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
        self.composer.begin(&self.shared, t0);
        let texture = &mut self.texture;
        self.composer.compose(&self.shared, false, |image| panels::upload(ctx, texture, image, TextureOptions::LINEAR));
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
            panels::side_panel(ctx, PANEL_WIDTH, |ui| {
                self.hud_ui(ui);
                ui.separator();
                self.controls_ui(ui);
            });
        }
        panels::picture_area(ctx, 16, |ui| self.image_ui(ui));
        self.composer.end(t0);
        // New frames and results request repaints; this keeps the HUD figures moving otherwise.
        ctx.request_repaint_after(Duration::from_millis(250));
    }
}
