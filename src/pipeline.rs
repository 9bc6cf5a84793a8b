//! Headless video: frames of a file or a live source through decode -> preprocess -> inference
//! -> decode -> render -> encode, on four threads:
//!
//!   reader thread (ffmpeg decode, `frame_feed`)  ->  prepare thread (files: `prepare_ahead`)
//!     ->  this thread (models)  ->  sink thread (track, render, encode, jsonl)
//!
//! The input is opened (`open_input`) before the models are loaded, so ffmpeg's start and a
//! file's first frames overlap the loading. A file gives every frame (bounded channels:
//! back-pressure, never drops); a live source
//! keeps up with real time (latest frame wins, the rest counted as dropped) and is reconnected
//! when it drops (see `frame_feed`).
//!
//! Whatever happens (a damaged input, a failed output, a full disk, Ctrl-C), the sink is closed
//! properly, so frames processed before the end are kept in annotated.mp4 and frames.jsonl
//! (whole lines only), and report.json says how the run ended. report.json is written first,
//! before any frame (`"ended": "running"`), with room for the final report.

use crate::analyzer::{AnalysisTimes, Analyzer, ModelInfo};
use crate::frame::Frame;
use crate::interrupt::{signal_name, Stop};
use crate::output_files::{LineFile, ReservedFile, REPORT_ROOM};
use crate::output_paths::{self, Named};
use crate::person_csv::PersonCsv;
use crate::records::FrameRecord;
use crate::render::{self, Overlay, Style};
use crate::skeleton::Schema;
use crate::stats::{StageLog, Summary};
use crate::track::{Temporal, TrackOptions, TrackSummary};
use crate::frame_feed::{Feed, FeedOptions, Reconnection};
use crate::prepare_ahead::{Frames, Ready};
use crate::preprocess::InputPlan;
use crate::video_source::{self, Source, VideoInfo, VideoReader};
use crate::video_writer::VideoWriter;
use anyhow::{anyhow, bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::Instant;

/// Frames in flight between two stages.
const QUEUE: usize = 3;

pub struct VideoJob {
    pub input: Source,
    /// Keeping up with a live source, reconnecting it.
    pub feed: FeedOptions,
    /// Stop after this many frames are processed.
    pub max_frames: Option<u64>,
    pub out_dir: PathBuf,
    pub write_masks: bool,
    pub style: Style,
    pub progress: bool,
    /// Identities, smoothing (`TrackOptions::off()`: every frame on its own).
    pub track: TrackOptions,
    /// Also write one CSV row per person per frame here.
    pub csv: Option<PathBuf>,
    /// Polled between frames: a signal ends the run early with whole outputs.
    pub stop: Stop,
}

/// How a run ended, as report.json says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// Still going (the report written at the start; a run that was killed keeps it).
    Running,
    /// Every frame of the input.
    Complete,
    /// The input was damaged or cut short: frames before the damage are kept.
    InputEndedEarly,
    /// A signal (Ctrl-C, SIGTERM) stopped it.
    Interrupted,
    /// An output could not be written (disk full, the encoder failed).
    OutputFailed,
    /// A model failed on a frame.
    InferenceFailed,
    /// A live stream dropped and did not come back within the reconnect timeout.
    InputLost,
}

/// The run was stopped by a signal; outputs up to then are whole. The command line exits with
/// 128 + the signal number.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: i32,
    pub message: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Interrupted {}

