//! `edgesight bench`: inference latency per model and the headless pipeline's throughput on a
//! clip, with the share of time the pipeline spends beyond inference.

use crate::analyzer::{Analyzer, ModelChoice};
use crate::catalog::{Catalog, Task};
use crate::decode::PoseThresholds;
use crate::engine::Engine;
use crate::pipeline::{self, VideoJob};
use crate::render::Style;
use crate::stats::summarise;
use crate::video_source::{self, VideoReader};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

pub struct BenchJob {
    pub clip: PathBuf,
    pub runs: usize,
    /// Catalogue names to measure; empty means the defaults of both tasks.
    pub models: Vec<String>,
    pub pose_size: Option<usize>,
    pub out_dir: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct BenchRow {
    pub model: String,
    pub input_shape: Vec<usize>,
    pub backend: String,
    pub inference_p50_ms: f64,
    pub inference_p95_ms: f64,
    pub pipeline_fps: f64,
    pub pipeline_inference_ms_per_frame: f64,
    pub pipeline_wall_ms_per_frame: f64,
    pub overhead_percent: f64,
}

fn choice_for(catalog: &Catalog, names: &[&str], pose_size: Option<usize>) -> Result<ModelChoice> {
    let mut c = ModelChoice { pose_size, ..Default::default() };
    for n in names {
        match catalog.get(n)?.task {
            Task::Pose => c.pose = Some(n.to_string()),
            Task::Segmentation => c.seg = Some(n.to_string()),
        }
    }
    Ok(c)
}

pub fn run(job: &BenchJob) -> Result<Vec<BenchRow>> {
    let catalog = Catalog::builtin();
    let info = video_source::probe(&job.clip)?;
    let first = VideoReader::open(&info)?
        .next_frame()?
        .with_context(|| format!("{} has no frames", job.clip.display()))?;
    let names: Vec<String> = if job.models.is_empty() {
        vec![Catalog::default_for(Task::Pose).into(), Catalog::default_for(Task::Segmentation).into()]
    } else {
        job.models.clone()
    };
    let mut configs: Vec<Vec<&str>> = names.iter().map(|n| vec![n.as_str()]).collect();
    if names.len() == 2 && catalog.get(&names[0])?.task != catalog.get(&names[1])?.task {
        configs.push(names.iter().map(|n| n.as_str()).collect());
    }
    let mut rows = Vec::new();
    println!(
        "{:<34} {:>16} {:>10} {:>10} {:>9} {:>11} {:>10}",
        "model", "input", "p50 ms", "p95 ms", "fps", "wall ms/f", "overhead"
    );
    for cfg in configs {
        let choice = choice_for(&catalog, &cfg, job.pose_size)?;
        let mut analyzer = Analyzer::new(&choice, PoseThresholds::default())?;
        analyzer.prepare_for(info.width, info.height)?;
        // Inference alone, on the clip's first frame, per model.
        let mut samples = Vec::new();
        let mut shapes = Vec::new();
        for s in analyzer.pose.iter_mut().chain(analyzer.seg.iter_mut()) {
            let (input, _) = crate::preprocess::prepare(&s.spec, &first);
            let engine: &mut Box<dyn Engine> = s.prepare_for(first.width, first.height)?;
            shapes.push(engine.input_shape().to_vec());
            for _ in 0..2 {
                engine.run(&input)?;
            }
            let mut times = Vec::with_capacity(job.runs);
            for _ in 0..job.runs {
                let t = Instant::now();
                engine.run(&input)?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            samples.push(times);
        }
        // Sum per run across the models of this configuration.
        let per_run: Vec<f64> = (0..job.runs).map(|i| samples.iter().map(|s| s[i]).sum()).collect();
        let lat = summarise(&per_run);
        let out_dir = job.out_dir.join(cfg.join("+"));
        let vjob = VideoJob { input: job.clip.clone(), out_dir, write_masks: false, style: Style::default(), progress: false };
        let report = pipeline::run(&vjob, &mut analyzer)?.into_result()?;
        let inference = report.stages.get("inference").map_or(0.0, |s| s.mean_ms);
        let wall = report.wall_time_s * 1000.0 / report.frames.max(1) as f64;
        let row = BenchRow {
            model: cfg.join(" + "),
            input_shape: shapes.first().cloned().unwrap_or_default(),
            backend: report.backend.clone(),
            inference_p50_ms: lat.p50_ms,
            inference_p95_ms: lat.p95_ms,
            pipeline_fps: report.fps,
            pipeline_inference_ms_per_frame: inference,
            pipeline_wall_ms_per_frame: wall,
            overhead_percent: report.overhead_vs_inference_percent,
        };
        let shape = shapes.iter().map(|s| format!("{}x{}", s[1], s[2])).collect::<Vec<_>>().join("+");
        println!(
            "{:<34} {:>16} {:>10.1} {:>10.1} {:>9.2} {:>11.1} {:>9.1}%",
            row.model, shape, row.inference_p50_ms, row.inference_p95_ms, row.pipeline_fps, wall, row.overhead_percent
        );
        rows.push(row);
    }
    let path = job.out_dir.join("bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&rows)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("(inference: {} runs after 2 warm-up runs on the clip's first frame; pipeline: every frame of {}; results in {})",
        job.runs, job.clip.display(), path.display());
    Ok(rows)
}
