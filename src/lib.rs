//! edgesight: multi-person pose and person segmentation on edge devices.
//!
//! Data flow (see ARCHITECTURE.md): source (`video_source`, `frame`) -> `preprocess` ->
//! `engine` -> `decode` -> `render` -> sinks (`video_writer`, `records`), driven per frame by
//! `analyzer` and, for whole videos, by `pipeline`; `live` is the desktop demo (camera, window,
//! HUD) on the same analyzer and renderer.
//!
//! The default feature `desktop` adds the desktop camera backend (nokhwa) and window (eframe on
//! X11). Without it the library builds for Android and aarch64 musl: the Android app (`android/`)
//! uses `live`'s pipeline with its own Camera2 capture (`yuv` turns its frames into RGB).

pub mod analyzer;
pub mod assignment;
pub mod bench;
pub mod catalog;
pub mod checkpoint;
pub mod convert;
pub mod data_dirs;
pub mod decode;
pub mod detections;
pub mod engine;
pub mod ffmpeg;
pub mod frame;
pub mod frame_feed;
pub mod glyphs;
pub mod images;
pub mod interrupt;
pub mod live;
pub mod metrics;
pub mod output_files;
pub mod output_paths;
pub mod person_csv;
pub mod pipeline;
pub mod prepare_ahead;
pub mod preprocess;
pub mod records;
pub mod render;
pub mod rng;
pub mod session;
#[cfg(test)]
mod shared_fixtures;
pub mod skeleton;
pub mod stats;
pub mod tensor;
pub mod topdown;
pub mod track;
pub mod video_source;
pub mod video_writer;
pub mod yuv;
