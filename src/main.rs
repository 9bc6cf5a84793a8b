//! The `edgesight` command line: parses flags, runs a mode, turns any error into one message
//! on stderr and exit status 1 (usage errors: 2).

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use edgesight::analyzer::{Analyzer, ModelChoice};
use edgesight::catalog::{models_dir, Catalog, SizeRule, Task};
use edgesight::decode::PoseThresholds;
use edgesight::engine::cpu_kernels::KernelChoice;
use edgesight::engine::tract_cpu::CpuOptions;
use edgesight::engine::memory::MemoryLimit;
use edgesight::engine::{Backend, EngineOptions};
use edgesight::render::Style;
use edgesight::topdown::TopDownParams;
use edgesight::track::{MaskSmoothing, OneEuroParams, TrackOptions, TrackerParams};
use edgesight::engine::gpu::GpuApis;
use edgesight::interrupt::{self, Stop};
use edgesight::video_source::Source;
use edgesight::{bench, convert, data_dirs, frame_feed, images, live, pipeline};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "edgesight", version, about = "Multi-person pose and person segmentation, headless or live")]
struct Cli {
    /// Without a command: `live` when a display is present.
    #[command(subcommand)]
    command: Option<Command>,
    /// CPU threads per inference op: a number, or auto: every core while the models take turns,
    /// half of them each when pose and segmentation run at once (--concurrent-models).
    #[arg(long, global = true, default_value = "auto", value_parser = parse_threads)]
    threads: Threads,
    /// Run pose and segmentation at the same time, each on its own thread(s) (video, image,
    /// bench; the live window always does): auto does from four cores up.
    #[arg(long, global = true, value_enum, default_value_t = Concurrency::Auto)]
    concurrent_models: Concurrency,
    /// Where inference runs: cpu (tract), gpu (wgpu compute shaders; error without a GPU
    /// adapter) or auto (the GPU when one is found and is not a CPU emulation such as llvmpipe,
    /// else the CPU, with a notice).
    #[arg(long, global = true, value_enum, default_value_t = BackendArg::Cpu)]
    backend: BackendArg,
    /// Most memory one model's plan may take, e.g. 800M or 2G (default: what the machine has
    /// available). A model size that needs more is refused before anything is allocated.
    #[arg(long, global = true, value_name = "SIZE", value_parser = edgesight::engine::memory::parse_size)]
    max_memory: Option<u64>,
}

/// `--threads` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Threads {
    Auto,
    Fixed(usize),
}

fn parse_threads(s: &str) -> Result<Threads, String> {
    if s == "auto" {
        return Ok(Threads::Auto);
    }
    match s.parse::<usize>() {
        Ok(n) if (1..=256).contains(&n) => Ok(Threads::Fixed(n)),
        _ => Err(format!("expected auto or a number of threads from 1 to 256, got {s}")),
    }
}

/// Threads per inference op and whether pose and segmentation run at the same time.
///
/// auto: on up to three cores every op gets all of them and the models take turns; from four,
/// the models run at once on half the cores each. Measured on 2 cores (default job, `bench`):
/// all cores per op, in turns, 21.4 / 20.9 fps; the same with the models at once 20.7 / 20.3;
/// one core per model at once 18.3; one thread in turns 18.4.
fn threads_and_concurrency(threads: Threads, concurrent: Concurrency, cores: usize) -> (usize, bool) {
    let cores = cores.max(1);
    let at_once = match concurrent {
        Concurrency::On => true,
        Concurrency::Off => false,
        Concurrency::Auto => cores >= 4,
    };
    let n = match threads {
        Threads::Fixed(n) => n,
        Threads::Auto if at_once => (cores / 2).max(1),
        Threads::Auto => cores,
    };
    (n, at_once)
}

/// `--concurrent-models` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Concurrency {
    /// At once from four cores up (see --threads).
    Auto,
    On,
    Off,
}

