//! edgesight on Android: the rear camera with live skeletons and person masks.
//!
//! A NativeActivity app without Java code (android-activity provides ANativeActivity_onCreate
//! and calls `android_main`). It runs the desktop demo's pipeline from the edgesight library:
//!
//! ```text
//! capture thread (camera.rs: Camera2 -> AImageReader -> yuv::to_frame)
//!     --Watch (newest)-----------------------------------------> UI (app.rs, eframe on wgpu)
//!     --Slot (latest wins)--> pose worker (CPU or GPU) --Watch-->  render::draw + HUD
//!     --Slot (latest wins)--> seg worker  (CPU or GPU) --Watch-->
//! ```
//!
//! Models come from the APK's assets (assets.rs); the camera permission is asked at run time
//! through JNI (jvm.rs). Only compiled for Android: on other targets this crate is empty.

#![cfg(target_os = "android")]

mod app;
mod assets;
mod camera;
mod jvm;
mod logger;

use android_activity::AndroidApp;
use anyhow::{anyhow, Result};
use edgesight::catalog::{Catalog, Task};
use edgesight::engine::tract_cpu::CpuOptions;
use edgesight::engine::EngineOptions;
use edgesight::live::capture::{self, SourceSpec};
use edgesight::live::worker::WorkerConfig;
use edgesight::live::{self, Shared};
use edgesight::render::Style;
use std::sync::Arc;
use std::time::Duration;

/// The camera size asked for first: enough for the models (MoveNet reads 384 px), cheap to convert.
const START_RESOLUTION: (u32, u32) = (640, 480);

#[no_mangle]
fn android_main(app: AndroidApp) {
    logger::init();
    if let Err(e) = run(app) {
        log::error!("{e:#}");
    }
}

fn run(app: AndroidApp) -> Result<()> {
    // Models first: the workers look for them in EDGESIGHT_MODELS.
    let startup_problem = match assets::install_models(&app) {
        Ok(dir) => {
            // Set before any of our threads starts.
            std::env::set_var("EDGESIGHT_MODELS", &dir);
            None
        }
        Err(e) => {
            log::error!("{e:#}");
            Some(format!("cannot install the models: {e:#}"))
        }
    };
    // Inference threads per model: phones have big and little cores; two models run at once.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let engine = EngineOptions { cpu: CpuOptions { threads: (cores / 2).clamp(1, 4), ..CpuOptions::default() }, ..EngineOptions::default() };

    match jvm::camera_permission_granted(&app) {
        Ok(true) => {}
        Ok(false) => jvm::request_camera_permission_on_main_thread(&app),
        Err(e) => log::error!("{e:#}"),
    }

    let model = |task| Some(Catalog::default_for(task).to_string());
    let pose = WorkerConfig { model: model(Task::Pose), engine: engine.clone(), ..WorkerConfig::off() };
    let seg = WorkerConfig { model: model(Task::Segmentation), engine, ..WorkerConfig::off() };
    let (w, h) = START_RESOLUTION;
    let shared = Arc::new(Shared::new(SourceSpec::Camera { index: 0, width: w, height: h }, pose, seg));

    let mut threads = Vec::new();
    {
        let (s, a) = (shared.clone(), app.clone());
        threads.push(
            std::thread::Builder::new()
                .name("capture".into())
                .spawn(move || capture::run_with(s, move |shared, generation, index, width, height| camera::run(&a, shared, generation, index, width, height)))?,
        );
    }
    threads.extend(live::spawn_workers(&shared)?);

    let options = eframe::NativeOptions { android_app: Some(app.clone()), renderer: eframe::Renderer::Wgpu, ..Default::default() };
    let ui_shared = shared.clone();
    let outcome = eframe::run_native(
        "edgesight",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            ui_shared.set_repaint(move || ctx.request_repaint());
            Ok(Box::new(app::PhoneApp::new(app, ui_shared, Style::default(), START_RESOLUTION, startup_problem)))
        }),
    );
    shared.request_stop();
    live::join_within(threads, Duration::from_secs(3));
    outcome.map_err(|e| anyhow!("the window failed: {e}"))
}
