//! The composition step both live windows (desktop `ui`, Android `android/src/app.rs`) run on
//! each repaint, without any UI toolkit: the newest frame with the newest results drawn over it
//! by `render::draw` (what headless output draws for that frame and those results), only when
//! the frame, a result or the style changed, and the latency accounting of what became visible
//! (`live::hud::Hud`).
//!
//! A window calls [`Composer::begin`] at the start of a repaint (repaint rate, timing events of
//! the other threads), [`Composer::compose`] with a closure that hands the drawn image to its
//! renderer, and [`Composer::end`] when its layout is done (UI update time).

use super::hud::Hud;
use super::worker::{Kind, ModelResult};
use super::Shared;
use crate::frame::Frame;
use crate::render::{self, Overlay, Style};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// What is on screen: sequence numbers of the frame and of the results last looked at, and the
/// style's version.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ShownKey {
    frame: u64,
    pose: u64,
    seg: u64,
    style_version: u64,
}

/// The frame on screen and the frames its results came from (the desktop window's `--stats`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct ShownFrames {
    /// Sequence number over the run and index in the source of the frame on screen.
    pub frame_seq: u64,
    pub frame_index: u64,
    /// The frames whose results are drawn over it (None: no result drawn).
    pub pose_frame_index: Option<u64>,
    pub seg_frame_index: Option<u64>,
    pub pose_frames_behind: Option<u64>,
    pub seg_frames_behind: Option<u64>,
    /// Track ids of the people drawn, in their order (empty when not tracked), and their boxes.
    pub pose_track_ids: Vec<u64>,
    pub pose_boxes: Vec<[f32; 4]>,
    pub width: usize,
    pub height: usize,
}

/// What one new composition changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Composition {
    /// A new source frame is on screen (not only new results or a new style).
    pub new_frame: bool,
    /// The frame has another size than the one composed before (the source changed).
    pub resized: bool,
}

/// The composition state of one window: style, what is on screen, the HUD figures.
pub struct Composer {
    pub hud: Hud,
    style: Style,
    style_version: u64,
    key: ShownKey,
    image: Option<Frame>,
    shown: ShownFrames,
    /// Per model (`Kind` order): sequence number of the last result accounted, results shown.
    last_result: [u64; 2],
    results_shown: [u64; 2],
    frames_shown: u64,
}

impl Composer {
    pub fn new(style: Style) -> Composer {
        Composer {
            hud: Hud::default(),
            style,
            style_version: 0,
            key: ShownKey::default(),
            image: None,
            shown: ShownFrames::default(),
            last_result: [0; 2],
            results_shown: [0; 2],
            frames_shown: 0,
        }
    }

    /// Start of a repaint: counts it, and folds the other threads' timing events into the HUD.
    pub fn begin(&mut self, shared: &Shared, now: Instant) {
        self.hud.repaints.tick(now);
        for e in shared.take_events() {
            self.hud.absorb(e);
        }
    }

    /// End of a repaint begun at `started`: the time the UI thread spent on it.
    pub fn end(&mut self, started: Instant) {
        self.hud.ui_update.add(Instant::now(), started.elapsed());
    }

    pub fn style(&self) -> &Style {
        &self.style
    }

    /// Takes the thresholds a control changed; the next `compose` draws with them.
    pub fn set_style(&mut self, style: Style) {
        if style.keypoint_threshold != self.style.keypoint_threshold || style.mask_opacity != self.style.mask_opacity {
            self.style = style;
            self.style_version += 1;
        }
    }

    /// The composed image on screen (None before the first frame).
    pub fn image(&self) -> Option<&Frame> {
        self.image.as_ref()
    }

    pub fn shown(&self) -> &ShownFrames {
        &self.shown
    }

    /// Source frames shown so far.
    pub fn frames_shown(&self) -> u64 {
        self.frames_shown
    }

    /// Results of this model that have been on screen so far.
    pub fn results_shown(&self, kind: Kind) -> u64 {
        self.results_shown[kind as usize]
    }