/// `--backend` values; the library's `engine::Backend` knows nothing of the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    /// tract on the CPU.
    Cpu,
    /// wgpu compute shaders (Vulkan, Metal, DX12, GL); fails when no GPU adapter exists.
    Gpu,
    /// The GPU when an adapter exists and the model plans on it, else the CPU (and says so).
    Auto,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Backend {
        match b {
            BackendArg::Cpu => Backend::Cpu,
            BackendArg::Gpu => Backend::Gpu,
            BackendArg::Auto => Backend::Auto,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run pose and segmentation on a video file, a stream, standard input or a camera.
    Video {
        /// A video file, a stream URL ffmpeg opens (rtsp://, rtmp://, http(s)://, udp://,
        /// tcp://, srt://...), or - for a stream on standard input.
        #[arg(required_unless_present = "camera", conflicts_with = "camera")]
        input: Option<PathBuf>,
        /// Read V4L2 camera N (/dev/videoN) instead of INPUT.
        #[arg(long, value_name = "N")]
        camera: Option<u32>,
        #[command(flatten)]
        feed: FeedArgs,
        /// Output folder: annotated.mp4, frames.jsonl, report.json (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Also write one PNG person-probability mask per frame to OUT/masks/.
        #[arg(long)]
        masks: bool,
        /// Never draw a progress bar.
        #[arg(long)]
        quiet: bool,
        /// Also write one row per person per frame to this CSV file (frame, timestamp_s,
        /// track_id, score, box, then x, y, score per joint; the header names the joints).
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        #[command(flatten)]
        models: ModelArgs,
        #[command(flatten)]
        track: TrackArgs,
    },
    /// Run pose and segmentation on still images.
    Image {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output folder: <name>.annotated.png per image and images.jsonl.
        #[arg(long)]
        out: PathBuf,
        /// Write pose results in COCO keypoint results format to this file.
        #[arg(long)]
        coco_results: Option<PathBuf>,
        /// COCO annotations file whose `images` list maps file names to image ids.
        #[arg(long)]
        coco_annotations: Option<PathBuf>,
        #[command(flatten)]
        models: ModelArgs,
    },
    /// Desktop demo: camera (or a video file as a camera) with live pose, segmentation and a HUD.
    Live(LiveArgs),
    /// List the models edgesight knows.
    Models,
    /// Measure inference latency and headless pipeline throughput.
    Bench {
        /// Clip for the pipeline measurement (default: vtest-4s.mp4 in the `assets/` folder
        /// beside the models folder).
        #[arg(long)]
        clip: Option<PathBuf>,
        /// Timed inference runs per model.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Models to measure (default: the default pose and segmentation models, alone and together).
        #[arg(long = "model")]
        models: Vec<String>,
        /// Size target (longest or shortest side, per model) for models with a size rule.
        #[arg(long)]
        side: Option<usize>,
        /// Exact input HxW for the inference measurement (skips the pipeline run), e.g. 448x448.
        #[arg(long, value_parser = parse_hw)]
        input: Option<(usize, usize)>,
        /// Give models built from checkpoints seeded random weights (speed does not depend on them).
        #[arg(long)]
        random_weights: bool,
        /// Write each measured model's ONNX file (at the measured size) into this folder.
        #[arg(long, value_name = "DIR")]
        export_onnx: Option<PathBuf>,
        /// Where the pipeline runs write their outputs and bench.json goes.
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
    },
    /// Convert an official LitePose / BEVANet checkpoint to ONNX (strict: every key and shape).
    Convert {
        /// The checkpoint (torch.save zip, as the official code writes it).
        checkpoint: PathBuf,
        /// Architecture, e.g. litepose-s (see the error for the list).
        #[arg(long)]
        arch: String,
        /// Output ONNX file.
        #[arg(long)]
        out: PathBuf,
        /// Input HxW the graph is built for (default: the architecture's training size).
        #[arg(long, value_parser = parse_hw)]
        input: Option<(usize, usize)>,
    },
}

fn parse_hw(s: &str) -> Result<(usize, usize), String> {
    let (h, w) = s.split_once('x').ok_or_else(|| format!("'{s}' is not HxW (e.g. 448x448)"))?;
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0 && n <= 8192);
    match (parse(h), parse(w)) {
        (Some(h), Some(w)) => Ok((h, w)),
        _ => Err(format!("'{s}' is not HxW with sides in 1..=8192")),
    }
}

#[derive(Args, Default)]
struct LiveArgs {
    /// Play this video file as the camera (at its own frame rate, looping) instead of a camera.
    #[arg(long, value_name = "FILE")]
    source: Option<PathBuf>,
    /// Camera index (0: the first camera).
    #[arg(long, default_value_t = 0)]
    camera: u32,
    /// Camera resolution to ask for (the closest the camera offers is used), WxH.
    #[arg(long, default_value = "1280x720", value_parser = parse_wh)]
    resolution: (u32, u32),
    /// Quit after this many source frames were shown (tests, benchmarks).
    #[arg(long)]
    frames: Option<u64>,
    /// At the end of a --frames run: save the window's image region (frame size) as PNG.
    #[arg(long, value_name = "FILE")]
    screenshot: Option<PathBuf>,
    /// At the end of a --frames run: save the whole window as PNG.
    #[arg(long, value_name = "FILE")]
    window_screenshot: Option<PathBuf>,
    /// On exit: write the HUD figures (rates, per-stage latency p50/p95) as JSON.
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
    /// Record the shown frames with their overlay to this MP4 from the start (the run fails when
    /// it cannot be written).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// With --frames: fail when no new source frame arrives for this long (default 10; no
    /// camera, a stalled or empty source).
    #[arg(long, value_name = "SECONDS")]
    source_timeout: Option<f64>,
    #[command(flatten)]
    models: ModelArgs,
    #[command(flatten)]
    track: TrackArgs,
}

