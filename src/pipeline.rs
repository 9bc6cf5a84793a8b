//! Headless video: every frame of a file through decode -> preprocess -> inference -> decode
//! -> render -> encode, on three threads joined by bounded channels (back-pressure, never drops):
//!
//!   reader thread (ffmpeg decode)  ->  this thread (models)  ->  sink thread (track, render, encode, jsonl)
//!
//! Whatever happens, the sink is closed properly, so frames processed before a fault are kept in
//! annotated.mp4 and frames.jsonl, and report.json says how the run ended.

use crate::analyzer::{AnalysisTimes, Analyzer, ModelInfo};
use crate::frame::Frame;
use crate::person_csv::PersonCsv;
use crate::records::FrameRecord;
use crate::render::{self, Overlay, Style};
use crate::skeleton::Schema;
use crate::stats::{StageLog, Summary};
use crate::track::{Temporal, TrackOptions, TrackSummary};
use crate::video_source::{self, DecodeEnd, VideoInfo, VideoReader};
use crate::video_writer::VideoWriter;
use anyhow::{anyhow, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::{Duration, Instant};

/// Frames in flight between two stages.
const QUEUE: usize = 3;

pub struct VideoJob {
    pub input: PathBuf,
    pub out_dir: PathBuf,
    pub write_masks: bool,
    pub style: Style,
    pub progress: bool,
    /// Identities, smoothing (`TrackOptions::off()`: every frame on its own).
    pub track: TrackOptions,
    /// Also write one CSV row per person per frame here.
    pub csv: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub edgesight_version: &'static str,
    pub input: VideoInfo,
    pub frames: u64,
    pub input_ended_early: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub wall_time_s: f64,
    pub fps: f64,
    /// Time per frame beyond model inference, as a share of inference time.
    pub overhead_vs_inference_percent: f64,
    pub stages: BTreeMap<&'static str, Summary>,
    pub models: Vec<ModelInfo>,
    pub backend: String,
    pub keypoint_names: Vec<&'static str>,
    /// Tracking totals (tracking on and a pose model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracks: Option<TrackSummary>,
    pub outputs: BTreeMap<&'static str, String>,
}

/// What a finished run returns; `Err` from `run` means nothing useful was produced.
pub struct Outcome {
    pub report: Report,
    pub report_path: PathBuf,
}

impl Outcome {
    /// The run's verdict: an input that ended early or a mid-run fault is an error to the user,
    /// after the outputs are written.
    pub fn into_result(self) -> Result<Report> {
        let r = self.report;
        if let Some(e) = &r.error {
            return Err(anyhow!("{e} (after {} frames; outputs kept in {})", r.frames, self.report_path.display()));
        }
        if r.input_ended_early {
            return Err(anyhow!(
                "input {} ended early after {} frames: {} (outputs for those frames kept; see {})",
                r.input.path.display(),
                r.frames,
                r.input_message.as_deref().unwrap_or("decode error"),
                self.report_path.display()
            ));
        }
        Ok(r)
    }
}

pub fn prepare_out_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow!("cannot create output folder {}: {e}", dir.display()))?;
    let probe = dir.join(".edgesight-write-test");
    File::create(&probe).map_err(|e| anyhow!("output folder {} is not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

struct Analysed {
    frame: Frame,
    analysis: crate::analyzer::Analysis,
}

struct SinkResult {
    frames: u64,
    log: StageLog,
    error: Option<anyhow::Error>,
    tracks: Option<TrackSummary>,
}

/// What the sink thread writes besides the video.
struct Sinks {
    jsonl: BufWriter<File>,
    csv: Option<PersonCsv>,
    masks_dir: Option<PathBuf>,
}

pub fn run(job: &VideoJob, analyzer: &mut Analyzer) -> Result<Outcome> {
    let schema = analyzer.schema();
    // A usage error is reported before any input is read or output created.
    if job.csv.is_some() && schema.is_none() {
        anyhow::bail!("--csv writes pose results, but pose is off (--pose none)");
    }
    let info = video_source::probe(&job.input)?;
    prepare_out_dir(&job.out_dir)?;
    analyzer.prepare_for(info.width, info.height)?;
    let mut reader = VideoReader::open(&info)?;
    let video_path = job.out_dir.join("annotated.mp4");
    let jsonl_path = job.out_dir.join("frames.jsonl");
    let masks_dir = job.out_dir.join("masks");
    let mut writer = VideoWriter::create(&video_path, info.width, info.height, &info.frame_rate)?;
    let jsonl = BufWriter::new(
        File::create(&jsonl_path).map_err(|e| anyhow!("cannot create {}: {e}", jsonl_path.display()))?,
    );
    if job.write_masks && analyzer.seg.is_some() {
        std::fs::create_dir_all(&masks_dir).map_err(|e| anyhow!("cannot create {}: {e}", masks_dir.display()))?;
    }
    let csv = match (&job.csv, schema) {
        (Some(path), Some(sc)) => Some(PersonCsv::create(path, sc.joints)?),
        _ => None,
    };
    // The tracker sees people down to its second-stage score and reports those that count.
    let person_threshold = analyzer.thresholds.person;
    let temporal = Temporal::new(&job.track, person_threshold, schema);
    analyzer.thresholds.person = job.track.decode_threshold(person_threshold);

    let bar = progress_bar(job.progress, info.declared_frames);
    let started = Instant::now();
    let (frame_tx, frame_rx) = sync_channel::<(Frame, Duration)>(QUEUE);
    let (done_tx, done_rx) = sync_channel::<Analysed>(QUEUE);
    let style = job.style;
    let sinks = Sinks { jsonl, csv, masks_dir: (job.write_masks && analyzer.seg.is_some()).then_some(masks_dir.clone()) };

    let (end, sink, infer_log, infer_error) = std::thread::scope(|scope| {
        let reader_thread = scope.spawn(move || {
            loop {
                let t = Instant::now();
                match reader.next_frame() {
                    Ok(Some(f)) => {
                        if frame_tx.send((f, t.elapsed())).is_err() {
                            break; // downstream stopped
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let mut end = reader.finish();
                        end.ended_early = true;
                        end.message = Some(format!("{e:#}"));
                        return end;
                    }
                }
            }
            reader.finish()
        });
        let sink_thread =
            scope.spawn(move || sink_loop(done_rx, &mut writer, sinks, temporal, schema, style));

        let mut log = StageLog::default();
        let mut error = None;
        for (frame, decode_time) in frame_rx.iter() {
            log.record("decode", decode_time);
            let mut times = AnalysisTimes::default();
            match analyzer.analyze(&frame, &mut times) {
                Ok(analysis) => {
                    record_times(&mut log, &times);
                    if done_tx.send(Analysed { frame, analysis }).is_err() {
                        break; // the sink failed; its error is reported below
                    }
                    bar.inc(1);
                }
                Err(e) => {
                    error = Some(e.context(format!("frame {}", frame.index)));
                    break;
                }
            }
        }
        drop(frame_rx);
        drop(done_tx);
        let end = reader_thread.join().unwrap_or_else(|_| DecodeEnd {
            frames: 0,
            ended_early: true,
            message: Some("the reader thread failed".into()),
        });
        let sink = sink_thread.join().unwrap_or_else(|_| SinkResult {
            frames: 0,
            log: StageLog::default(),
            error: Some(anyhow!("the output thread failed")),
            tracks: None,
        });
        (end, sink, log, error)
    });
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    analyzer.thresholds.person = person_threshold;

    let mut log = infer_log;
    log.merge(sink.log);
    let error = infer_error.or(sink.error).map(|e| format!("{e:#}"));
    // Frames fully processed are those the sink wrote.
    let frames = sink.frames;
    let inference_s = log.total_s("inference");
    let mut outputs = BTreeMap::new();
    outputs.insert("video", video_path.display().to_string());
    outputs.insert("frames_jsonl", jsonl_path.display().to_string());
    if job.write_masks && analyzer.seg.is_some() {
        outputs.insert("masks", masks_dir.display().to_string());
    }
    if let Some(p) = &job.csv {
        outputs.insert("csv", p.display().to_string());
    }
    let models = analyzer.model_infos(info.width, info.height);
    let backend = models.first().map(|m| m.backend.clone()).unwrap_or_default();
    let report = Report {
        edgesight_version: env!("CARGO_PKG_VERSION"),
        input: info,
        frames,
        input_ended_early: end.ended_early,
        input_message: end.message,
        error,
        wall_time_s: wall,
        fps: if wall > 0.0 { frames as f64 / wall } else { 0.0 },
        overhead_vs_inference_percent: if inference_s > 0.0 { (wall / inference_s - 1.0) * 100.0 } else { 0.0 },
        stages: log.summaries(),
        models,
        backend,
        keypoint_names: analyzer.schema().map_or(vec![], |s| s.joints.to_vec()),
        tracks: sink.tracks.filter(|_| analyzer.pose.is_some()),
        outputs,
    };
    let report_path = job.out_dir.join("report.json");
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(&report_path, text + "\n").with_context(|| format!("cannot write {}", report_path.display()))?;
    if frames == 0 && report.error.is_none() {
        anyhow::bail!(
            "input {} has no frames that could be decoded{}",
            report.input.path.display(),
            report.input_message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        );
    }
    Ok(Outcome { report, report_path })
}

fn record_times(log: &mut StageLog, t: &AnalysisTimes) {
    let total = t.total();
    log.record("preprocess", total.preprocess);
    log.record("inference", total.inference);
    log.record("decode_output", total.decode);
}

/// The per-frame outputs besides the video: frames.jsonl, the CSV, the mask PNG.
fn write_records(sinks: &mut Sinks, frame: &Frame, analysis: &crate::analyzer::Analysis) -> Result<()> {
    let record = FrameRecord::new(frame.index, frame.timestamp_s, analysis);
    serde_json::to_writer(&mut sinks.jsonl, &record)?;
    sinks.jsonl.write_all(b"\n")?;
    if let Some(csv) = &mut sinks.csv {
        csv.write_frame(frame.index, frame.timestamp_s, &analysis.people)?;
    }
    if let (Some(dir), Some(mask)) = (&sinks.masks_dir, &analysis.mask) {
        let png = dir.join(format!("{:06}.png", frame.index));
        let px = mask.to_frame_u8(frame.width, frame.height);
        image::save_buffer(&png, &px, frame.width as u32, frame.height as u32, image::ColorType::L8)
            .with_context(|| format!("cannot write {}", png.display()))?;
    }
    Ok(())
}

fn sink_loop(
    rx: Receiver<Analysed>,
    writer: &mut VideoWriter,
    mut sinks: Sinks,
    mut temporal: Temporal,
    schema: Option<Schema>,
    style: Style,
) -> SinkResult {
    let mut log = StageLog::default();
    let mut frames = 0;
    let mut error = None;
    for Analysed { mut frame, mut analysis } in rx.iter() {
        let t0 = Instant::now();
        temporal.apply(&mut analysis, frame.timestamp_s);
        let t1 = Instant::now();
        // Records first: the frame is drawn on next.
        let records = write_records(&mut sinks, &frame, &analysis);
        render::draw(&mut frame, &Overlay::of(&analysis, schema), &style);
        let t2 = Instant::now();
        let step = records.and_then(|_| writer.write(&frame));
        log.record("track", t1 - t0);
        log.record("render", t2 - t1);
        log.record("encode", t2.elapsed());
        if let Err(e) = step {
            error = Some(e);
            break;
        }
        frames += 1;
    }
    // Drain so the inference thread is never blocked on a dead sink.
    drop(rx);
    if let Err(e) = sinks.jsonl.flush() {
        error.get_or_insert(anyhow!("cannot write frames.jsonl: {e}"));
    }
    if let Some(csv) = sinks.csv {
        if let Err(e) = csv.finish() {
            error.get_or_insert(e);
        }
    }
    if let Err(e) = writer.finish() {
        error.get_or_insert(e);
    }
    SinkResult { frames, log, error, tracks: temporal.summary() }
}

fn progress_bar(enabled: bool, len: Option<u64>) -> ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} frames ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
