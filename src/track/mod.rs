//! Video over time: identities for people (`tracker`), smoothed joints (`one_euro`), steady masks
//! (`mask_filter`). Runs after decoding and before rendering in every video mode (headless video,
//! live, Android); still images are not tracked.
//!
//! `Temporal` is what a mode holds per video: it takes each frame's `Analysis` with the frame's
//! timestamp and rewrites it in place (track ids, smoothed positions, smoothed mask).

pub mod mask_filter;
pub mod motion;
pub mod one_euro;
pub mod similarity;
pub mod tracker;

use crate::analyzer::Analysis;
use crate::skeleton::{self, Schema};
pub use mask_filter::{MaskFilter, MaskSmoothing};
pub use one_euro::OneEuroParams;
pub use tracker::{TrackSummary, Tracker, TrackerParams};

/// What the user chose for a video.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackOptions {
    /// Track people and smooth over time; false: every frame on its own, as before tracking.
    pub enabled: bool,
    /// Matching, lost-track time and joint smoothing.
    pub people: TrackerParams,
    /// Mask smoothing; `None`: raw masks.
    pub mask: Option<MaskSmoothing>,
}

impl Default for TrackOptions {
    fn default() -> Self {
        TrackOptions { enabled: true, people: TrackerParams::default(), mask: Some(MaskSmoothing::default()) }
    }
}

impl TrackOptions {
    /// Every frame on its own.
    pub fn off() -> TrackOptions {
        TrackOptions { enabled: false, ..TrackOptions::default() }
    }

    /// Tracking with raw joints and masks (`--smooth none`).
    pub fn unsmoothed(mut self) -> TrackOptions {
        self.people.smoothing = None;
        self.mask = None;
        self
    }

    /// The score the pose decoder should keep people down to: the tracker's second stage looks at
    /// people below the person threshold.
    pub fn decode_threshold(&self, person_threshold: f32) -> f32 {
        if self.enabled {
            Tracker::decode_threshold(&self.people, person_threshold)
        } else {
            person_threshold
        }
    }
}

/// One video's state over time.
pub struct Temporal {
    tracker: Option<Tracker>,
    mask: Option<(MaskFilter, MaskSmoothing)>,
}

impl Temporal {
    /// `person_threshold`: the score a person needs to be reported (and to start a track).
    pub fn new(opts: &TrackOptions, person_threshold: f32, schema: Option<Schema>) -> Temporal {
        if !opts.enabled {
            return Temporal { tracker: None, mask: None };
        }
        let sigmas = schema.as_ref().and_then(skeleton::oks_sigmas);
        Temporal {
            tracker: Some(Tracker::new(opts.people.clone(), person_threshold, sigmas)),
            mask: opts.mask.map(|p| (MaskFilter::default(), p)),
        }
    }

    /// Rewrites the analysis of the frame seen at `t` seconds: track ids and smoothed people,
    /// smoothed mask.
    pub fn apply(&mut self, a: &mut Analysis, t: f64) {
        if let Some(tr) = &mut self.tracker {
            a.people = tr.update(std::mem::take(&mut a.people), t);
        }
        if let (Some((f, p)), Some(m)) = (&mut self.mask, &mut a.mask) {
            f.apply(m, t, p);
        }
    }

    /// Run totals, when tracking.
    pub fn summary(&self) -> Option<TrackSummary> {
        self.tracker.as_ref().map(Tracker::summary)
    }

    /// The id the next new track would get (1 when not tracking).
    pub fn next_id(&self) -> u64 {
        self.tracker.as_ref().map_or(1, Tracker::next_id)
    }

    /// Continues the ids of a `Temporal` this one replaces within a run (a changed setting in the
    /// live window), so ids are never reused.
    pub fn continuing(mut self, next_id: u64) -> Temporal {
        if let Some(tr) = &mut self.tracker {
            tr.continue_ids_from(next_id);
        }
        self
    }

    pub fn live_tracks(&self) -> usize {
        self.tracker.as_ref().map_or(0, Tracker::live_tracks)
    }
}