/// `--track` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
enum TrackArg {
    /// Match each frame's people to tracks by keypoint similarity (OKS) and box overlap, in
    /// ByteTrack's two stages; each person gets a track_id.
    #[default]
    OksIou,
    /// Every frame on its own: no track ids, no smoothing.
    None,
}

/// `--smooth` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
enum SmoothArg {
    /// One-Euro filter per joint of each track, and masks averaged over time where they change little.
    #[default]
    OneEuro,
    /// Raw joints and masks (tracking stays on).
    None,
}

/// `--keep-up` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KeepUpArg {
    /// On for stream URLs and cameras, off for files and standard input.
    Auto,
    /// The newest frame wins: frames the models cannot keep up with are dropped (and counted).
    On,
    /// Every frame is processed; the input waits.
    Off,
}

/// How a video's frames are read (live sources: keeping up, reconnecting).
#[derive(Args, Clone, Debug)]
struct FeedArgs {
    /// Keep up with the source in real time by dropping frames the models cannot keep up with.
    #[arg(long, value_enum, default_value_t = KeepUpArg::Auto)]
    keep_up: KeepUpArg,
    /// Seconds to wait for a stream's or camera's first frame (a server that refuses the
    /// connection, e.g. a camera still booting, is asked again until then).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    connect_timeout: f64,
    /// Seconds to keep trying to reconnect a stream that dropped before giving it up as lost
    /// (exit status 1, outputs kept); 0: a stream's end is the end of the job.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    reconnect_timeout: f64,
    /// Stop after this many frames have been processed (a stream never ends by itself).
    #[arg(long, value_name = "N")]
    max_frames: Option<u64>,
}

impl FeedArgs {
    fn options(&self) -> Result<frame_feed::FeedOptions> {
        let secs = |name: &str, v: f64| -> Result<std::time::Duration> {
            if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
                anyhow::bail!("{name} must be between 0 and 86400 seconds, got {v}");
            }
            Ok(std::time::Duration::from_secs_f64(v))
        };
        let connect_timeout = secs("--connect-timeout", self.connect_timeout)?;
        if connect_timeout.is_zero() {
            anyhow::bail!("--connect-timeout must be more than 0 seconds");
        }
        Ok(frame_feed::FeedOptions {
            keep_up: match self.keep_up {
                KeepUpArg::Auto => frame_feed::KeepUp::Auto,
                KeepUpArg::On => frame_feed::KeepUp::On,
                KeepUpArg::Off => frame_feed::KeepUp::Off,
            },
            connect_timeout,
            reconnect_timeout: secs("--reconnect-timeout", self.reconnect_timeout)?,
        })
    }
}

/// People over time (video and live; still images are never tracked).
#[derive(Args, Clone, Debug)]
struct TrackArgs {
    /// Tracking of people across frames.
    #[arg(long, value_enum, default_value_t = TrackArg::OksIou)]
    track: TrackArg,
    /// Smoothing of tracked joints and of masks.
    #[arg(long, value_enum, default_value_t = SmoothArg::OneEuro)]
    smooth: SmoothArg,
    /// Seconds a track whose person is not seen is kept, so a person hidden briefly gets the
    /// same id back.
    #[arg(long, value_name = "SECONDS", default_value_t = TrackerParams::default().lost_time_s)]
    track_lost_time: f64,
    /// One-Euro cutoff (Hz) of a still joint: lower is smoother.
    #[arg(long, default_value_t = OneEuroParams::default().min_cutoff)]
    smooth_min_cutoff: f32,
    /// One-Euro speed coefficient (Hz per person height per second): higher follows fast
    /// motion with less lag.
    #[arg(long, default_value_t = OneEuroParams::default().beta)]
    smooth_beta: f32,
    /// One-Euro cutoff (Hz) of the speed estimate.
    #[arg(long, default_value_t = OneEuroParams::default().d_cutoff)]
    smooth_d_cutoff: f32,
    /// Mask smoothing: time constant (seconds) of the average where the person probability
    /// changes little.
    #[arg(long, value_name = "SECONDS", default_value_t = MaskSmoothing::default().time_constant_s)]
    smooth_mask_time: f32,
    /// Mask smoothing: probability changes up to this are averaged fully ...
    #[arg(long, default_value_t = MaskSmoothing::default().calm_below)]
    smooth_mask_calm: f32,
    /// ... and changes from this on are taken as they are (a person moving: no ghost).
    #[arg(long, default_value_t = MaskSmoothing::default().follow_above)]
    smooth_mask_follow: f32,
}

