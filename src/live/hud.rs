//! Live figures: event rates and latency percentiles over a sliding window (for the HUD), and
//! over the whole run (for `--stats`).

use crate::stats::percentile;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the HUD looks.
pub const WINDOW: Duration = Duration::from_secs(5);

/// Latency samples in milliseconds.
#[derive(Debug, Default)]
pub struct Series {
    recent: VecDeque<(Instant, f64)>,
    all: Vec<f64>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct P50P95 {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

fn p50p95(mut v: Vec<f64>) -> P50P95 {
    v.sort_by(|a, b| a.total_cmp(b));
    P50P95 { count: v.len(), p50_ms: percentile(&v, 0.5), p95_ms: percentile(&v, 0.95) }
}

impl Series {
    pub fn add(&mut self, now: Instant, d: Duration) {
        self.add_ms(now, d.as_secs_f64() * 1000.0);
    }

    pub fn add_ms(&mut self, now: Instant, ms: f64) {
        self.recent.push_back((now, ms));
        self.all.push(ms);
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        while self.recent.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > WINDOW) {
            self.recent.pop_front();
        }
    }

    /// Percentiles over the last [`WINDOW`].
    pub fn window(&mut self, now: Instant) -> P50P95 {
        self.trim(now);
        p50p95(self.recent.iter().map(|(_, v)| *v).collect())
    }

    /// Percentiles over the whole run.
    pub fn run(&self) -> P50P95 {
        p50p95(self.all.clone())
    }
}

/// Counts events; rate over the sliding window and over the whole run.
#[derive(Debug, Default)]
pub struct Rate {
    recent: VecDeque<Instant>,
    first: Option<Instant>,
    last: Option<Instant>,
    total: u64,
}

impl Rate {
    pub fn tick(&mut self, now: Instant) {
        self.recent.push_back(now);
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.total += 1;
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        while self.recent.front().is_some_and(|t| now.saturating_duration_since(*t) > WINDOW) {
            self.recent.pop_front();
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Events per second over the window: intervals between the events it holds (0 with fewer
    /// than two events, or when the last one is older than the window).
    pub fn window_hz(&mut self, now: Instant) -> f64 {
        self.trim(now);
        match (self.recent.front(), self.recent.back()) {
            (Some(a), Some(b)) if self.recent.len() >= 2 && b > a => {
                (self.recent.len() - 1) as f64 / b.duration_since(*a).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Events per second from the first event to the last.
    pub fn run_hz(&self) -> f64 {
        match (self.first, self.last) {
            (Some(a), Some(b)) if self.total >= 2 && b > a => (self.total - 1) as f64 / b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// Stages of one model's result, from the camera to the screen.
#[derive(Debug, Default)]
pub struct ModelStages {
    /// Capture until the worker took the frame (latest-wins wait).
    pub wait: Series,
    pub preprocess: Series,
    pub inference: Series,
    pub decode: Series,
    /// Result ready until first drawn on screen.
    pub to_screen: Series,
    /// Capture of the analysed frame until its result is first on screen (end to end).
    pub e2e: Series,
    pub results: Rate,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageFigures {
    pub fps: f64,
    pub results: u64,
    pub wait: P50P95,
    pub preprocess: P50P95,
    pub inference: P50P95,
    pub decode: P50P95,
    pub to_screen: P50P95,
    pub e2e: P50P95,
}

impl ModelStages {
    pub fn window(&mut self, now: Instant) -> StageFigures {
        StageFigures {
            fps: self.results.window_hz(now),
            results: self.results.total(),
            wait: self.wait.window(now),
            preprocess: self.preprocess.window(now),
            inference: self.inference.window(now),
            decode: self.decode.window(now),
            to_screen: self.to_screen.window(now),
            e2e: self.e2e.window(now),
        }
    }

    pub fn run(&self) -> StageFigures {
        StageFigures {
            fps: self.results.run_hz(),
            results: self.results.total(),
            wait: self.wait.run(),
            preprocess: self.preprocess.run(),
            inference: self.inference.run(),
            decode: self.decode.run(),
            to_screen: self.to_screen.run(),
            e2e: self.e2e.run(),
        }
    }
}

/// Everything the HUD shows.
#[derive(Debug, Default)]
pub struct Hud {
    /// New frames from the source.
    pub camera: Rate,
    /// New source frames shown on screen.
    pub display: Rate,
    /// Window repaints (any reason).
    pub repaints: Rate,
    /// Capture until the frame itself is on screen.
    pub frame_to_screen: Series,
    /// Time the UI thread spends composing and laying out one repaint.
    pub ui_update: Series,
    pub pose: ModelStages,
    pub seg: ModelStages,
}

#[derive(Debug, Clone, Serialize)]
pub struct HudFigures {
    pub camera_fps: f64,
    pub display_fps: f64,
    pub repaint_fps: f64,
    /// The faster of the enabled models' result rates (0 when none ran).
    pub inference_fps: f64,
    pub frames_captured: u64,
    pub frames_displayed: u64,
    pub frame_to_screen: P50P95,
    pub ui_update: P50P95,
    pub pose: Option<StageFigures>,
    pub seg: Option<StageFigures>,
}

impl Hud {
    /// Folds a timing event from the capture thread or a worker into the figures.
    pub fn absorb(&mut self, event: super::Event) {
        match event {
            super::Event::Captured(t) => self.camera.tick(t),
            super::Event::Result { kind, wait, times, finished } => {
                let m = match kind {
                    super::worker::Kind::Pose => &mut self.pose,
                    super::worker::Kind::Seg => &mut self.seg,
                };
                m.results.tick(finished);
                m.wait.add(finished, wait);
                m.preprocess.add(finished, times.preprocess);
                m.inference.add(finished, times.inference);
                m.decode.add(finished, times.decode);
            }
        }
    }

    pub fn window(&mut self, now: Instant) -> HudFigures {
        let pose = (self.pose.results.total() > 0).then(|| self.pose.window(now));
        let seg = (self.seg.results.total() > 0).then(|| self.seg.window(now));
        HudFigures {
            camera_fps: self.camera.window_hz(now),
            display_fps: self.display.window_hz(now),
            repaint_fps: self.repaints.window_hz(now),
            inference_fps: inference_fps(&pose, &seg),
            frames_captured: self.camera.total(),
            frames_displayed: self.display.total(),
            frame_to_screen: self.frame_to_screen.window(now),
            ui_update: self.ui_update.window(now),
            pose,
            seg,
        }
    }

    pub fn run(&self) -> HudFigures {
        let pose = (self.pose.results.total() > 0).then(|| self.pose.run());
        let seg = (self.seg.results.total() > 0).then(|| self.seg.run());
        HudFigures {
            camera_fps: self.camera.run_hz(),
            display_fps: self.display.run_hz(),
            repaint_fps: self.repaints.run_hz(),
            inference_fps: inference_fps(&pose, &seg),
            frames_captured: self.camera.total(),
            frames_displayed: self.display.total(),
            frame_to_screen: self.frame_to_screen.run(),
            ui_update: self.ui_update.run(),
            pose,
            seg,
        }
    }
}

fn inference_fps(pose: &Option<StageFigures>, seg: &Option<StageFigures>) -> f64 {
    // Pose and segmentation run concurrently; the overlay is refreshed at the slower one's rate
    // for its part, so report the lower rate of those that ran.
    let rates: Vec<f64> = pose.iter().chain(seg.iter()).map(|f| f.fps).collect();
    if rates.is_empty() {
        0.0
    } else {
        rates.iter().cloned().fold(f64::INFINITY, f64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_counts_intervals() {
        let mut r = Rate::default();
        let t0 = Instant::now();
        for i in 0..11 {
            r.tick(t0 + Duration::from_millis(100 * i));
        }
        let now = t0 + Duration::from_millis(1000);
        assert!((r.window_hz(now) - 10.0).abs() < 1e-6);
        assert!((r.run_hz() - 10.0).abs() < 1e-6);
        // Events older than the window no longer count.
        assert_eq!(r.window_hz(now + WINDOW + Duration::from_secs(1)), 0.0);
        assert!((r.run_hz() - 10.0).abs() < 1e-6);
    }

    #[test]
    fn series_window_forgets_old_samples() {
        let mut s = Series::default();
        let t0 = Instant::now();
        for i in 1..=100 {
            s.add_ms(t0, i as f64);
        }
        let w = s.window(t0);
        assert_eq!((w.count, w.p50_ms, w.p95_ms), (100, 50.0, 95.0));
        let later = t0 + WINDOW + Duration::from_secs(1);
        s.add_ms(later, 7.0);
        assert_eq!(s.window(later).count, 1);
        assert_eq!(s.run().count, 101);
    }

    #[test]
    fn events_land_in_their_model_and_stage() {
        use crate::live::worker::Kind;
        use crate::live::Event;
        use crate::session::StageTimes;
        let mut h = Hud::default();
        let t0 = Instant::now();
        h.absorb(Event::Captured(t0));
        let ms = Duration::from_millis;
        let times = StageTimes { preprocess: ms(2), inference: ms(30), decode: ms(1) };
        h.absorb(Event::Result { kind: Kind::Seg, wait: ms(5), times, finished: t0 + ms(40) });
        assert_eq!(h.camera.total(), 1);
        assert_eq!((h.seg.results.total(), h.pose.results.total()), (1, 0));
        let f = h.seg.run();
        assert_eq!((f.wait.p50_ms, f.preprocess.p50_ms, f.inference.p50_ms, f.decode.p50_ms), (5.0, 2.0, 30.0, 1.0));
    }
}
