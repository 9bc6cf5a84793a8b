//! Inference workers: one for pose, one for segmentation, running concurrently. Each takes the
//! newest frame from its latest-wins slot, runs its model (preprocess -> inference -> decode) and
//! publishes the result with its timings. A model switched in the UI is loaded here, off the UI
//! thread; a model that fails to load becomes a status message, not a crash. Results are tracked
//! and smoothed over time here too (`track::Temporal`, by capture time, so frames the worker
//! skipped only lengthen the step), afresh for a new source, model or setting.

use super::{Captured, Event, Shared};
use crate::analyzer::{AnalysisTimes, Analyzer, ModelChoice};
use crate::topdown::TopDownParams;
use crate::engine::EngineOptions;
use crate::decode::PoseThresholds;
use crate::detections::{ClassMap, Mask, Person};
use crate::session::StageTimes;
use crate::skeleton::Schema;
use crate::track::{Temporal, TrackOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pose = 0,
    Seg = 1,
}

/// What a worker should run.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// Catalogue name, or None (off).
    pub model: Option<String>,
    /// Another file for that model's description.
    pub file: Option<PathBuf>,
    /// Pose input's longest side.
    pub size: Option<usize>,
    pub person_threshold: f32,
    /// Where and how inference runs: backend, CPU threads and kernels (changing them replans
    /// the model).
    pub engine: EngineOptions,
    /// Tracking and smoothing of the results over time (a change starts afresh).
    pub track: TrackOptions,
    /// A top-down pose pipeline's settings (`--detect-every`, `--max-people`).
    pub topdown: TopDownParams,
}

impl WorkerConfig {
    pub fn off() -> WorkerConfig {
        WorkerConfig {
            model: None,
            file: None,
            size: None,
            person_threshold: PoseThresholds::default().person,
            engine: EngineOptions::default(),
            track: TrackOptions::default(),
            topdown: TopDownParams::default(),
        }
    }

    /// What needs a reload when it changes (thresholds do not).
    fn key(&self) -> ReloadKey {
        (self.model.clone(), self.file.clone(), self.size, self.engine.clone(), self.topdown)
    }
}

/// The parts of a `WorkerConfig` that need a reload when they change.
type ReloadKey = (Option<String>, Option<PathBuf>, Option<usize>, EngineOptions, TopDownParams);

/// What tracking starts afresh for: source generation, options, person threshold (bits).
type TemporalKey = (u64, TrackOptions, u32);

/// One model's output for one frame, with where it came from and how long it took.
#[derive(Debug)]
pub struct ModelResult {
    pub model: String,
    /// The analysed frame: run-wide sequence number, index in its source, capture time.
    pub seq: u64,
    pub source_index: u64,
    /// Width and height of the analysed frame.
    pub frame_size: (usize, usize),
    pub captured_at: Instant,
    pub started: Instant,
    pub finished: Instant,
    pub times: StageTimes,
    pub people: Vec<Person>,
    pub schema: Option<Schema>,
    pub mask: Option<Mask>,
    pub classes: Option<ClassMap>,
}

fn load(kind: Kind, c: &WorkerConfig) -> anyhow::Result<Analyzer> {
    let mut choice = ModelChoice { engine: c.engine.clone(), topdown: c.topdown, ..ModelChoice::default() };
    match kind {
        Kind::Pose => {
            choice.pose = c.model.clone();
            choice.pose_file = c.file.clone();
            choice.pose_size = c.size;
        }
        Kind::Seg => {
            choice.seg = c.model.clone();
            choice.seg_file = c.file.clone();
            choice.seg_size = c.size;
        }
    }
    Analyzer::new(&choice, PoseThresholds { person: c.person_threshold })
}