impl Default for TrackArgs {
    fn default() -> Self {
        let p = OneEuroParams::default();
        TrackArgs {
            track: TrackArg::OksIou,
            smooth: SmoothArg::OneEuro,
            track_lost_time: TrackerParams::default().lost_time_s,
            smooth_min_cutoff: p.min_cutoff,
            smooth_beta: p.beta,
            smooth_d_cutoff: p.d_cutoff,
            smooth_mask_time: MaskSmoothing::default().time_constant_s,
            smooth_mask_calm: MaskSmoothing::default().calm_below,
            smooth_mask_follow: MaskSmoothing::default().follow_above,
        }
    }
}

impl TrackArgs {
    /// The options, checked; `joint_threshold` is --keypoint-threshold (joints below it take no
    /// part in matching or smoothing, as they are not drawn).
    fn options(&self, joint_threshold: f32) -> Result<TrackOptions> {
        if !(self.track_lost_time.is_finite() && (0.0..=3600.0).contains(&self.track_lost_time)) {
            anyhow::bail!("--track-lost-time must be between 0 and 3600 seconds, got {}", self.track_lost_time);
        }
        for (name, v) in [("--smooth-min-cutoff", self.smooth_min_cutoff), ("--smooth-d-cutoff", self.smooth_d_cutoff)] {
            if !(v.is_finite() && v > 0.0 && v <= 1000.0) {
                anyhow::bail!("{name} must be a frequency in Hz above 0 (at most 1000), got {v}");
            }
        }
        if !(self.smooth_beta.is_finite() && (0.0..=1000.0).contains(&self.smooth_beta)) {
            anyhow::bail!("--smooth-beta must be between 0 and 1000, got {}", self.smooth_beta);
        }
        if !(self.smooth_mask_time.is_finite() && self.smooth_mask_time > 0.0 && self.smooth_mask_time <= 60.0) {
            anyhow::bail!("--smooth-mask-time must be between 0 and 60 seconds (above 0), got {}", self.smooth_mask_time);
        }
        let (calm, follow) = (self.smooth_mask_calm, self.smooth_mask_follow);
        if !((0.0..=1.0).contains(&calm) && (0.0..=1.0).contains(&follow) && calm < follow) {
            anyhow::bail!("--smooth-mask-calm and --smooth-mask-follow must lie in 0..1 with calm < follow, got {calm} and {follow}");
        }
        if self.track == TrackArg::None {
            return Ok(TrackOptions::off());
        }
        let mut o = TrackOptions::default();
        o.people.lost_time_s = self.track_lost_time;
        o.people.joint_threshold = joint_threshold;
        o.people.smoothing = Some(OneEuroParams { min_cutoff: self.smooth_min_cutoff, beta: self.smooth_beta, d_cutoff: self.smooth_d_cutoff });
        o.mask = Some(MaskSmoothing { time_constant_s: self.smooth_mask_time, calm_below: calm, follow_above: follow });
        Ok(match self.smooth {
            SmoothArg::OneEuro => o,
            SmoothArg::None => o.unsmoothed(),
        })
    }
}

fn parse_wh(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or_else(|| format!("'{s}' is not WxH (e.g. 1280x720)"))?;
    let parse = |v: &str| v.trim().parse::<u32>().ok().filter(|&n| n > 0 && n <= 8192);
    match (parse(w), parse(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("'{s}' is not WxH with sides in 1..=8192")),
    }
}

