//! Frames from the source to the models, on the reader thread.
//!
//! A file (or a pipe the user fills) is read at the models' pace: every frame, the decoder
//! waits. A live source (a stream, a camera) runs at its own pace: the newest frame wins, the
//! frames the models could not keep up with are dropped and counted, and a stream that drops is
//! reconnected, its frames numbered and timed on from where it stopped.

use crate::frame::Frame;
use crate::interrupt::Stop;
use crate::live::slot::Slot;
use crate::video_source::{DecodeEnd, Source, VideoReader};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Whether frames may be dropped to keep up with the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepUp {
    /// Streams and cameras: yes; files and standard input: no.
    Auto,
    On,
    Off,
}

impl KeepUp {
    pub fn applies_to(self, source: &Source) -> bool {
        match self {
            KeepUp::Auto => matches!(source, Source::Url(_) | Source::Camera(_)),
            KeepUp::On => true,
            KeepUp::Off => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FeedOptions {
    pub keep_up: KeepUp,
    /// How long to wait for a live source's first frame.
    pub connect_timeout: Duration,
    /// How long to keep trying to reconnect a stream that dropped (zero: its end is the end).
    pub reconnect_timeout: Duration,
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions { keep_up: KeepUp::Auto, connect_timeout: Duration::from_secs(10), reconnect_timeout: Duration::from_secs(10) }
    }
}

/// A frame as read: how long reading it took, and when it arrived (for latency).
pub struct Fed {
    pub frame: Frame,
    pub read_time: Duration,
    pub arrived: Instant,
}

/// A stream that dropped and came back.
#[derive(Debug, Clone, Serialize)]
pub struct Reconnection {
    /// The first frame index after it.
    pub at_frame: u64,
    /// Seconds without frames.
    pub gap_s: f64,
    /// Why the stream had ended.
    pub reason: String,
}

/// How the input ended, over all its connections.
#[derive(Debug, Default)]
pub struct FeedEnd {
    /// The last connection's end (an earlier one that was reconnected is in `reconnections`).
    pub decode: DecodeEnd,
    pub frames_read: u64,
    /// Frames read but never processed: the models were busy with an earlier one.
    pub dropped: u64,
    pub reconnections: Vec<Reconnection>,
    /// The stream dropped and did not come back in time: why.
    pub lost: Option<String>,
}

/// The models' end of the feed.
pub enum FeedRx {
    Every(Receiver<Fed>),
    Latest(Arc<Slot<Fed>>),
}

impl FeedRx {
    /// The next frame, or None when the input has ended.
    pub fn next(&self) -> Option<Fed> {
        match self {
            FeedRx::Every(rx) => rx.recv().ok(),
            FeedRx::Latest(slot) => loop {
                if let Some(f) = slot.take_timeout(Duration::from_millis(200)) {
                    return Some(f);
                }
                if slot.is_closed() {
                    return slot.try_take();
                }
            },
        }
    }
}

/// The reader's end.
pub enum FeedTx {
    Every(SyncSender<Fed>),
    Latest(Arc<Slot<Fed>>),
}

/// A feed's two ends: every frame through a bounded queue, or latest-wins.
fn channel(keep_up: bool, queue: usize) -> (FeedTx, FeedRx) {
    if keep_up {
        let slot = Arc::new(Slot::new());
        (FeedTx::Latest(slot.clone()), FeedRx::Latest(slot))
    } else {
        let (tx, rx) = std::sync::mpsc::sync_channel(queue);
        (FeedTx::Every(tx), FeedRx::Every(rx))
    }
}

/// Shared between the reader and the models: stop reading (enough frames, or downstream failed).
#[derive(Default)]
pub struct FeedControl {
    done: AtomicBool,
    /// Frames read so far (over every connection).
    read: AtomicU64,
}

impl FeedControl {
    pub fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
    }

    fn finished(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

impl FeedEnd {
    /// An input that ended because of `message` (nothing more could be read).
    pub fn failed(message: String) -> FeedEnd {
        let mut end = FeedEnd::default();
        end.decode.ended_early = true;
        end.decode.message = Some(message);
        end
    }
}

/// A thread that reads the input and ends with how the input ended; one that could not be
/// started ends at once, saying so (the run keeps what it has and reports it).
pub struct FeedThread {
    what: &'static str,
    state: Option<Result<JoinHandle<FeedEnd>, FeedEnd>>,
}

impl FeedThread {
    /// Runs `work` on a thread named `what`.
    pub fn spawn(what: &'static str, work: impl FnOnce() -> FeedEnd + Send + 'static) -> FeedThread {
        let state = std::thread::Builder::new()
            .name(what.into())
            .spawn(work)
            .map_err(|e| FeedEnd::failed(format!("cannot start the {what} thread: {e}")));
        FeedThread { what, state: Some(state) }
    }

    pub fn started(&self) -> bool {
        matches!(self.state, Some(Ok(_)))
    }

    fn running(&self) -> bool {
        matches!(&self.state, Some(Ok(t)) if !t.is_finished())
    }

    /// Waits for the thread's end (None after the first call).
    pub fn join(&mut self) -> Option<FeedEnd> {
        Some(match self.state.take()? {
            Ok(t) => t.join().unwrap_or_else(|_| FeedEnd::failed(format!("the {} thread failed", self.what))),
            Err(end) => end,
        })
    }
}

/// A feed whose reader thread is running: started as soon as the input is open, so ffmpeg's
/// start and the first frames' decoding overlap the models' loading.
pub struct Feed {
    rx: Option<FeedRx>,
    control: Arc<FeedControl>,
    thread: FeedThread,
}

impl Feed {
    /// Starts reading `reader` (open on `source`) into a feed of `queue` frames (latest-wins
    /// when `keep_up`).
    pub fn start(reader: VideoReader, source: Source, options: FeedOptions, keep_up: bool, queue: usize, stop: Stop) -> Feed {
        let (tx, rx) = channel(keep_up, queue);
        let control = Arc::new(FeedControl::default());
        let shared = control.clone();
        let thread = FeedThread::spawn("reader", move || run(reader, &source, &options, tx, &shared, &stop));
        let rx = thread.started().then_some(rx);
        Feed { rx, control, thread }
    }

    /// The next frame, or None when the input has ended.
    pub fn next(&self) -> Option<Fed> {
        self.rx.as_ref().and_then(FeedRx::next)
    }

    /// Waits (up to `timeout`) until `frames` have been read or the input has ended: a
    /// benchmark lets the read-ahead fill before timing models alone.
    pub fn wait_for_frames(&self, frames: u64, timeout: Duration) {
        let t = Instant::now();
        while self.control.read.load(Ordering::Relaxed) < frames && self.thread.running() && t.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops reading (enough frames, or nothing more can be done with them) and says how the
    /// input ended.
    pub fn finish(mut self) -> FeedEnd {
        self.stop_thread().unwrap_or_default()
    }

    fn stop_thread(&mut self) -> Option<FeedEnd> {
        self.control.finish();
        // A reader blocked on a full queue sees it closed.
        self.rx = None;
        self.thread.join()
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        // A run that never started (a bad model, an output refused) leaves no decoder behind.
        let _ = self.stop_thread();
    }
}

/// Reads `reader` (already open on `source`) to the end, delivering frames into `tx`, and
/// reconnects a live stream that drops. Runs on the reader thread.
fn run(mut reader: VideoReader, source: &Source, options: &FeedOptions, tx: FeedTx, control: &FeedControl, stop: &Stop) -> FeedEnd {
    let mut end = FeedEnd::default();
    let (width, height) = (reader.info().width, reader.info().height);
    loop {
        let connection = read_connection(&mut reader, &tx, control, stop, &mut end);
        let last_time = reader.position().1;
        let stopped = connection.stopped;
        let reconnect = !stopped && source.reconnectable() && !options.reconnect_timeout.is_zero() && !reader.has_duration();
        end.decode = connection;
        if !reconnect {
            break;
        }
        let reason = end.decode.message.clone().unwrap_or_else(|| "the stream ended".into());
        let lost_at = Instant::now();
        match reconnect_within(source, options.reconnect_timeout, control, stop) {
            Ok(mut next) => {
                let info = next.info();
                if (info.width, info.height) != (width, height) {
                    end.lost = Some(format!("{reason}; it came back at {}x{} instead of {width}x{height}", info.width, info.height));
                    next.stop();
                    break;
                }
                let gap = lost_at.elapsed().as_secs_f64();
                let step = 1.0 / reader.info().fps;
                // Times go on across the gap: the people moved meanwhile.
                next.continue_from(end.frames_read, last_time.map_or(0.0, |t| t + step + gap));
                end.reconnections.push(Reconnection { at_frame: end.frames_read, gap_s: gap, reason });
                // The earlier connection's end was not the input's.
                end.decode.ended_early = false;
                end.decode.message = None;
                reader = next;
            }
            Err(why) => {
                if !(stop.requested().is_some() || control.finished()) {
                    end.lost = Some(format!("{reason}; not back within {:.0} s ({why})", options.reconnect_timeout.as_secs_f64()));
                } else {
                    end.decode.stopped = true;
                }
                break;
            }
        }
    }
    if let FeedTx::Latest(slot) = &tx {
        end.dropped = slot.counts().1;
        slot.close();
    }
    end
}

/// One connection's frames, until it ends or edgesight stops reading.
fn read_connection(reader: &mut VideoReader, tx: &FeedTx, control: &FeedControl, stop: &Stop, end: &mut FeedEnd) -> DecodeEnd {
    loop {
        if stop.requested().is_some() || control.finished() {
            reader.stop();
            break;
        }
        let t = Instant::now();
        match reader.next_frame() {
            Ok(Some(frame)) => {
                end.frames_read += 1;
                control.read.fetch_add(1, Ordering::Relaxed);
                let fed = Fed { frame, read_time: t.elapsed(), arrived: Instant::now() };
                let gone = match tx {
                    FeedTx::Every(tx) => tx.send(fed).is_err(),
                    FeedTx::Latest(slot) => {
                        slot.put(fed);
                        false
                    }
                };
                if gone {
                    // Downstream stopped (an output failed): the input is not at fault.
                    reader.stop();
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let mut d = reader.finish();
                d.ended_early = true;
                d.message = Some(format!("{e:#}"));
                return d;
            }
        }
    }
    reader.finish()
}

/// Tries to open `source` again until one attempt gives a frame or `timeout` has passed.
fn reconnect_within(source: &Source, timeout: Duration, control: &FeedControl, stop: &Stop) -> Result<VideoReader, String> {
    let deadline = Instant::now() + timeout;
    let cancelled = || stop.requested().is_some() || control.finished();
    let mut last = String::from("no attempt");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || cancelled() {
            return Err(last);
        }
        match VideoReader::connect(source, left, &cancelled) {
            Ok(r) => return Ok(r),
            Err(e) => last = format!("{e:#}"),
        }
        // A refused connection fails at once: do not hammer the server.
        let pause = Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now()));
        let t = Instant::now();
        while t.elapsed() < pause && !cancelled() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn keep_up_follows_the_source() {
        let file = Source::File(PathBuf::from("a.mp4"));
        let url = Source::Url("rtsp://cam/1".into());
        assert!(!KeepUp::Auto.applies_to(&file));
        assert!(!KeepUp::Auto.applies_to(&Source::Stdin));
        assert!(KeepUp::Auto.applies_to(&url));
        assert!(KeepUp::Auto.applies_to(&Source::Camera(0)));
        assert!(KeepUp::On.applies_to(&file));
        assert!(!KeepUp::Off.applies_to(&url));
    }

    #[test]
    fn latest_feed_delivers_what_is_left_after_close() {
        let (tx, rx) = channel(true, 3);
        let FeedTx::Latest(slot) = &tx else { panic!() };
        let frame = |i| {
            let mut f = Frame::new(2, 2, vec![0; 12]).unwrap();
            f.index = i;
            Fed { frame: f, read_time: Duration::ZERO, arrived: Instant::now() }
        };
        slot.put(frame(0));
        slot.put(frame(1));
        slot.close();
        assert_eq!(rx.next().map(|f| f.frame.index), Some(1));
        assert!(rx.next().is_none());
        assert_eq!(slot.counts(), (2, 1));
    }
}