    /// Composes the newest frame with the newest results when any of them or the style changed
    /// since the last composition, and nothing holds the picture (`hold`: the window froze it;
    /// or pause, once something is on screen). `present` hands the drawn image to the window's
    /// renderer; the moment it returns counts as "on screen" for the frame and for the results
    /// seen for the first time (frame -> screen, result -> screen, capture -> screen).
    pub fn compose(&mut self, shared: &Shared, hold: bool, present: impl FnOnce(&Frame)) -> Option<Composition> {
        if hold || shared.paused.load(Ordering::SeqCst) && self.image.is_some() {
            return None;
        }
        let (fseq, frame) = shared.frames.latest();
        let (pseq, pose) = shared.pose_out.latest();
        let (sseq, seg) = shared.seg_out.latest();
        let key = ShownKey { frame: fseq, pose: pseq, seg: sseq, style_version: self.style_version };
        if key == self.key {
            return None;
        }
        let captured = frame?;
        let size = (captured.frame.width, captured.frame.height);
        // Results of a frame of another size (the source changed) are not drawn.
        let fits = |r: &Option<Arc<ModelResult>>| r.as_ref().filter(|r| r.frame_size == size).cloned();
        let (pose, seg) = (fits(&pose), fits(&seg));
        let mut image = captured.frame.clone();
        let overlay = Overlay {
            people: pose.as_ref().map(|p| &p.people[..]).unwrap_or(&[]),
            schema: pose.as_ref().and_then(|p| p.schema),
            mask: seg.as_ref().and_then(|s| s.mask.as_ref()),
            classes: seg.as_ref().and_then(|s| s.classes.as_ref()),
        };
        render::draw(&mut image, &overlay, &self.style);
        present(&image);
        let now = Instant::now();
        let new_frame = fseq != self.key.frame;
        if new_frame {
            self.frames_shown += 1;
            self.hud.display.tick(now);
            self.hud.frame_to_screen.add(now, now - captured.at);
        }
        self.account(&pose, Kind::Pose, now);
        self.account(&seg, Kind::Seg, now);
        self.shown = ShownFrames {
            frame_seq: captured.seq,
            frame_index: captured.frame.index,
            pose_frame_index: pose.as_ref().map(|p| p.source_index),
            seg_frame_index: seg.as_ref().map(|s| s.source_index),
            pose_frames_behind: pose.as_ref().map(|p| captured.seq.saturating_sub(p.seq)),
            seg_frames_behind: seg.as_ref().map(|s| captured.seq.saturating_sub(s.seq)),
            pose_track_ids: pose.iter().flat_map(|p| p.people.iter().filter_map(|q| q.track_id)).collect(),
            pose_boxes: pose.iter().flat_map(|p| p.people.iter().map(|q| q.bbox)).collect(),
            width: image.width,
            height: image.height,
        };
        self.key = key;
        let old = self.image.replace(image).map(|f| (f.width, f.height));
        Some(Composition { new_frame, resized: old.is_some() && old != Some(size) })
    }

    /// First time a result is on screen: its end-to-end and result-to-screen latency.
    fn account(&mut self, r: &Option<Arc<ModelResult>>, kind: Kind, now: Instant) {
        let Some(r) = r else { return };
        let stages = match kind {
            Kind::Pose => &mut self.hud.pose,
            Kind::Seg => &mut self.hud.seg,
        };
        let last = &mut self.last_result[kind as usize];
        if r.seq != *last {
            *last = r.seq;
            self.results_shown[kind as usize] += 1;
            stages.to_screen.add(now, now - r.finished);
            stages.e2e.add(now, now - r.captured_at);
        }
    }
}