fn live_options(a: LiveArgs, engine: &EngineOptions) -> Result<live::LiveOptions> {
    a.models.check_ranges()?;
    if a.models.flip_test {
        anyhow::bail!("--flip-test doubles inference time and is not offered in live mode; use it with video or image");
    }
    if a.frames == Some(0) {
        anyhow::bail!("--frames must be at least 1");
    }
    if (a.screenshot.is_some() || a.window_screenshot.is_some()) && a.frames.is_none() {
        anyhow::bail!("--screenshot and --window-screenshot are taken at the end of a --frames N run; use the window's screenshot button otherwise");
    }
    let source_timeout = a.source_timeout.unwrap_or(10.0);
    if !(source_timeout.is_finite() && source_timeout > 0.0 && source_timeout <= 3600.0) {
        anyhow::bail!("--source-timeout must be between 0 and 3600 seconds (above 0), got {source_timeout}");
    }
    if let Some(p) = &a.record {
        edgesight::output_paths::check_writable(p).map_err(|e| anyhow::anyhow!("--record: cannot write {}: {e}", p.display()))?;
    }
    let choice = a.models.choice(engine);
    if choice.pose.is_none() && choice.pose_file.is_some() {
        anyhow::bail!("--pose-model was given but pose is off (--pose none)");
    }
    if choice.seg.is_none() && choice.seg_file.is_some() {
        anyhow::bail!("--seg-model was given but segmentation is off (--seg none)");
    }
    let catalog = Catalog::builtin();
    if let Some(p) = &choice.pose {
        catalog.method_for_task(p, Task::Pose)?;
    }
    if let Some(s) = &choice.seg {
        catalog.get_for_task(s, Task::Segmentation)?;
    }
    let source = match a.source {
        Some(p) => {
            if !p.is_file() {
                anyhow::bail!("--source {} is not a file", p.display());
            }
            live::capture::SourceSpec::File(p)
        }
        None => live::capture::SourceSpec::Camera { index: a.camera, width: a.resolution.0, height: a.resolution.1 },
    };
    let person_threshold = a.models.person_threshold;
    let track = a.track.options(a.models.keypoint_threshold)?;
    Ok(live::LiveOptions {
        source,
        pose: live::worker::WorkerConfig {
            model: choice.pose,
            file: choice.pose_file,
            size: choice.pose_size,
            person_threshold,
            engine: choice.engine.clone(),
            track: track.clone(),
            topdown: choice.topdown,
        },
        seg: live::worker::WorkerConfig {
            model: choice.seg,
            file: choice.seg_file,
            size: choice.seg_size,
            person_threshold,
            engine: choice.engine,
            track,
            topdown: choice.topdown,
        },
        style: a.models.style(),
        frames: a.frames,
        screenshot: a.screenshot,
        window_screenshot: a.window_screenshot,
        stats: a.stats,
        record: a.record,
        source_timeout: std::time::Duration::from_secs_f64(source_timeout),
    })
}

#[derive(Args)]
struct ModelArgs {
    /// Pose model from `edgesight models`, or `none`.
    #[arg(long, default_value = Catalog::default_for(Task::Pose))]
    pose: String,
    /// Segmentation model from `edgesight models`, or `none`.
    #[arg(long, default_value = Catalog::default_for(Task::Segmentation))]
    seg: String,
    /// Use this ONNX file with the pose model's description (e.g. a converted checkpoint).
    #[arg(long, value_name = "FILE")]
    pose_model: Option<PathBuf>,
    /// Use this ONNX file with the segmentation model's description.
    #[arg(long, value_name = "FILE")]
    seg_model: Option<PathBuf>,
    /// Pose input size: longest side for MoveNet (multiple of 32, default 384), short side for
    /// LitePose (multiple of 64).
    #[arg(long)]
    pose_size: Option<usize>,
    /// Segmentation input size for models with a size rule (BEVANet: longest side, multiple of 64).
    #[arg(long)]
    seg_size: Option<usize>,
    /// LitePose: average with a horizontally flipped pass, as the official evaluation does.
    #[arg(long)]
    flip_test: bool,
    /// Minimum person score for a reported person.
    #[arg(long, default_value_t = PoseThresholds::default().person)]
    person_threshold: f32,
    /// Minimum joint score for a drawn joint.
    #[arg(long, default_value_t = Style::default().keypoint_threshold)]
    keypoint_threshold: f32,
    /// Mask opacity in the overlay (0..1).
    #[arg(long, default_value_t = Style::default().mask_opacity)]
    mask_opacity: f32,
    /// Top-down pose (--pose topdown-thunder / topdown-lightning): run the person detector on
    /// every this many frames of a video (1: every frame); in between, people are followed from
    /// the last frame's joints. It also runs whenever a person is lost.
    #[arg(long, default_value_t = TopDownParams::default().detect_every)]
    detect_every: u32,
    /// Top-down pose: at most this many people per frame (the best scoring).
    #[arg(long, default_value_t = TopDownParams::default().max_people)]
    max_people: usize,
}

