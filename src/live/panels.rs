//! The egui pieces both live windows are made of (feature `panels`): the desktop window
//! (`live::ui`) and the Android app's (`android/src/app.rs`) show the same HUD grid, model
//! pickers, backend picker, threshold sliders, pause, source line, picture and message banner,
//! each with its own wording and sizes (the phone's are shorter and larger for touch).
//!
//! Everything here reads and changes the pipeline through `live::Shared` and the window's
//! [`Composer`]; nothing here knows which window it is in.

use super::compose::Composer;
use super::hud::{HudFigures, StageFigures, P50P95};
use super::worker::Kind;
use super::Shared;
use crate::catalog::{models_dir, Catalog, Task};
use crate::engine::Backend;
use crate::frame::Frame;
use egui::{Color32, ColorImage, RichText, TextureHandle, TextureOptions, WidgetText};
use std::sync::atomic::Ordering;

/// A HUD latency row: its name and which figure of a model's stages it shows.
pub type Row = (&'static str, fn(&StageFigures) -> P50P95);

/// Uploads the composed image as the window's one texture (created on the first frame).
pub fn upload(ctx: &egui::Context, texture: &mut Option<TextureHandle>, image: &Frame, options: TextureOptions) {
    let colour = ColorImage::from_rgb([image.width, image.height], &image.rgb);
    match texture {
        Some(t) => t.set(colour, options),
        None => *texture = Some(ctx.load_texture("frame", colour, options)),
    }
}

/// The fixed-width panel on the right, scrolling when its contents are taller than the window.
pub fn side_panel(ctx: &egui::Context, width: f32, add_contents: impl FnOnce(&mut egui::Ui)) {
    egui::SidePanel::right("panel").exact_width(width).resizable(false).show(ctx, |ui| {
        egui::ScrollArea::vertical().show(ui, add_contents);
    });
}

/// The rest of the window, for the picture, on a grey background.
pub fn picture_area(ctx: &egui::Context, grey: u8, add_contents: impl FnOnce(&mut egui::Ui)) {
    egui::CentralPanel::default().frame(egui::Frame::NONE.fill(Color32::from_gray(grey))).show(ctx, add_contents);
}

/// Paints the whole texture into `rect`.
pub fn paint_frame(ui: &egui::Ui, texture: &TextureHandle, rect: egui::Rect) {
    ui.painter().image(texture.id(), rect, egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)), Color32::WHITE);
}

/// Sizes of a message banner, in points.
#[derive(Debug, Clone, Copy)]
pub struct BannerSize {
    pub font: f32,
    /// From the left edge of the area to the text (and as much free on the right).
    pub margin: f32,
    /// Around the text, inside the red box.
    pub padding: f32,
    pub rounding: f32,
}

/// A message (no camera, no permission, waiting for the source) across the middle of `rect`.
pub fn banner(ui: &egui::Ui, rect: egui::Rect, text: &str, size: BannerSize) {
    let painter = ui.painter_at(rect);
    let galley = painter.layout(text.to_string(), egui::FontId::proportional(size.font), Color32::WHITE, rect.width() - 2.0 * size.margin);
    let pos = egui::pos2(rect.min.x + size.margin, rect.center().y - galley.size().y / 2.0);
    painter.rect_filled(egui::Rect::from_min_size(pos, galley.size()).expand(size.padding), size.rounding, Color32::from_rgba_unmultiplied(120, 0, 0, 220));
    painter.galley(pos, galley, Color32::WHITE);
}

/// "p50 / p95" in milliseconds with `decimals` digits, "-" without samples.
pub fn cell(p: &P50P95, decimals: usize) -> String {
    if p.count == 0 {
        "-".to_string()
    } else {
        format!("{:.*} / {:.*}", decimals, p.p50_ms, decimals, p.p95_ms)
    }
}

/// The HUD's latency grid: one column per model ("-" for a model without results), one line per
/// row, and with `fps_row` the models' result rates.
pub fn latency_grid(ui: &mut egui::Ui, f: &HudFigures, header: [WidgetText; 3], rows: &[Row], decimals: usize, fps_row: bool) {
    egui::Grid::new("hud").striped(true).num_columns(3).show(ui, |ui| {
        for h in header {
            ui.label(h);
        }
        ui.end_row();
        for (name, get) in rows {
            ui.label(*name);
            ui.label(f.pose.as_ref().map(|s| cell(&get(s), decimals)).unwrap_or("-".into()));
            ui.label(f.seg.as_ref().map(|s| cell(&get(s), decimals)).unwrap_or("-".into()));
            ui.end_row();
        }
        if fps_row {
            ui.label("model fps");
            ui.label(f.pose.as_ref().map(|s| format!("{:.1}", s.fps)).unwrap_or("-".into()));
            ui.label(f.seg.as_ref().map(|s| format!("{:.1}", s.fps)).unwrap_or("-".into()));
            ui.end_row();
        }
    });
}

/// The catalogue's models whose files are installed, per task (what the pickers offer).
#[derive(Debug, Clone, Default)]
pub struct Models {
    pub pose: Vec<String>,
    pub seg: Vec<String>,
}