/// What a window shows while no frame has arrived yet.
pub fn waiting_message(shared: &Shared) -> String {
    format!("waiting for {} ...", shared.source().1.describe())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detections::{Keypoint, Mask, Person};
    use crate::live::capture::SourceSpec;
    use crate::live::worker::WorkerConfig;
    use crate::live::Captured;
    use crate::preprocess::FrameOnGrid;
    use crate::session::StageTimes;
    use std::path::PathBuf;
    use std::time::Duration;

    fn shared() -> Shared {
        Shared::new(SourceSpec::File(PathBuf::from("clip.mp4")), WorkerConfig::off(), WorkerConfig::off())
    }

    fn frame(w: usize, h: usize, index: u64) -> Frame {
        let rgb = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        let mut f = Frame::new(w, h, rgb).unwrap();
        f.index = index;
        f
    }

    /// The newest frame published, as a worker sees it.
    fn newest(s: &Shared) -> Arc<Captured> {
        s.frames.latest().1.unwrap()
    }

    fn result(of: &Captured, people: Vec<Person>, mask: Option<Mask>) -> Arc<ModelResult> {
        let finished = Instant::now();
        Arc::new(ModelResult {
            model: "test".into(),
            seq: of.seq,
            source_index: of.frame.index,
            frame_size: (of.frame.width, of.frame.height),
            captured_at: of.at,
            started: of.at,
            finished,
            times: StageTimes::default(),
            people,
            schema: Some(crate::skeleton::COCO17),
            mask,
            classes: None,
        })
    }

    fn person(w: usize, h: usize) -> Person {
        let keypoints = (0..17)
            .map(|i| Keypoint { x: (w as f32) * (0.2 + 0.03 * i as f32), y: (h as f32) * (0.1 + 0.05 * i as f32), score: 0.9 })
            .collect();
        Person { keypoints, bbox: [0.0, 0.0, w as f32, h as f32], score: 0.8, track_id: None }
    }

    fn mask(w: usize, h: usize) -> Mask {
        Mask { width: w, height: h, probs: (0..w * h).map(|i| (i % 10) as f32 / 10.0).collect(), region: FrameOnGrid::full(w, h) }
    }

    /// Composes and returns what was presented.
    fn compose(c: &mut Composer, s: &Shared) -> (Option<Composition>, Option<Frame>) {
        let mut presented = None;
        let r = c.compose(s, false, |f| presented = Some(f.clone()));
        (r, presented)
    }

    /// Nothing composed and nothing presented.
    fn nothing_new(c: &mut Composer, s: &Shared) -> bool {
        matches!(compose(c, s), (None, None))
    }

    #[test]
    fn nothing_to_compose_before_the_first_frame() {
        let s = shared();
        let mut c = Composer::new(Style::default());
        assert!(nothing_new(&mut c, &s));
        assert!(c.image().is_none());
        assert_eq!(c.hud.display.total(), 0);
        assert_eq!(waiting_message(&s), format!("waiting for {} ...", SourceSpec::File("clip.mp4".into()).describe()));
    }

    #[test]
    fn composes_only_when_something_changed() {
        let s = shared();
        let mut c = Composer::new(Style::default());
        s.publish_frame(frame(32, 24, 5));
        let (r, shown) = compose(&mut c, &s);
        assert_eq!(r, Some(Composition { new_frame: true, resized: false }));
        assert_eq!(shown.unwrap().rgb, frame(32, 24, 5).rgb, "no results: the frame as captured");
        assert_eq!((c.frames_shown(), c.hud.display.total(), c.hud.frame_to_screen.run().count), (1, 1, 1));
        assert_eq!((c.shown().frame_index, c.shown().width, c.shown().height), (5, 32, 24));
        // Nothing new: nothing composed, nothing counted.
        assert!(nothing_new(&mut c, &s));
        assert_eq!(c.frames_shown(), 1);
        // A new style recomposes the same frame without counting it again.
        c.set_style(Style { keypoint_threshold: 0.9, ..Style::default() });
        let (r, shown) = compose(&mut c, &s);
        assert_eq!(r, Some(Composition { new_frame: false, resized: false }));
        assert!(shown.is_some());
        assert_eq!((c.frames_shown(), c.hud.display.total()), (1, 1));
        // The same thresholds again are no change.
        c.set_style(*c.style());
        assert!(nothing_new(&mut c, &s));
    }

    #[test]
    fn draws_the_results_as_the_headless_renderer_does() {
        let s = shared();
        let mut c = Composer::new(Style::default());
        s.publish_frame(frame(48, 32, 0));
        let captured = newest(&s);
        let (pose, seg) = (result(&captured, vec![person(48, 32)], None), result(&captured, Vec::new(), Some(mask(12, 8))));
        s.pose_out.publish(pose.clone());
        s.seg_out.publish(seg.clone());
        let (_, shown) = compose(&mut c, &s);
        let mut expected = captured.frame.clone();
        let overlay = Overlay { people: &pose.people, schema: pose.schema, mask: seg.mask.as_ref(), classes: None };
        render::draw(&mut expected, &overlay, &Style::default());
        let shown = shown.unwrap();
        assert_ne!(shown.rgb, captured.frame.rgb);
        assert_eq!(shown.rgb, expected.rgb);
        assert_eq!(c.image().unwrap().rgb, expected.rgb);
        assert_eq!((c.shown().pose_frame_index, c.shown().seg_frame_index), (Some(0), Some(0)));
        assert_eq!((c.shown().pose_frames_behind, c.shown().seg_frames_behind), (Some(0), Some(0)));
    }

    #[test]
    fn accounts_each_result_once() {
        let s = shared();
        let mut c = Composer::new(Style::default());
        s.publish_frame(frame(16, 16, 0));
        let first = newest(&s);
        s.pose_out.publish(result(&first, vec![person(16, 16)], None));
        compose(&mut c, &s);
        assert_eq!((c.results_shown(Kind::Pose), c.results_shown(Kind::Seg)), (1, 0));
        assert_eq!((c.hud.pose.e2e.run().count, c.hud.pose.to_screen.run().count, c.hud.seg.e2e.run().count), (1, 1, 0));
        // Two newer frames with the same result: shown again, not accounted again, and behind.
        s.publish_frame(frame(16, 16, 1));
        s.publish_frame(frame(16, 16, 2));
        compose(&mut c, &s);
        assert_eq!((c.results_shown(Kind::Pose), c.hud.pose.e2e.run().count), (1, 1));
        assert_eq!((c.shown().frame_index, c.shown().pose_frame_index, c.shown().pose_frames_behind), (2, Some(0), Some(2)));
        assert_eq!(c.frames_shown(), 2, "one composition per repaint: the frame in between was never on screen");
        // A result for the newest frame.
        s.pose_out.publish(result(&newest(&s), vec![person(16, 16)], None));
        compose(&mut c, &s);
        assert_eq!((c.results_shown(Kind::Pose), c.hud.pose.e2e.run().count, c.frames_shown()), (2, 2, 2));
        assert_eq!(c.shown().pose_frames_behind, Some(0));
    }

    #[test]
    fn results_of_another_frame_size_are_not_drawn() {
        let s = shared();
        let mut c = Composer::new(Style::default());
        s.publish_frame(frame(20, 10, 0));
        let small = newest(&s);
        s.pose_out.publish(result(&small, vec![person(20, 10)], None));
        s.seg_out.publish(result(&small, Vec::new(), Some(mask(5, 5))));
        compose(&mut c, &s);
        // The source changes size; the old results stay in their watches.
        s.publish_frame(frame(40, 30, 0));
        let (r, shown) = compose(&mut c, &s);
        assert_eq!(r, Some(Composition { new_frame: true, resized: true }));
        assert_eq!(shown.unwrap().rgb, frame(40, 30, 0).rgb);
        assert_eq!((c.shown().pose_frame_index, c.shown().seg_frame_index, c.shown().pose_frames_behind), (None, None, None));
        assert_eq!((c.shown().width, c.shown().height), (40, 30));
        assert_eq!(c.results_shown(Kind::Pose), 1);
    }

    #[test]
    fn pause_and_hold_keep_the_picture() {
        let s = shared();
        let mut c = Composer::new(Style::default());
        s.paused.store(true, Ordering::SeqCst);
        // Paused before anything was shown: the first frame still comes up.
        s.publish_frame(frame(8, 8, 0));
        assert!(compose(&mut c, &s).0.is_some());
        s.publish_frame(frame(8, 8, 1));
        assert!(nothing_new(&mut c, &s));
        s.paused.store(false, Ordering::SeqCst);
        assert!(c.compose(&s, true, |_| panic!("held")).is_none());
        assert_eq!(c.shown().frame_index, 0);
        assert!(compose(&mut c, &s).0.is_some());
        assert_eq!(c.shown().frame_index, 1);
    }

    #[test]
    fn begin_and_end_fold_events_and_time_the_repaint() {
        let s = shared();
        let mut c = Composer::new(Style::default());
        s.publish_frame(frame(8, 8, 0));
        let t0 = Instant::now();
        s.push_event(crate::live::Event::Result { kind: Kind::Pose, wait: Duration::from_millis(3), times: StageTimes::default(), finished: t0 });
        c.begin(&s, t0);
        c.end(t0);
        assert_eq!((c.hud.camera.total(), c.hud.pose.results.total(), c.hud.repaints.total(), c.hud.ui_update.run().count), (1, 1, 1, 1));
        assert!(s.take_events().is_empty());
    }
}