impl Default for ModelArgs {
    fn default() -> Self {
        ModelArgs {
            pose: Catalog::default_for(Task::Pose).to_string(),
            seg: Catalog::default_for(Task::Segmentation).to_string(),
            pose_model: None,
            seg_model: None,
            pose_size: None,
            seg_size: None,
            flip_test: false,
            person_threshold: PoseThresholds::default().person,
            keypoint_threshold: Style::default().keypoint_threshold,
            mask_opacity: Style::default().mask_opacity,
            detect_every: TopDownParams::default().detect_every,
            max_people: TopDownParams::default().max_people,
        }
    }
}

impl ModelArgs {
    fn choice(&self, engine: &EngineOptions) -> ModelChoice {
        let pick = |s: &String| (s != "none").then(|| s.clone());
        ModelChoice {
            pose: pick(&self.pose),
            pose_file: self.pose_model.clone(),
            pose_size: self.pose_size,
            flip_test: self.flip_test,
            seg: pick(&self.seg),
            seg_file: self.seg_model.clone(),
            seg_size: self.seg_size,
            engine: engine.clone(),
            topdown: self.topdown(),
        }
    }

    fn topdown(&self) -> TopDownParams {
        TopDownParams { detect_every: self.detect_every, max_people: self.max_people, ..TopDownParams::default() }
    }

    fn check_ranges(&self) -> Result<()> {
        for (name, v) in [("--person-threshold", self.person_threshold), ("--keypoint-threshold", self.keypoint_threshold), ("--mask-opacity", self.mask_opacity)] {
            if !(0.0..=1.0).contains(&v) {
                anyhow::bail!("{name} must be between 0 and 1, got {v}");
            }
        }
        if !(1..=10_000).contains(&self.detect_every) {
            anyhow::bail!("--detect-every must be between 1 and 10000 frames, got {}", self.detect_every);
        }
        if !(1..=10_000).contains(&self.max_people) {
            anyhow::bail!("--max-people must be between 1 and 10000, got {}", self.max_people);
        }
        Ok(())
    }

    fn analyzer(&self, engine: &EngineOptions) -> Result<Analyzer> {
        self.check_ranges()?;
        Analyzer::new(&self.choice(engine), PoseThresholds { person: self.person_threshold })
    }

    fn style(&self) -> Style {
        Style { keypoint_threshold: self.keypoint_threshold, mask_opacity: self.mask_opacity, ..Style::default() }
    }
}

fn list_models() {
    let dir = models_dir();
    let catalog = Catalog::builtin();
    println!("{:<18} {:<13} {:<22} {:<24} {:<11} weights", "name", "task", "input", "file", "licence");
    for m in &catalog.models {
        let input = match m.input.size {
            SizeRule::Fixed { height, width } => format!("{height}x{width} {}", m.input.dtype.name()),
            SizeRule::LongestSide { longest_side, multiple_of } => {
                format!("long side {longest_side} (/{multiple_of}) {}", m.input.dtype.name())
            }
            SizeRule::ShortSide { short_side, multiple_of } => {
                format!("short side {short_side} (/{multiple_of}) {}", m.input.dtype.name())
            }
        };
        let present = if dir.join(&m.file).is_file() {
            ""
        } else if m.user_supplied {
            " (not bundled)"
        } else {
            " (file missing)"
        };
        let weights = if m.trained { "trained" } else { "untrained fixture weights" };
        println!("{:<18} {:<13} {:<22} {:<24} {:<11} {weights}", m.name, m.task, input, format!("{}{present}", m.file), m.licence);
    }
    for p in &catalog.pipelines {
        println!("{:<18} {:<13} {} + {} per person (top-down, no limit on people)", p.name, p.task, p.detector, p.single_pose);
    }
    println!("\nmodel files are read from {}", dir.display());
}

