//! Model inputs made ahead: a stage between the reader and the models that resizes and
//! normalises each frame for every model that takes the whole frame, while the models are busy
//! with the frame before. Used where every frame is analysed (files, standard input), so the
//! work overlaps inference instead of adding to it; a live source keeps its newest frame
//! instead, and its inputs are made when the models take it.

use crate::frame_feed::{Fed, Feed, FeedEnd, FeedThread};
use crate::preprocess::{InputPlan, Prepared};
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::{Duration, Instant};

/// A frame for the models, with the inputs made ahead for it (none when made by the models'
/// thread) and how long making them took.
pub struct Ready {
    pub fed: Fed,
    pub inputs: Vec<Prepared>,
    pub prepare_time: Duration,
}

/// The models' frames: straight from the feed, or through the stage that makes their inputs.
pub enum Frames {
    Direct(Feed),
    Ahead(Stage),
}

/// The stage's thread (which owns the feed) and its output.
pub struct Stage {
    rx: Option<Receiver<Ready>>,
    thread: FeedThread,
}

impl Frames {
    /// Frames from `feed`; with a plan that names a model, through a stage that makes their
    /// inputs ahead, up to `queue` frames ahead.
    pub fn start(feed: Feed, plan: InputPlan, queue: usize) -> Frames {
        if plan.is_empty() {
            return Frames::Direct(feed);
        }
        let (tx, rx) = sync_channel(queue);
        let thread = FeedThread::spawn("prepare", move || {
            while let Some(fed) = feed.next() {
                let t = Instant::now();
                let inputs = plan.make(&fed.frame);
                if tx.send(Ready { fed, inputs, prepare_time: t.elapsed() }).is_err() {
                    break; // the models stopped taking frames
                }
            }
            feed.finish()
        });
        let rx = thread.started().then_some(rx);
        Frames::Ahead(Stage { rx, thread })
    }

    /// The next frame, or None when the input has ended.
    pub fn next(&self) -> Option<Ready> {
        match self {
            Frames::Direct(feed) => feed.next().map(|fed| Ready { fed, inputs: Vec::new(), prepare_time: Duration::ZERO }),
            Frames::Ahead(stage) => stage.rx.as_ref()?.recv().ok(),
        }
    }

    /// Stops reading and says how the input ended.
    pub fn finish(self) -> FeedEnd {
        match self {
            Frames::Direct(feed) => feed.finish(),
            Frames::Ahead(mut stage) => stage.stop().unwrap_or_default(),
        }
    }
}

impl Stage {
    fn stop(&mut self) -> Option<FeedEnd> {
        // The stage sees the queue closed at its next frame, and finishes the feed.
        self.rx = None;
        self.thread.join()
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