impl Models {
    pub fn installed() -> Models {
        let dir = models_dir();
        let catalog = Catalog::builtin();
        let installed = |name: &str| catalog.get(name).is_ok_and(|m| dir.join(&m.file).is_file());
        let of = |task: Task| -> Vec<String> {
            let models = catalog.models.iter().filter(|m| m.task == task && installed(&m.name)).map(|m| m.name.clone());
            // Top-down pipelines whose two models are installed.
            let pipelines = catalog.pipelines.iter().filter(|p| p.task == task && installed(&p.detector) && installed(&p.single_pose)).map(|p| p.name.clone());
            models.chain(pipelines).collect()
        };
        Models { pose: of(Task::Pose), seg: of(Task::Segmentation) }
    }
}

/// A picker per model (pose, segmentation: `labels`) with "none", and the worker's status
/// (loading, or why it failed) under it. A new model is loaded by its worker.
pub fn model_pickers(ui: &mut egui::Ui, shared: &Shared, models: &Models, labels: [&str; 2]) {
    for (kind, label) in [(Kind::Pose, labels[0]), (Kind::Seg, labels[1])] {
        let mut c = shared.config(kind);
        let models = if kind == Kind::Pose { &models.pose } else { &models.seg };
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
            shared.set_config(kind, c);
        }
        if let Some(s) = shared.worker_status(kind) {
            ui.label(RichText::new(s).color(Color32::YELLOW));
        }
    }
}

/// Where inference runs: tract on the CPU, the library's wgpu compute shaders, or auto.
pub fn backend_picker(ui: &mut egui::Ui, shared: &Shared) {
    let current = shared.config(Kind::Pose).engine.backend;
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
        // Both workers replan on the new backend; a failure (no adapter, a model the GPU cannot
        // run) shows as their status.
        for kind in [Kind::Pose, Kind::Seg] {
            let mut c = shared.config(kind);
            c.engine.backend = backend;
            shared.set_config(kind, c);
        }
    }
}

/// Person threshold (the pose worker's), joint threshold and mask opacity (the drawing's):
/// sliders named by `labels`.
pub fn thresholds(ui: &mut egui::Ui, shared: &Shared, composer: &mut Composer, labels: [&str; 3]) {
    let mut pose = shared.config(Kind::Pose);
    if ui.add(egui::Slider::new(&mut pose.person_threshold, 0.0..=1.0).text(labels[0])).changed() {
        shared.set_config(Kind::Pose, pose);
    }
    let mut style = *composer.style();
    ui.add(egui::Slider::new(&mut style.keypoint_threshold, 0.0..=1.0).text(labels[1]));
    ui.add(egui::Slider::new(&mut style.mask_opacity, 0.0..=1.0).text(labels[2]));
    composer.set_style(style);
}

/// Pause: the picture stays, the workers get no new frames.
pub fn pause(ui: &mut egui::Ui, shared: &Shared) {
    let mut paused = shared.paused.load(Ordering::SeqCst);
    if ui.checkbox(&mut paused, "pause").changed() {
        shared.paused.store(paused, Ordering::SeqCst);
    }
}

/// A picker of camera sizes.
pub fn resolution_picker(ui: &mut egui::Ui, label: &str, choices: &[(u32, u32)], res: &mut (u32, u32)) {
    egui::ComboBox::from_label(label).selected_text(format!("{}x{}", res.0, res.1)).show_ui(ui, |ui| {
        for &r in choices {
            ui.selectable_value(res, r, format!("{}x{}", r.0, r.1));
        }
    });
}

/// What the source delivers (device, size, rate), small.
pub fn source_description(ui: &mut egui::Ui, shared: &Shared) {
    if let Some(i) = shared.source_info() {
        ui.label(RichText::new(i.description).small());
    }
}

/// The tracked people on screen: a swatch of each one's colour with its track id.
pub fn track_ids(ui: &mut egui::Ui, shared: &Shared, composer: &Composer, label: &str) {
    let (_, pose) = shared.pose_out.latest();
    let Some(r) = pose.filter(|_| composer.shown().pose_frame_index.is_some()) else { return };
    if r.people.iter().all(|p| p.track_id.is_none()) {
        return;
    }
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(label).small());
        for (i, p) in r.people.iter().enumerate() {
            let Some(id) = p.track_id else { continue };
            let c = crate::render::person_colour(p, i);
            ui.label(RichText::new(format!(" {id} ")).small().color(Color32::from_rgb(20, 20, 20)).background_color(Color32::from_rgb(c[0], c[1], c[2])));
        }
    });
}

/// Tracking on or off for both workers (a change starts tracking afresh).
pub fn tracking(ui: &mut egui::Ui, shared: &Shared, label: &str) {
    let mut on = shared.config(Kind::Pose).track.enabled;
    if ui.checkbox(&mut on, label).changed() {
        for kind in [Kind::Pose, Kind::Seg] {
            let mut c = shared.config(kind);
            c.track.enabled = on;
            shared.set_config(kind, c);
        }
    }
}