fn run(cli: Cli) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (threads, concurrent) = threads_and_concurrency(cli.threads, cli.concurrent_models, cores);
    // The kernels' developer switches and WGPU_BACKEND are read here, at the top level, and
    // passed down.
    let gpu = match std::env::var("WGPU_BACKEND") {
        Ok(v) => GpuApis::parse(&v)?,
        Err(std::env::VarError::NotPresent) => GpuApis::default(),
        Err(std::env::VarError::NotUnicode(v)) => anyhow::bail!("WGPU_BACKEND={v:?} is not text; valid values: {}", edgesight::engine::gpu::apis::VALID_APIS),
    };
    let max_memory = cli.max_memory.map_or(MemoryLimit::Available, MemoryLimit::Bytes);
    let gpu_skip_rules = gpu_skip_rules()?;
    let gpu_conv_shader = gpu_conv_shader()?;
    let engine = EngineOptions { backend: cli.backend.into(), cpu: CpuOptions { threads, kernels: KernelChoice::from_env()? }, gpu, max_memory, gpu_skip_rules, gpu_conv_shader };
    // The models folder, found once here (convert needs none); the library reads it from
    // EDGESIGHT_MODELS, which is set to it before any thread starts.
    let models_dir = match &cli.command {
        Some(Command::Convert { .. }) => None,
        _ => {
            let dir = data_places().models_dir()?;
            std::env::set_var("EDGESIGHT_MODELS", &dir);
            Some(dir)
        }
    };
    let command = match cli.command {
        Some(c) => c,
        None => {
            if live::check_display().is_err() {
                use clap::CommandFactory;
                Cli::command().print_help()?;
                eprintln!("\nno display: give a command (live needs a desktop session)");
                std::process::exit(2);
            }
            Command::Live(LiveArgs { resolution: (1280, 720), ..LiveArgs::default() })
        }
    };
    match command {
        #[cfg(feature = "desktop")]
        Command::Live(args) => live::run(live_options(args, &engine)?)?,
        #[cfg(not(feature = "desktop"))]
        Command::Live(args) => {
            live_options(args, &engine)?;
            anyhow::bail!("this edgesight was built without the `desktop` feature: live mode (camera, window) is not available");
        }
        Command::Models => list_models(),
        Command::Video { input, camera, feed, out, masks, quiet, csv, models, track } => {
            let source = match (camera, input) {
                (Some(n), _) => Source::Camera(n),
                (None, Some(p)) => Source::from_arg(&p),
                (None, None) => anyhow::bail!("give a video file, a stream URL, - (standard input) or --camera N"),
            };
            let track = track.options(models.keypoint_threshold)?;
            let job = pipeline::VideoJob {
                input: source,
                feed: feed.options()?,
                max_frames: feed.max_frames,
                out_dir: out,
                write_masks: masks,
                style: models.style(),
                progress: !quiet,
                track,
                csv,
                stop: Stop::on_signals(),
            };
            // The input opens (ffmpeg starts, a file's first frames are decoded) while the models
            // load; a model that fails is reported first, as without the overlap.
            let failed = std::sync::atomic::AtomicBool::new(false);
            let (analyzer, input) = std::thread::scope(|scope| {
                let input = scope.spawn(|| pipeline::open_input(&job, &|| failed.load(std::sync::atomic::Ordering::Relaxed)));
                let analyzer = models.analyzer(&engine);
                failed.store(analyzer.is_err(), std::sync::atomic::Ordering::Relaxed);
                (analyzer, input.join())
            });
            let mut analyzer = analyzer?;
            let input = input.map_err(|_| anyhow::anyhow!("opening the input failed"))??;
            analyzer.concurrent = concurrent;
            let report = pipeline::run(&job, input, &mut analyzer)?.into_result()?;
            eprintln!(
                "{} frames in {:.1} s ({:.2} fps); outputs in {}",
                report.frames,
                report.wall_time_s,
                report.fps,
                job.out_dir.display()
            );
        }
        Command::Image { files, out, coco_results, coco_annotations, models } => {
            let mut analyzer = models.analyzer(&engine)?;
            analyzer.concurrent = concurrent;
            let job = images::ImageJob { files, out_dir: out, coco_results, coco_annotations, style: models.style(), stop: Stop::on_signals() };
            let n = images::run(&job, &mut analyzer)?;
            eprintln!("{n} images; outputs in {}", job.out_dir.display());
        }
        Command::Bench { clip, runs, models, side, input, random_weights, export_onnx, out } => {
            let clip = clip.unwrap_or_else(|| data_dirs::assets_dir(models_dir.as_deref().unwrap_or(Path::new("models"))).join("vtest-4s.mp4"));
            if runs == 0 {
                anyhow::bail!("--runs must be at least 1");
            }
            bench::run(&bench::BenchJob { clip, runs, models, side, input, random_weights, export_onnx, out_dir: out, engine, concurrent })?;
        }
        Command::Convert { checkpoint, arch, out, input } => {
            let (h, w) = match input {
                Some(hw) => hw,
                None => convert::default_input(convert::arch(&arch)?),
            };
            let what = convert::convert_file(&checkpoint, &arch, &out, h, w)?;
            eprintln!("wrote {} ({what}, built for input {h}x{w})", out.display());
        }
    }
    Ok(())
}