#[derive(Debug, Serialize)]
pub struct Report {
    pub edgesight_version: &'static str,
    pub ended: Ended,
    pub input: VideoInfo,
    pub frames: u64,
    /// Frames read from the input: more than `frames` when frames were dropped to keep up.
    pub frames_read: u64,
    /// Frames dropped because the models were still busy with an earlier one (live sources).
    pub dropped_frames: u64,
    /// Whether frames could be dropped to keep up with the source (`--keep-up`).
    pub keep_up: bool,
    /// Pose and segmentation ran at the same time (`--threads auto`).
    pub concurrent_models: bool,
    /// A stream that dropped and came back, each time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reconnections: Vec<Reconnection>,
    /// Why a stream was given up for lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_lost: Option<String>,
    /// `--max-frames`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_limit: Option<u64>,
    pub input_ended_early: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_message: Option<String>,
    /// Decoder warnings (not faults): the first few, and how many there were.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input_warnings: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub input_warning_count: u64,
    /// The signal that stopped the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted_by: Option<String>,
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

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a finished run returns; `Err` from `run` means nothing useful was produced.
pub struct Outcome {
    pub report: Report,
    pub report_path: PathBuf,
    out_dir: PathBuf,
    signal: Option<i32>,
}

impl Outcome {
    /// The run's verdict: an input that ended early or a mid-run fault is an error to the user,
    /// after the outputs are written.
    pub fn into_result(self) -> Result<Report> {
        let r = self.report;
        if let (Ended::Interrupted, Some(sig)) = (r.ended, self.signal) {
            return Err(Interrupted {
                signal: sig,
                message: format!(
                    "interrupted by {} after {} frames; outputs for those frames kept in {} (see {})",
                    signal_name(sig),
                    r.frames,
                    self.out_dir.display(),
                    self.report_path.display()
                ),
            }
            .into());
        }
        if let Some(lost) = &r.input_lost {
            return Err(anyhow!(
                "input {} was lost after {} frames: {lost} (outputs for those frames kept; see {})",
                r.input.path.display(),
                r.frames,
                self.report_path.display()
            ));
        }
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
    /// When the reader had the frame (capture -> output latency).
    arrived: Instant,
}

struct SinkResult {
    frames: u64,
    log: StageLog,
    error: Option<anyhow::Error>,
    tracks: Option<TrackSummary>,
}

/// What the sink thread writes besides the video.
struct Sinks {
    jsonl: LineFile,
    csv: Option<PersonCsv>,
    masks_dir: Option<PathBuf>,
}

/// Every file a video run writes, named for messages; none may be an input or another output.
fn check_paths(job: &VideoJob, video: &Path, jsonl: &Path, report: &Path, masks: &Path) -> Result<()> {
    let mut outputs = vec![
        Named { role: "annotated video", path: video },
        Named { role: "frames.jsonl", path: jsonl },
        Named { role: "report.json", path: report },
    ];
    if let Some(csv) = &job.csv {
        outputs.push(Named { role: "--csv", path: csv });
    }
    let Source::File(input_path) = &job.input else { return output_paths::check(&[], &outputs) };
    output_paths::check(&[Named { role: "input video", path: input_path }], &outputs)?;
    // The masks folder's files are removed and rewritten: the input must not be one of them.
    let input = output_paths::resolve(input_path);
    if input.parent() == Some(output_paths::resolve(masks).as_path())
        && input.file_name().and_then(|n| n.to_str()).is_some_and(output_paths::is_mask_file)
    {
        bail!("the input video {} is in the masks folder this run rewrites; choose another --out", input_path.display());
    }
    Ok(())
}

/// The input of a run, opened before the models are loaded: its decoder starts (and a file's
/// first frames are decoded into the queue) while they load.
pub struct OpenedInput {
    info: VideoInfo,
    feed: InputFeed,
}

enum InputFeed {
    /// Read at the models' pace: the reader thread runs from the open.
    Ahead(Feed),
    /// A live source, connected: its reader starts with the run, so frames that arrive while
    /// the models load are not counted as dropped.
    Connected(VideoReader),
}

impl OpenedInput {
    /// Waits (up to `timeout`) until a file's read-ahead is full or its frames are all read,
    /// so that the decoder is idle: a benchmark times models alone after this.
    pub fn wait_read_ahead(&self, timeout: std::time::Duration) {
        if let InputFeed::Ahead(feed) = &self.feed {
            // The queue's frames, and one more held by the reader until there is room.
            feed.wait_for_frames(read_ahead(&self.info) as u64 + 1, timeout);
        }
    }
}

/// Frames read ahead of the models for a file: up to 16, in at most 32 MiB.
fn read_ahead(info: &VideoInfo) -> usize {
    let frame = (info.width * info.height * 3).max(1);
    ((32 << 20) / frame).clamp(QUEUE, 16)
}

/// Opens `job`'s input (a file is probed, a live source connected) and starts reading it.
/// `cancelled` ends a wait for a live source early (the models failed to load meanwhile).
pub fn open_input(job: &VideoJob, cancelled: &(dyn Fn() -> bool + Sync)) -> Result<OpenedInput> {
    if job.max_frames == Some(0) {
        bail!("--max-frames must be at least 1");
    }
    let keep_up = job.feed.keep_up.applies_to(&job.input);
    let (info, reader) = match &job.input {
        Source::File(path) => {
            let info = video_source::probe(path)?;
            let reader = VideoReader::open(&info)?;
            (info, reader)
        }
        live => {
            let stop = &job.stop;
            let r = VideoReader::connect(live, job.feed.connect_timeout, &|| stop.requested().is_some() || cancelled())?;
            (r.info().clone(), r)
        }
    };
    let feed = if keep_up {
        InputFeed::Connected(reader)
    } else {
        let queue = read_ahead(&info);
        InputFeed::Ahead(Feed::start(reader, job.input.clone(), job.feed.clone(), false, queue, job.stop.clone()))
    };
    Ok(OpenedInput { info, feed })
}

/// Runs `job` on `input` (from `open_input`, with the same job).
pub fn run(job: &VideoJob, input: OpenedInput, analyzer: &mut Analyzer) -> Result<Outcome> {
    let schema = analyzer.schema();
    // A usage error is reported before any output is created.
    if job.csv.is_some() && schema.is_none() {
        anyhow::bail!("--csv writes pose results, but pose is off (--pose none)");
    }
    // (`--max-frames 0` was refused by `open_input`.)
    let OpenedInput { info, feed: input_feed } = input;
    let video_path = job.out_dir.join("annotated.mp4");
    let jsonl_path = job.out_dir.join("frames.jsonl");
    let masks_dir = job.out_dir.join("masks");
    let report_path = job.out_dir.join("report.json");
    check_paths(job, &video_path, &jsonl_path, &report_path, &masks_dir)?;
    prepare_out_dir(&job.out_dir)?;
    analyzer.prepare_for(info.width, info.height)?;
    analyzer.new_sequence();
    // An earlier run's masks would be mixed with this run's (or stale without --masks).
    output_paths::remove_stale_masks(&masks_dir)?;
    let running = serde_json::json!({ "edgesight_version": env!("CARGO_PKG_VERSION"), "ended": Ended::Running, "input": &info });
    let report_file = ReservedFile::reserve(&report_path, &serde_json::to_vec_pretty(&running)?, REPORT_ROOM)?;
    let mut writer = VideoWriter::create(&video_path, info.width, info.height)?;
    let jsonl = LineFile::create(&jsonl_path)?;
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

    let bar = progress_bar(job.progress, info.declared_frames.map(|n| job.max_frames.map_or(n, |m| m.min(n))));
    let started = Instant::now();
    let keep_up = job.feed.keep_up.applies_to(&job.input);
    let feed = match input_feed {
        InputFeed::Ahead(feed) => feed,
        InputFeed::Connected(reader) => {
            Feed::start(reader, job.input.clone(), job.feed.clone(), keep_up, QUEUE, job.stop.clone())
        }
    };
    let (done_tx, done_rx) = sync_channel::<Analysed>(QUEUE);
    let style = job.style;
    let sinks = Sinks { jsonl, csv, masks_dir: (job.write_masks && analyzer.seg.is_some()).then_some(masks_dir.clone()) };

    // Every frame is analysed: its inputs are made ahead, while the models run on the one before.
    let plan = if keep_up { InputPlan::default() } else { analyzer.input_plan() };
    let frames = Frames::start(feed, plan, QUEUE);

    let (end, sink, infer_log, infer_error) = std::thread::scope(|scope| {
        let sink_thread =
            scope.spawn(move || sink_loop(done_rx, &mut writer, sinks, temporal, schema, style));

        let mut log = StageLog::default();
        let mut error = None;
        let mut processed = 0;
        while let Some(Ready { fed, inputs, prepare_time }) = frames.next() {
            // A live source's read time is mostly waiting for the camera: not decoding.
            if !keep_up {
                log.record("decode", fed.read_time);
            }
            let frame = fed.frame;
            let mut times = AnalysisTimes::default();
            match analyzer.analyze_prepared(&frame, inputs, &mut times) {
                Ok(analysis) => {
                    record_times(&mut log, &times, prepare_time);
                    if done_tx.send(Analysed { frame, analysis, arrived: fed.arrived }).is_err() {
                        break; // the sink failed; its error is reported below
                    }
                    bar.inc(1);
                    processed += 1;
                    if job.max_frames.is_some_and(|m| processed >= m) {
                        break;
                    }
                }
                Err(e) => {
                    error = Some(e.context(format!("frame {}", frame.index)));
                    break;
                }
            }
        }
        // The reader stops too (enough frames, or nothing more can be done with them).
        let end = frames.finish();
        drop(done_tx);
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
    let signal = job.stop.requested().filter(|_| end.decode.stopped);
    let ended = if signal.is_some() {
        Ended::Interrupted
    } else if sink.error.is_some() {
        Ended::OutputFailed
    } else if infer_error.is_some() {
        Ended::InferenceFailed
    } else if end.lost.is_some() {
        Ended::InputLost
    } else if end.decode.ended_early {
        Ended::InputEndedEarly
    } else {
        Ended::Complete
    };
    let error = sink.error.or(infer_error).map(|e| format!("{e:#}"));
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
        ended,
        input: info,
        frames,
        frames_read: end.frames_read,
        dropped_frames: end.dropped,
        keep_up,
        concurrent_models: analyzer.concurrent && analyzer.pose.is_some() && analyzer.seg.is_some(),
        reconnections: end.reconnections,
        input_lost: end.lost,
        frame_limit: job.max_frames,
        input_ended_early: end.decode.ended_early,
        input_message: end.decode.message,
        input_warnings: end.decode.warnings,
        input_warning_count: end.decode.warning_count,
        interrupted_by: signal.map(signal_name),
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
    let text = serde_json::to_string_pretty(&report)? + "\n";
    if let Err(e) = report_file.rewrite(text.as_bytes()) {
        // The run's own error comes first; the report's is added to it.
        return Err(match &report.error {
            Some(run) => anyhow!("{run}; and {e:#} (after {frames} frames)"),
            None => e,
        });
    }
    if frames == 0 && report.error.is_none() && ended != Ended::Interrupted {
        anyhow::bail!(
            "input {} has no frames that could be decoded{}",
            report.input.path.display(),
            report.input_message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        );
    }
    Ok(Outcome { report, report_path, out_dir: job.out_dir.clone(), signal })
}

/// One frame's stage times; `ahead` is preprocessing done before the models took the frame.
fn record_times(log: &mut StageLog, t: &AnalysisTimes, ahead: std::time::Duration) {
    let total = t.total();
    log.record("preprocess", total.preprocess + ahead);
    log.record("inference", total.inference);
    log.record("decode_output", total.decode);
}

/// The per-frame outputs besides the video: frames.jsonl, the CSV, the mask PNG. Each file
/// gets the frame's lines whole or not at all.
fn write_records(sinks: &mut Sinks, frame: &Frame, analysis: &crate::analyzer::Analysis) -> Result<()> {
    let record = FrameRecord::new(frame.index, frame.timestamp_s, analysis);
    sinks.jsonl.json_line(&record)?;
    sinks.jsonl.commit()?;
    if let Some(csv) = &mut sinks.csv {
        csv.write_frame(frame.index, frame.timestamp_s, &analysis.people)?;
    }
    if let (Some(dir), Some(mask)) = (&sinks.masks_dir, &analysis.mask) {
        let png = dir.join(format!("{:06}.png", frame.index));
        let px = mask.to_frame_u8(frame.width, frame.height);
        if let Err(e) = image::save_buffer(&png, &px, frame.width as u32, frame.height as u32, image::ColorType::L8) {
            // No half-written picture is left behind.
            let _ = std::fs::remove_file(&png);
            return Err(anyhow!("cannot write {}: {e}", png.display()));
        }
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
    for Analysed { mut frame, mut analysis, arrived } in rx.iter() {
        let t0 = Instant::now();
        temporal.apply(&mut analysis, frame.timestamp_s);
        let t1 = Instant::now();
        // Records first: the frame is drawn on next.
        let records = write_records(&mut sinks, &frame, &analysis);
        render::draw(&mut frame, &Overlay::of(&analysis, schema), &style);
        let t2 = Instant::now();
        let step = records.and_then(|_| writer.write(&frame, frame.timestamp_s));
        log.record("track", t1 - t0);
        log.record("render", t2 - t1);
        log.record("encode", t2.elapsed());
        log.record("latency", arrived.elapsed());
        if let Err(e) = step {
            error = Some(e);
            break;
        }
        frames += 1;
    }
    // Drain so the inference thread is never blocked on a dead sink.
    drop(rx);
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