pub fn run(shared: Arc<Shared>, kind: Kind) {
    let (input, output) = match kind {
        Kind::Pose => (&shared.pose_in, &shared.pose_out),
        Kind::Seg => (&shared.seg_in, &shared.seg_out),
    };
    // The configuration last tried (loaded or failed), and the model when it loaded.
    let mut tried: Option<ReloadKey> = None;
    let mut analyzer: Option<Analyzer> = None;
    let mut model_name = String::new();
    let epoch = Instant::now();
    // Tracking state, and what it was made for (source, options, person threshold).
    let mut temporal: Option<(TemporalKey, Temporal)> = None;
    let mut next_id = 1;
    while !shared.stopping() {
        let config = shared.config(kind);
        if tried.as_ref() != Some(&config.key()) {
            tried = Some(config.key());
            analyzer = None;
            output.clear();
            if let Some(name) = &config.model {
                shared.set_worker_status(kind, Some(format!("loading {name} ...")), false);
                match load(kind, &config) {
                    Ok(a) => {
                        analyzer = Some(a);
                        model_name = name.clone();
                        shared.set_worker_status(kind, None, false);
                    }
                    Err(e) => shared.set_worker_status(kind, Some(format!("{name}: {e:#}")), true),
                }
            } else {
                shared.set_worker_status(kind, None, false);
            }
            // Drop a frame that waited while loading: it is old now.
            input.try_take();
            // Another model: tracking starts afresh below (ids go on counting).
            temporal = None;
        }
        let Some(captured) = input.take_timeout(Duration::from_millis(100)) else { continue };
        let Some(a) = analyzer.as_mut() else { continue };
        let key = (shared.source_generation.load(std::sync::atomic::Ordering::SeqCst), config.track.clone(), config.person_threshold.to_bits());
        if temporal.as_ref().map(|(k, _)| k) != Some(&key) {
            // Afresh, but ids go on counting: none is reused within the run. What the models
            // carry from frame to frame (a recurrent state, followed people) starts afresh too.
            temporal = Some((key, Temporal::new(&config.track, config.person_threshold, a.schema()).continuing(next_id)));
            a.new_sequence();
        }
        let Some((_, tracking)) = temporal.as_mut() else { continue };
        a.thresholds.person = config.track.decode_threshold(config.person_threshold);
        let t = captured.at.saturating_duration_since(epoch).as_secs_f64();
        let result = analyse(a, &captured, &model_name, &shared, kind, tracking, t);
        next_id = next_id.max(tracking.next_id());
        if let Some(result) = result {
            output.publish(Arc::new(result));
            shared.repaint();
        }
    }
}

fn analyse(a: &mut Analyzer, captured: &Captured, model: &str, shared: &Shared, kind: Kind, tracking: &mut Temporal, at: f64) -> Option<ModelResult> {
    let started = Instant::now();
    let mut times = AnalysisTimes::default();
    match a.analyze(&captured.frame, &mut times) {
        Ok(mut analysis) => {
            let tracked = Instant::now();
            tracking.apply(&mut analysis, at);
            let finished = Instant::now();
            let mut t = times.total();
            // The HUD's decode stage includes tracking and smoothing.
            t.decode += finished - tracked;
            shared.push_event(Event::Result { kind, wait: started - captured.at, times: t, finished });
            if shared.worker_status(kind).is_some() {
                shared.set_worker_status(kind, None, false);
            }
            Some(ModelResult {
                model: model.to_string(),
                seq: captured.seq,
                source_index: captured.frame.index,
                frame_size: (captured.frame.width, captured.frame.height),
                captured_at: captured.at,
                started,
                finished,
                times: t,
                people: analysis.people,
                schema: a.schema(),
                mask: analysis.mask,
                classes: analysis.classes,
            })
        }
        Err(e) => {
            shared.set_worker_status(kind, Some(format!("{model} failed on a frame: {e:#}")), true);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::live::capture::SourceSpec;

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn worker_runs_switches_and_reports_a_bad_model() {
        let seg = WorkerConfig { model: Some("meet".into()), ..WorkerConfig::off() };
        let shared = Arc::new(Shared::new(SourceSpec::File("unused".into()), WorkerConfig::off(), seg));
        let worker = {
            let s = shared.clone();
            std::thread::spawn(move || run(s, Kind::Seg))
        };
        let frame = Frame::new(64, 48, vec![90; 64 * 48 * 3]).unwrap();
        // Frames keep coming, as from a camera; the worker takes the newest.
        let feed = |shared: &Shared| shared.publish_frame(frame.clone());
        wait_for("a segmentation result", || {
            feed(&shared);
            shared.seg_out.latest().1.is_some()
        });
        let r = shared.seg_out.latest().1.unwrap();
        assert_eq!(r.model, "meet");
        assert_eq!(r.frame_size, (64, 48));
        assert!(r.mask.is_some() && r.people.is_empty());
        assert!(r.finished >= r.started && r.started >= r.captured_at);
        assert!(!shared.worker_failed(Kind::Seg));

        // Switched off: results go away.
        shared.set_config(Kind::Seg, WorkerConfig::off());
        wait_for("results cleared", || {
            feed(&shared);
            shared.seg_out.latest().1.is_none()
        });

        // A model that does not exist: a failure message, no panic, the worker lives on.
        shared.set_config(Kind::Seg, WorkerConfig { model: Some("no-such-model".into()), ..WorkerConfig::off() });
        wait_for("the failure", || shared.worker_failed(Kind::Seg));
        assert!(shared.worker_status(Kind::Seg).unwrap().contains("no-such-model"));

        // And back to a good one.
        shared.set_config(Kind::Seg, WorkerConfig { model: Some("selfie".into()), ..WorkerConfig::off() });
        wait_for("selfie results", || {
            feed(&shared);
            shared.seg_out.latest().1.is_some_and(|r| r.model == "selfie")
        });
        assert!(!shared.worker_failed(Kind::Seg));
        shared.request_stop();
        worker.join().unwrap();
    }
}