/// `EDGESIGHT_GPU_SKIP_RULES`: GPU fusion rules to leave out (comma-separated names, or "all"),
/// a developer switch for measuring each rule on a GPU.
fn gpu_skip_rules() -> Result<Vec<String>> {
    let Ok(v) = std::env::var("EDGESIGHT_GPU_SKIP_RULES") else { return Ok(vec![]) };
    let names = edgesight::engine::gpu::graph::fuse::rule_names();
    let mut out = vec![];
    for r in v.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        if r != "all" && !names.contains(&r) {
            anyhow::bail!("EDGESIGHT_GPU_SKIP_RULES: unknown rule '{r}'; rules: {}, all", names.join(", "));
        }
        out.push(r.to_string());
    }
    Ok(out)
}

/// `EDGESIGHT_GPU_CONV`: the GPU shader for every dense convolution it can run (conv1x1_vec4,
/// conv1x1_gemm, conv_igemm, conv_dense; empty or "auto": the default and, on real GPUs, the
/// fastest by timing), a developer switch for comparing the variants on a GPU.
fn gpu_conv_shader() -> Result<Option<edgesight::engine::gpu::kernels::Shader>> {
    use edgesight::engine::gpu::kernels::Shader;
    let v = std::env::var("EDGESIGHT_GPU_CONV").unwrap_or_default();
    let v = v.trim();
    if v.is_empty() || v == "auto" {
        return Ok(None);
    }
    let shaders = [Shader::Conv1x1Vec4, Shader::Conv1x1Gemm, Shader::ConvIgemm, Shader::ConvDense];
    match shaders.iter().find(|s| s.name() == v) {
        Some(s) => Ok(Some(*s)),
        None => {
            let names: Vec<&str> = shaders.iter().map(|s| s.name()).collect();
            anyhow::bail!("EDGESIGHT_GPU_CONV: unknown shader '{v}'; shaders: {}, auto", names.join(", "))
        }
    }
}

/// Where the models folder may be, from the environment and the executable's path (see
/// `data_dirs`). EDGESIGHT_NO_SOURCE_TREE=1 drops the last resort, the source tree this binary
/// was built from (tests of a copied binary use it).
fn data_places() -> data_dirs::Places {
    let var = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty()).map(PathBuf::from);
    let data_home = var("XDG_DATA_HOME").or_else(|| var("HOME").map(|h| h.join(".local/share")));
    let source_tree = (std::env::var("EDGESIGHT_NO_SOURCE_TREE").as_deref() != Ok("1")).then(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    data_dirs::Places { explicit: var("EDGESIGHT_MODELS"), exe: std::env::current_exe().ok(), data_home, cwd: std::env::current_dir().ok(), source_tree }
}

/// Window and GPU libraries (winit, wayland, Mesa) print "error: XDG_RUNTIME_DIR is invalid or
/// not set" when it is missing (containers, CI, sudo); a private folder of our own (0700, as the
/// XDG spec asks) keeps those lines, which are no errors of ours, off stderr. Done first, before
/// any such library starts or any thread exists.
#[cfg(unix)]
fn ensure_runtime_dir() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).is_some_and(|d| d.is_absolute() && d.is_dir()) {
        return;
    }
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    for name in [format!("edgesight-runtime-{uid}"), format!("edgesight-runtime-{uid}-{}", std::process::id())] {
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        // Only a folder that is ours and private (not one planted by another user).
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o777 == 0o700) {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
            return;
        }
    }
}

#[cfg(not(unix))]
fn ensure_runtime_dir() {}

fn main() {
    ensure_runtime_dir();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("edgesight: error: {e:#}");
        // A run stopped by a signal exits as the shell expects of one (130 for Ctrl-C).
        let status = e.downcast_ref::<pipeline::Interrupted>().map_or(1, |i| interrupt::exit_status(i.signal));
        std::process::exit(status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_threads_share_the_cores() {
        let f = threads_and_concurrency;
        assert_eq!(f(Threads::Auto, Concurrency::Auto, 2), (2, false));
        assert_eq!(f(Threads::Auto, Concurrency::Auto, 1), (1, false));
        assert_eq!(f(Threads::Auto, Concurrency::Auto, 8), (4, true));
        assert_eq!(f(Threads::Auto, Concurrency::On, 2), (1, true));
        assert_eq!(f(Threads::Fixed(3), Concurrency::Auto, 8), (3, true));
        assert_eq!(f(Threads::Fixed(1), Concurrency::Off, 8), (1, false));
        assert_eq!(parse_threads("auto"), Ok(Threads::Auto));
        assert_eq!(parse_threads("2"), Ok(Threads::Fixed(2)));
        assert!(parse_threads("0").is_err() && parse_threads("x").is_err() && parse_threads("257").is_err());
    }
}
