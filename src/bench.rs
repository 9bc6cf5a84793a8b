//! `edgesight bench`: inference latency per model and the headless pipeline's throughput on a
//! clip, with the share of time the pipeline spends beyond inference.

use crate::analyzer::Analyzer;
use crate::catalog::{Catalog, ModelSpec, SizeRule, Task};
use crate::decode::PoseThresholds;
use crate::engine::{Backend, Engine, EngineOptions};
use crate::frame::Frame;
use crate::pipeline::{self, VideoJob};
use crate::render::Style;
use crate::session::ModelSession;
use crate::stats::summarise;
use crate::track::TrackOptions;
use crate::video_source::{self, VideoReader};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

pub struct BenchJob {
    pub clip: PathBuf,
    pub runs: usize,
    /// Catalogue names to measure; empty means the defaults of both tasks.
    pub models: Vec<String>,
    /// Size target (longest or shortest side) for models with a size rule.
    pub side: Option<usize>,
    /// Exact input size for the inference measurement (pipeline runs are skipped).
    pub input: Option<(usize, usize)>,
    /// Models built from checkpoints get seeded random weights (speed only).
    pub random_weights: bool,
    /// Write each measured model's ONNX (at the measured size) here, for other runtimes.
    pub export_onnx: Option<PathBuf>,
    pub out_dir: PathBuf,
    /// Backend, CPU threads and kernels of every measured model.
    pub engine: EngineOptions,
    /// Pose and segmentation at the same time in the pipeline runs (`--threads auto`).
    pub concurrent: bool,
}

#[derive(Debug, Serialize)]
pub struct BenchRow {
    pub model: String,
    pub input_shape: Vec<usize>,
    pub backend: String,
    pub trained_weights: bool,
    pub inference_p50_ms: f64,
    pub inference_p95_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineFigures>,
    /// GPU backend only: the plan and a per-kernel profile.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpu: Vec<GpuFigures>,
}

/// One model on the GPU: where the time goes and what the depthwise shaders achieve.
#[derive(Debug, Serialize)]
pub struct GpuFigures {
    pub model: String,
    pub plan: String,
    /// Kernels dispatched per frame.
    pub dispatches: usize,
    /// How the kernels were timed (`ProfileMethod`).
    pub timing: String,
    /// Milliseconds per shader family.
    pub shader_ms: Vec<(String, f64)>,
    /// The ten slowest kernels (label with fused ops, ms).
    pub slowest_kernels_ms: Vec<(String, f64)>,
    pub depthwise: Vec<DepthwiseFigures>,
    /// One frame split: upload + kernels + download, then the CPU tail (0 without one).
    pub gpu_part_ms: f64,
    pub cpu_tail_ms: f64,
}

/// A depthwise convolution of the model: the tiled shader against the naive reference.
#[derive(Debug, Serialize)]
pub struct DepthwiseFigures {
    pub kernel: String,
    pub tiled_ms: f64,
    pub naive_ms: f64,
    /// Minimum bytes moved (input, output, weights) over the tiled shader's time.
    pub tiled_gb_per_s: f64,
    pub tiled_gmac_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct PipelineFigures {
    pub fps: f64,
    pub inference_ms_per_frame: f64,
    /// Tracking and smoothing (people and mask), mean per frame, and as a share of inference.
    pub track_ms_per_frame: f64,
    pub track_percent_of_inference: f64,
    pub wall_ms_per_frame: f64,
    pub overhead_percent: f64,
}

fn open_session(spec: ModelSpec, random: bool, engine: &EngineOptions) -> Result<ModelSession> {
    if random && spec.arch.is_some() {
        return ModelSession::with_random_weights(spec, 2024, engine);
    }
    let path = crate::catalog::models_dir().join(&spec.file);
    spec.check_checkpoint_present(&path, |family| {
        format!("measure it with --random-weights (speed does not depend on weight values), or put an official {family} checkpoint there")
    })?;
    ModelSession::open(spec, &path, engine)
}

pub fn run(job: &BenchJob) -> Result<Vec<BenchRow>> {
    let catalog = Catalog::builtin();
    let names: Vec<String> = if job.models.is_empty() {
        vec![Catalog::default_for(Task::Pose).into(), Catalog::default_for(Task::Segmentation).into()]
    } else {
        job.models.clone()
    };
    // Unknown names are refused before any work or output; pipelines are measured apart.
    let (pipelines, names): (Vec<String>, Vec<String>) = names.into_iter().partition(|n| catalog.pipelines.iter().any(|p| p.name == *n));
    for n in &names {
        catalog.get(n)?;
    }
    if !pipelines.is_empty() && job.input.is_some() {
        bail!("--input sets one model's input size; top-down pipelines ({}) have fixed sizes", pipelines.join(", "));
    }
    // With an exact --input size the clip only supplies pixel values, and speed does not depend
    // on them: when it is absent or unreadable (e.g. a GPU machine without ffmpeg), a synthetic
    // frame of that size stands in, with a note saying why.
    let read_first = || -> Result<(Frame, crate::video_source::VideoInfo)> {
        let info = video_source::probe(&job.clip)?;
        let first = VideoReader::open(&info)?
            .next_frame()?
            .with_context(|| format!("{} has no frames", job.clip.display()))?;
        Ok((first, info))
    };
    let (first, _info) = match job.input {
        Some((h, w)) => match read_first() {
            Ok((first, info)) => (first, Some(info)),
            Err(e) => {
                eprintln!("note: cannot read {} ({e:#}); measuring on a synthetic {w}x{h} frame", job.clip.display());
                let rgb = (0..w * h * 3).map(|i| ((i * 7) % 251) as u8).collect();
                (Frame { width: w, height: h, rgb, index: 0, timestamp_s: 0.0 }, None)
            }
        },
        None => {
            let (first, info) = read_first()?;
            (first, Some(info))
        }
    };
    let mut configs: Vec<Vec<String>> = names.iter().map(|n| vec![n.clone()]).collect();
    if job.input.is_none() && names.len() == 2 && catalog.get(&names[0])?.task != catalog.get(&names[1])?.task {
        configs.push(names.clone());
    }
    if let Some(dir) = &job.export_onnx {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut rows = Vec::new();
    let mut soak = None;
    println!("{:<32} {:>14} {:>9} {:>9} {:>8} {:>10} {:>9}", "model", "input", "p50 ms", "p95 ms", "fps", "wall ms/f", "overhead");
    // The tracker soak runs on the last configuration with a pose model (pose + segmentation
    // when both are measured).
    let soak_at = configs.iter().rposition(|c| c.iter().any(|n| catalog.get(n).is_ok_and(|m| m.task == Task::Pose)));
    for (ci, cfg) in configs.into_iter().enumerate() {
        // The clip opens while the models load, as in `edgesight video`.
        let vjob = VideoJob {
            input: crate::video_source::Source::File(job.clip.clone()),
            feed: Default::default(),
            max_frames: None,
            out_dir: job.out_dir.join(cfg.join("+")),
            write_masks: false,
            style: Style::default(),
            progress: false,
            track: TrackOptions::default(),
            csv: None,
            stop: crate::interrupt::Stop::never(),
        };
        let input = match job.input {
            Some(_) => None,
            None => Some(pipeline::open_input(&vjob, &|| false)?),
        };
        let mut analyzer = Analyzer { pose: None, seg: None, thresholds: PoseThresholds::default(), concurrent: false };
        let mut trained = true;
        for name in &cfg {
            let mut spec = catalog.get(name)?.clone();
            if let Some(side) = job.side {
                spec = spec.with_side(side)?;
            }
            if let Some((h, w)) = job.input {
                spec.input.size = SizeRule::Fixed { height: h, width: w };
            }
            trained &= spec.trained || job.random_weights;
            let session = open_session(spec.clone(), job.random_weights, &job.engine)?;
            match spec.task {
                Task::Pose => analyzer.pose = Some(crate::analyzer::PoseRunner::Model(session)),
                Task::Segmentation => analyzer.seg = Some(session),
                Task::Detection => bail!("'{name}' is a detector: measure it inside a top-down pipeline (--model topdown-thunder)"),
            }
        }
        analyzer.prepare_for(first.width, first.height)?;
        // Inference alone, on the clip's first frame, per model: after the clip's decoder has
        // filled its read-ahead and stopped.
        if let Some(input) = &input {
            input.wait_read_ahead(std::time::Duration::from_secs(5));
        }
        let mut samples = Vec::new();
        let mut shapes = Vec::new();
        let mut gpu = Vec::new();
        for s in analyzer.sessions_mut() {
            if let Some(dir) = &job.export_onnx {
                let path = dir.join(format!("{}.onnx", s.spec.name));
                std::fs::write(&path, s.onnx_bytes(first.width, first.height)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            samples.push(time_inference(s, &first, job.runs)?);
            shapes.push(s.prepare_for(first.width, first.height)?.input_shape().to_vec());
            if let Some(g) = gpu_figures(s, &first, job.engine.backend)? {
                gpu.push(g);
            }
        }
        // Sum per run across the models of this configuration.
        let per_run: Vec<f64> = (0..job.runs).map(|i| samples.iter().map(|s| s[i]).sum()).collect();
        let lat = summarise(&per_run);
        let pipeline = match input {
            None => None,
            Some(input) => {
                analyzer.concurrent = job.concurrent;
                let report = pipeline::run(&vjob, input, &mut analyzer)?.into_result()?;
                let mean = |stage: &str| report.stages.get(stage).map_or(0.0, |s| s.mean_ms);
                Some(PipelineFigures {
                    fps: report.fps,
                    inference_ms_per_frame: mean("inference"),
                    track_ms_per_frame: mean("track"),
                    track_percent_of_inference: 100.0 * mean("track") / mean("inference").max(1e-9),
                    wall_ms_per_frame: report.wall_time_s * 1000.0 / report.frames.max(1) as f64,
                    overhead_percent: report.overhead_vs_inference_percent,
                })
            }
        };
        let backend = analyzer.sessions().first().map(|s| s.backend_name().to_string());
        let row = BenchRow {
            model: cfg.join(" + "),
            input_shape: shapes.first().cloned().unwrap_or_default(),
            backend: backend.unwrap_or_default(),
            trained_weights: trained,
            inference_p50_ms: lat.p50_ms,
            inference_p95_ms: lat.p95_ms,
            pipeline,
            gpu,
        };
        let shape = shapes.iter().map(|s| hw(s)).collect::<Vec<_>>().join("+");
        match &row.pipeline {
            Some(p) => println!(
                "{:<32} {:>14} {:>9.1} {:>9.1} {:>8.2} {:>10.1} {:>8.1}%",
                row.model, shape, row.inference_p50_ms, row.inference_p95_ms, p.fps, p.wall_ms_per_frame, p.overhead_percent
            ),
            None => println!("{:<32} {:>14} {:>9.1} {:>9.1}", row.model, shape, row.inference_p50_ms, row.inference_p95_ms),
        }
        if let Some(p) = &row.pipeline {
            println!("  tracking + smoothing: {:.3} ms per frame ({:.3}% of inference)", p.track_ms_per_frame, p.track_percent_of_inference);
        }
        for g in &row.gpu {
            print_gpu(g);
        }
        if job.input.is_none() && soak_at == Some(ci) {
            soak = Some(tracker_soak(&mut analyzer, &job.clip)?);
        }
        rows.push(row);
    }
    std::fs::create_dir_all(&job.out_dir).with_context(|| format!("cannot create {}", job.out_dir.display()))?;
    let mut topdown = Vec::new();
    for name in &pipelines {
        topdown.extend(topdown_figures(job, name)?);
    }
    if !topdown.is_empty() {
        let path = job.out_dir.join("topdown.json");
        std::fs::write(&path, serde_json::to_string_pretty(&topdown)? + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(s) = &soak {
        println!(
            "tracker over {} frames (the clip's {} analysed frames replayed): {:.3} ms per frame p50, {:.3} p95; {} tracks; RSS {} at start, {} at end",
            s.frames,
            s.distinct_frames,
            s.track_ms.p50_ms,
            s.track_ms.p95_ms,
            s.tracks,
            mib(s.rss_start_bytes),
            mib(s.rss_end_bytes)
        );
        let path = job.out_dir.join("tracker-soak.json");
        std::fs::write(&path, serde_json::to_string_pretty(s)? + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    }
    let path = job.out_dir.join("bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&rows)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "(inference: {} runs after 2 warm-up runs on the clip's first frame{}; results in {})",
        job.runs,
        if job.input.is_none() { format!("; pipeline: every frame of {}", job.clip.display()) } else { String::new() },
        path.display()
    );
    Ok(rows)
}

/// A top-down pipeline's cost per frame on one scene, with the detector every N frames.
#[derive(Debug, Serialize)]
pub struct TopDownFigures {
    pub pipeline: String,
    /// "clip" (the bundled clip, every frame through the headless pipeline) or "10-person
    /// scene" (two frames of the clip side by side, analysed repeatedly).
    pub scene: String,
    pub detect_every: u32,
    pub frames: usize,
    pub ms_per_frame_p50: f64,
    pub ms_per_frame_mean: f64,
    pub people_per_frame: f64,
    pub crops_per_frame: f64,
    pub detector_share_of_frames: f64,
}

/// Frames of the 10-person scene analysed per setting.
const SCENE_FRAMES: usize = 20;

/// The pipeline on the clip (each frame as a video, tracking ROIs between detections) and on a
/// scene of about 10 people (two frames of the clip side by side), with the detector on every
/// frame and every N (the default). MoveNet SinglePose takes one crop at a time (its graph's
/// decoding fixes the batch at 1), so the crops of a frame run one after another.
fn topdown_figures(job: &BenchJob, name: &str) -> Result<Vec<TopDownFigures>> {
    use crate::analyzer::{AnalysisTimes, ModelChoice, PoseRunner};
    use crate::topdown::TopDownParams;
    let info = video_source::probe(&job.clip)?;
    let mut reader = VideoReader::open(&info)?;
    let mut frames = Vec::new();
    while let Some(f) = reader.next_frame()? {
        frames.push(f);
    }
    reader.finish();
    if frames.len() < 2 {
        bail!("{} has too few frames for the top-down measurement", job.clip.display());
    }
    // Two frames of the clip, side by side.
    let (a, b) = (&frames[0], &frames[frames.len() / 2]);
    let mut rgb = Vec::with_capacity(a.rgb.len() * 2);
    for y in 0..a.height {
        rgb.extend_from_slice(&a.rgb[y * a.width * 3..(y + 1) * a.width * 3]);
        rgb.extend_from_slice(&b.rgb[y * b.width * 3..(y + 1) * b.width * 3]);
    }
    let scene = Frame::new(a.width * 2, a.height, rgb)?;
    let mut out = Vec::new();
    for detect_every in [TopDownParams::default().detect_every, 1] {
        let choice = ModelChoice { pose: Some(name.into()), engine: job.engine.clone(), topdown: TopDownParams { detect_every, ..TopDownParams::default() }, ..Default::default() };
        let mut analyzer = Analyzer::new(&choice, PoseThresholds::default())?;
        for (label, seq) in [("clip", frames.clone()), ("10-person scene", (0..SCENE_FRAMES + 2).map(|i| Frame { index: i as u64, ..scene.clone() }).collect::<Vec<_>>())] {
            analyzer.new_sequence();
            analyzer.prepare_for(seq[0].width, seq[0].height)?;
            let (mut ms, mut people, mut crops, mut detected) = (Vec::new(), 0usize, 0usize, 0usize);
            for (i, f) in seq.iter().enumerate() {
                let t = Instant::now();
                let found = analyzer.analyze(f, &mut AnalysisTimes::default())?.people.len();
                // Two warm-up frames on the repeated scene.
                if label == "clip" || i >= 2 {
                    ms.push(t.elapsed().as_secs_f64() * 1000.0);
                    people += found;
                    if let Some(PoseRunner::TopDown(td)) = &analyzer.pose {
                        crops += td.crops_last_frame;
                        detected += td.detected_last_frame as usize;
                    }
                }
            }
            let n = ms.len();
            let sum = summarise(&ms);
            let row = TopDownFigures {
                pipeline: name.into(),
                scene: label.into(),
                detect_every,
                frames: n,
                ms_per_frame_p50: sum.p50_ms,
                ms_per_frame_mean: sum.mean_ms,
                people_per_frame: people as f64 / n as f64,
                crops_per_frame: crops as f64 / n as f64,
                detector_share_of_frames: detected as f64 / n as f64,
            };
            println!(
                "{:<20} {:<16} detector every {:>2}: {:>7.1} ms/frame p50 ({:.1} mean), {:.1} people, {:.1} crops, detector on {:.0}% of frames",
                row.pipeline, row.scene, row.detect_every, row.ms_per_frame_p50, row.ms_per_frame_mean, row.people_per_frame, row.crops_per_frame, 100.0 * row.detector_share_of_frames
            );
            out.push(row);
        }
    }
    Ok(out)
}

/// The tracker (people and mask smoothing) over a long run, for its time per frame and whether
/// memory stays flat.
#[derive(Debug, Serialize)]
pub struct TrackerSoak {
    pub frames: u64,
    pub distinct_frames: usize,
    pub track_ms: crate::stats::Summary,
    pub tracks: u64,
    pub rss_start_bytes: Option<u64>,
    pub rss_end_bytes: Option<u64>,
}

/// Frames the soak replays.
const SOAK_FRAMES: u64 = 10_000;

fn mib(b: Option<u64>) -> String {
    b.map_or("unknown".into(), |b| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)))
}

/// Analyses the clip's frames once, then replays them through a fresh tracker for 10,000 frames
/// with advancing timestamps (each replay starts people over: old tracks must end and free their
/// memory).
fn tracker_soak(analyzer: &mut Analyzer, clip: &std::path::Path) -> Result<TrackerSoak> {
    use crate::analyzer::{Analysis, AnalysisTimes};
    use crate::track::Temporal;
    let info = video_source::probe(clip)?;
    let mut reader = VideoReader::open(&info)?;
    let opts = TrackOptions::default();
    let person = analyzer.thresholds.person;
    analyzer.thresholds.person = opts.decode_threshold(person);
    let mut analysed: Vec<Analysis> = Vec::new();
    while let Some(frame) = reader.next_frame()? {
        analysed.push(analyzer.analyze(&frame, &mut AnalysisTimes::default())?);
    }
    analyzer.thresholds.person = person;
    if analysed.is_empty() {
        bail!("{} has no frames", clip.display());
    }
    let step = 1.0 / info.fps.max(1.0);
    let mut temporal = Temporal::new(&opts, person, analyzer.schema());
    let copy = |a: &Analysis| Analysis { people: a.people.clone(), mask: a.mask.clone(), classes: None };
    let rss_start = crate::stats::rss_bytes();
    let mut times = Vec::with_capacity(SOAK_FRAMES as usize);
    for i in 0..SOAK_FRAMES {
        let mut a = copy(&analysed[i as usize % analysed.len()]);
        let t = Instant::now();
        temporal.apply(&mut a, i as f64 * step);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let rss_end = crate::stats::rss_bytes();
    Ok(TrackerSoak {
        frames: SOAK_FRAMES,
        distinct_frames: analysed.len(),
        track_ms: summarise(&times),
        tracks: temporal.summary().map_or(0, |s| s.count),
        rss_start_bytes: rss_start,
        rss_end_bytes: rss_end,
    })
}

/// "HxW" of an NHWC or NCHW shape.
fn hw(s: &[usize]) -> String {
    match s {
        [_, 3, h, w] => format!("{h}x{w}"),
        [_, h, w, _] => format!("{h}x{w}"),
        _ => format!("{s:?}"),
    }
}

/// Milliseconds per run of the model alone, after two warm-up runs.
fn time_inference(s: &mut ModelSession, frame: &Frame, runs: usize) -> Result<Vec<f64>> {
    if runs == 0 {
        bail!("at least one run is needed");
    }
    let (input, _) = crate::preprocess::prepare(&s.spec, frame);
    let engine: &mut Box<dyn Engine> = s.prepare_for(frame.width, frame.height)?;
    for _ in 0..2 {
        engine.run(&input)?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        engine.run(&input)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(times)
}

/// Profiles a model that runs on the GPU: per-shader time, and each depthwise convolution on the
/// tiled shader against the naive one (the same graph planned with `ConvImpl::Naive`). The
/// profiled engines are planned here, from the graph the session runs: with `gpu` the session's
/// own plan is a GPU plan, with `auto` it is one exactly when the GPU plans the model (else the
/// session fell back to the CPU and there is nothing to profile).
fn gpu_figures(s: &mut ModelSession, frame: &Frame, backend: Backend) -> Result<Option<GpuFigures>> {
    use crate::engine::gpu::graph::{ConvImpl, PlanOptions};
    use crate::engine::gpu::GpuEngine;
    if backend == Backend::Cpu {
        return Ok(None);
    }
    // `auto` runs on the CPU when the adapter is a CPU emulation (engine::load): nothing to profile.
    if backend == Backend::Auto && crate::engine::gpu::context().is_ok_and(|c| crate::engine::gpu::is_cpu_emulation(&c.adapter)) {
        return Ok(None);
    }
    let (input, _) = crate::preprocess::prepare(&s.spec, frame);
    let bytes = s.onnx_bytes(frame.width, frame.height)?;
    let name = s.spec.name.clone();
    let dtype = s.spec.input.dtype;
    let shape = s.prepare_for(frame.width, frame.height)?.input_shape().to_vec();
    let mut gpu = match GpuEngine::load_onnx(&bytes, &name, &s.spec, &shape, s.options()) {
        Ok(g) => g,
        Err(_) if backend == Backend::Auto => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut split = vec![];
    for _ in 0..5 {
        gpu.run(&input)?;
        split.push(gpu.last_split);
    }
    split.sort();
    let (gpu_part, cpu_tail) = split[split.len() / 2];
    let (fast, method) = gpu.profile(&input)?;
    let plan = gpu.summary();
    let naive_opts = PlanOptions { conv: ConvImpl::Naive, skip_rules: s.options().gpu_skip_rules.clone(), ..Default::default() };
    let mut naive_engine = GpuEngine::load_with(&bytes, &name, dtype, input.shape.as_slice(), &naive_opts)?;
    let (naive, _) = naive_engine.profile(&input)?;
    let mut slowest: Vec<(String, f64)> = fast.iter().map(|k| (k.label.clone(), k.seconds * 1e3)).collect();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    slowest.truncate(10);
    let mut shader_ms: Vec<(String, f64)> = vec![];
    for k in &fast {
        match shader_ms.iter_mut().find(|(n, _)| n == k.shader) {
            Some(slot) => slot.1 += k.seconds * 1e3,
            None => shader_ms.push((k.shader.to_string(), k.seconds * 1e3)),
        }
    }
    shader_ms.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut depthwise = vec![];
    if fast.len() == naive.len() {
        for (f, n) in fast.iter().zip(&naive) {
            if f.shader == "depthwise_tiled" {
                depthwise.push(DepthwiseFigures {
                    kernel: f.label.clone(),
                    tiled_ms: f.seconds * 1e3,
                    naive_ms: n.seconds * 1e3,
                    tiled_gb_per_s: f.bytes as f64 / f.seconds / 1e9,
                    tiled_gmac_per_s: f.macs as f64 / f.seconds / 1e9,
                });
            }
        }
    }
    Ok(Some(GpuFigures {
        model: name,
        plan,
        dispatches: gpu.kernel_count(),
        timing: method.describe().to_string(),
        slowest_kernels_ms: slowest,
        shader_ms,
        depthwise,
        gpu_part_ms: gpu_part.as_secs_f64() * 1e3,
        cpu_tail_ms: cpu_tail.as_secs_f64() * 1e3,
    }))
}

fn print_gpu(g: &GpuFigures) {
    println!("  {} on the GPU: {}", g.model, g.plan);
    println!("  one frame (median of 5): GPU part {:.2} ms (upload, kernels, download), CPU tail {:.2} ms", g.gpu_part_ms, g.cpu_tail_ms);
    let total: f64 = g.shader_ms.iter().map(|(_, ms)| ms).sum();
    let parts: Vec<String> = g.shader_ms.iter().map(|(n, ms)| format!("{n} {ms:.2} ms ({:.0}%)", 100.0 * ms / total.max(1e-9))).collect();
    println!("  {} dispatches; kernels timed by {}: {total:.2} ms: {}", g.dispatches, g.timing, parts.join(", "));
    let slow: Vec<String> = g.slowest_kernels_ms.iter().map(|(k, ms)| format!("{k} {ms:.3}")).collect();
    println!("  slowest kernels (ms): {}", slow.join(", "));
    if !g.depthwise.is_empty() {
        let tiled: f64 = g.depthwise.iter().map(|d| d.tiled_ms).sum();
        let naive: f64 = g.depthwise.iter().map(|d| d.naive_ms).sum();
        println!("  depthwise convolutions: tiled {tiled:.2} ms, naive {naive:.2} ms ({:.2}x)", naive / tiled.max(1e-9));
        println!("  {:<24} {:>10} {:>10} {:>8} {:>9} {:>9}", "kernel", "tiled ms", "naive ms", "speedup", "GB/s", "GMAC/s");
        for d in &g.depthwise {
            println!(
                "  {:<24} {:>10.3} {:>10.3} {:>7.2}x {:>9.1} {:>9.1}",
                d.kernel,
                d.tiled_ms,
                d.naive_ms,
                d.naive_ms / d.tiled_ms.max(1e-9),
                d.tiled_gb_per_s,
                d.tiled_gmac_per_s
            );
        }
    }
}
