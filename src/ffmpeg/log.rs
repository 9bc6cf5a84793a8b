//! What an ffmpeg child says on stderr, read as it comes (the child never blocks on it).
//!
//! The programs run with `-loglevel level+...`, so each line carries its level: only `error`
//! and worse count as faults (a valid variable-frame-rate file makes warnings, which are kept
//! and reported, never treated as damage). The decoder's `showinfo` filter lines give each
//! frame's presentation time, passed on in order to the reader of the frames.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Messages of a level kept word for word (the rest are counted).
const KEPT: usize = 5;
/// Lines of any level kept from the end, for messages about a child that failed.
const TAIL: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No level prefix (a continuation line, or a program run without the `level` flag).
    Unknown,
    Debug,
    Info,
    Warning,
    Error,
}

/// One stderr line, taken apart.
#[derive(Debug, PartialEq)]
pub struct Line<'a> {
    /// "h264", "Parsed_showinfo_0", ... (without the " @ 0x..." address).
    pub component: Option<&'a str>,
    pub level: Level,
    pub message: &'a str,
}

pub fn parse_line(line: &str) -> Line<'_> {
    let mut rest = line.trim_end();
    let mut component = None;
    if rest.starts_with('[') {
        if let Some(end) = rest.find("] ") {
            if let Some((name, _)) = rest[1..end].split_once(" @ ") {
                component = Some(name);
                rest = &rest[end + 2..];
            }
        }
    }
    let mut level = Level::Unknown;
    if let Some(after) = rest.strip_prefix('[') {
        if let Some((tag, msg)) = after.split_once(']') {
            let l = match tag {
                "panic" | "fatal" | "error" => Some(Level::Error),
                "warning" => Some(Level::Warning),
                "info" => Some(Level::Info),
                "verbose" | "debug" | "trace" => Some(Level::Debug),
                _ => None,
            };
            if let Some(l) = l {
                level = l;
                rest = msg.strip_prefix(' ').unwrap_or(msg);
            }
        }
    }
    Line { component, level, message: rest }
}

/// What showinfo says of one frame: its presentation time (None: NOPTS) and its size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameMeta {
    pub pts: Option<f64>,
    pub size: Option<(usize, usize)>,
}

/// The frame of a `showinfo` frame line ("n:  12 pts: 1228 pts_time:0.12 ... s:768x576 ..."),
/// `None` for any other line.
pub fn showinfo_frame(l: &Line) -> Option<FrameMeta> {
    if !l.component?.starts_with("Parsed_showinfo") || !l.message.trim_start().starts_with("n:") {
        return None;
    }
    let field = |name: &str| l.message.split_whitespace().find_map(|w| w.strip_prefix(name));
    let pts = field("pts_time:").and_then(|v| v.parse::<f64>().ok()).filter(|t| t.is_finite());
    let size = field("s:").and_then(|v| v.split_once('x')).and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
    Some(FrameMeta { pts, size })
}

/// The presentation time of a `showinfo` frame line: `Some(None)` for a frame without one
/// (NOPTS), `None` for any other line.
pub fn showinfo_pts(l: &Line) -> Option<Option<f64>> {
    showinfo_frame(l).map(|f| f.pts)
}

/// The frame rate showinfo's configuration line gives ("config in time_base: 1/90000,
/// frame_rate: 10/1").
fn showinfo_rate(l: &Line) -> Option<f64> {
    if !l.component?.starts_with("Parsed_showinfo") || !l.message.contains("config in") {
        return None;
    }
    let r = l.message.split("frame_rate:").nth(1)?.trim();
    let (n, d) = r.split_once('/')?;
    let v = n.trim().parse::<f64>().ok()? / d.trim().trim_end_matches(',').parse::<f64>().ok()?;
    (v.is_finite() && v > 0.0 && v < 10_000.0).then_some(v)
}

/// What a child said, summarised.
#[derive(Debug, Clone, Default)]
pub struct LogSummary {
    /// The input's duration as its description line gives it ("Duration: 00:00:04.00";
    /// Some(None) for "N/A": a live stream), None before that line.
    pub duration: Option<Option<f64>>,
    /// The frame rate of the decoded stream (showinfo's configuration).
    pub frame_rate: Option<f64>,
    /// The first video stream's codec, as the input's description names it.
    pub video_codec: Option<String>,
    pub errors: Vec<String>,
    pub error_count: u64,
    pub warnings: Vec<String>,
    pub warning_count: u64,
    /// The last lines, whatever their level.
    pub tail: Vec<String>,
}

impl LogSummary {
    /// The first error, else the last line said: why a child failed.
    pub fn reason(&self) -> Option<String> {
        self.errors.first().cloned().or_else(|| self.tail.last().cloned())
    }

    fn take(&mut self, line: &str, frames: Option<&Sender<FrameMeta>>) {
        let l = parse_line(line);
        if l.message.trim().is_empty() {
            return;
        }
        if let Some(f) = showinfo_frame(&l) {
            if let Some(tx) = frames {
                let _ = tx.send(f);
            }
            return;
        }
        if let Some(r) = showinfo_rate(&l) {
            self.frame_rate.get_or_insert(r);
            return;
        }
        if let Some(d) = l.message.trim_start().strip_prefix("Duration: ") {
            let d = d.split(',').next().unwrap_or("").trim();
            let secs = d.split(':').map(|p| p.parse::<f64>().ok()).collect::<Option<Vec<f64>>>().filter(|v| v.len() == 3).map(|v| v[0] * 3600.0 + v[1] * 60.0 + v[2]);
            self.duration.get_or_insert(secs);
        }
        // "  Stream #0:0[0x100]: Video: h264 (High) (...), yuv420p, 768x576, ..." (the input's
        // streams come before the output's).
        if self.video_codec.is_none() && l.message.trim_start().starts_with("Stream #0:") {
            if let Some(rest) = l.message.split(": Video: ").nth(1) {
                let codec = rest.split([' ', ',']).next().unwrap_or("");
                if !codec.is_empty() {
                    self.video_codec = Some(codec.to_string());
                }
            }
        }
        let text = match l.component {
            Some(c) => format!("{c}: {}", l.message.trim()),
            None => l.message.trim().to_string(),
        };
        match l.level {
            Level::Error => {
                self.error_count += 1;
                if self.errors.len() < KEPT && !self.errors.contains(&text) {
                    self.errors.push(text.clone());
                }
            }
            Level::Warning => {
                self.warning_count += 1;
                if self.warnings.len() < KEPT && !self.warnings.contains(&text) {
                    self.warnings.push(text.clone());
                }
            }
            _ => {}
        }
        if l.level >= Level::Warning || l.level == Level::Unknown || self.tail.is_empty() {
            self.tail.push(text);
            if self.tail.len() > TAIL {
                self.tail.remove(0);
            }
        }
    }
}

/// Reads a child's stderr on a thread of its own until the child closes it.
pub struct LogReader {
    summary: Arc<Mutex<LogSummary>>,
    thread: Option<JoinHandle<()>>,
}

impl LogReader {
    /// `frames`: where showinfo's frames (time, size) go, in order.
    pub fn spawn(pipe: impl Read + Send + 'static, frames: Option<Sender<FrameMeta>>) -> LogReader {
        let summary = Arc::new(Mutex::new(LogSummary::default()));
        let shared = summary.clone();
        let thread = std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                // Lines end in \n; progress-like lines in \r.
                match read_line(&mut reader, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&buf);
                        if let Ok(mut s) = shared.lock() {
                            s.take(&text, frames.as_ref());
                        }
                    }
                }
            }
        });
        LogReader { summary, thread: Some(thread) }
    }

    /// What was said so far.
    pub fn snapshot(&self) -> LogSummary {
        self.summary.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits for the child to close stderr (it has exited or is about to) and returns all it said.
    pub fn finish(&mut self) -> LogSummary {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.snapshot()
    }
}

/// One line ending in \n or \r (without it), at most 64 KiB (the rest of a longer line is
/// dropped); 0 at the end of the stream.
fn read_line(r: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut read = 0;
    loop {
        let (done, used) = {
            let buf = match r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(read);
            }
            match buf.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) => {
                    let room = (64usize << 10).saturating_sub(out.len());
                    out.extend_from_slice(&buf[..i.min(room)]);
                    (true, i + 1)
                }
                None => {
                    let room = (64usize << 10).saturating_sub(out.len());
                    out.extend_from_slice(&buf[..buf.len().min(room)]);
                    (false, buf.len())
                }
            }
        };
        r.consume(used);
        read += used;
        if done {
            return Ok(read);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream's metadata reaches us through these lines (a camera or server controls them):
    /// mutated lines never panic, and what they give is sane.
    #[test]
    fn mutated_log_lines_never_panic() {
        let seeds = [
            "[Parsed_showinfo_0 @ 0x3] [info] n:  12 pts:   1228 pts_time:0.12 duration: 1 pos: 5 fmt:yuv420p s:768x576 i:P iskey:0",
            "[Parsed_showinfo_0 @ 0x3] [info] config in time_base: 1/90000, frame_rate: 30000/1001",
            "[info]   Duration: 00:01:04.50, start: 1.600000, bitrate: N/A",
            "[info]   Stream #0:0[0x100]: Video: h264 (High) ([27][0][0][0] / 0x001B), yuv420p, 768x576, 10 fps",
            "[h264 @ 0x2] [error] Invalid NAL unit size (4080 > 2743).",
        ];
        let mut rng = crate::rng::SplitMix64(19);
        let (tx, rx) = std::sync::mpsc::channel();
        let mut summary = LogSummary::default();
        for _ in 0..20_000 {
            let mut b = seeds[rng.below(seeds.len())].as_bytes().to_vec();
            for _ in 0..1 + rng.below(6) {
                let i = rng.below(b.len() + 1);
                match rng.below(4) {
                    0 if i < b.len() => b[i] = rng.next_u64() as u8,
                    1 if i < b.len() => {
                        b.remove(i);
                    }
                    2 => b.insert(i, b"0123456789:x/,.- @[]N"[rng.below(21)]),
                    _ => b.truncate(i),
                }
            }
            let text = String::from_utf8_lossy(&b);
            summary.take(&text, Some(&tx));
            if let Some(r) = summary.frame_rate {
                assert!(r.is_finite() && r > 0.0 && r < 10_000.0, "{text}");
            }
            if let Some(Some(d)) = summary.duration {
                assert!(d.is_finite(), "{text}");
            }
            summary.frame_rate = None;
            summary.duration = None;
            summary.video_codec = None;
        }
        drop(tx);
        for f in rx.iter() {
            assert!(f.pts.is_none_or(|t| t.is_finite()));
        }
    }

    #[test]
    fn lines_are_taken_apart() {
        let l = parse_line("[h264 @ 0x55bb8d72d680] [error] Invalid NAL unit size (4080 > 2743).");
        assert_eq!(l, Line { component: Some("h264"), level: Level::Error, message: "Invalid NAL unit size (4080 > 2743)." });
        let l = parse_line("[error] Error while decoding stream #0:0: Invalid data");
        assert_eq!((l.component, l.level), (None, Level::Error));
        let l = parse_line("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] [warning] Packet corrupt (stream = 0, dts = 6144).");
        assert_eq!((l.component, l.level), (Some("mov,mp4,m4a,3gp,3g2,mj2"), Level::Warning));
        let l = parse_line("no prefix at all");
        assert_eq!((l.component, l.level, l.message), (None, Level::Unknown, "no prefix at all"));
        // A bracket that is no level tag stays in the message.
        assert_eq!(parse_line("[foo] bar").message, "[foo] bar");
    }

    #[test]
    fn showinfo_gives_frame_times() {
        let l = parse_line("[Parsed_showinfo_0 @ 0x55e6] [info] n:   3 pts:   3072 pts_time:0.3     pos: 48 fmt:yuv420p");
        assert_eq!(showinfo_pts(&l), Some(Some(0.3)));
        let l = parse_line("[Parsed_showinfo_0 @ 0x55e6] [info] n:   4 pts:NOPTS pts_time:NOPTS pos: 48");
        assert_eq!(showinfo_pts(&l), Some(None));
        let l = parse_line("[Parsed_showinfo_0 @ 0x55e6] [info] config in time_base: 1/10240, frame_rate: 10/1");
        assert_eq!(showinfo_pts(&l), None);
        assert_eq!(showinfo_pts(&parse_line("[info] n: 1 pts_time:0.1")), None);
    }

    #[test]
    fn only_errors_are_faults() {
        let text = "[info] Input #0\n[info]   Duration: N/A, start: 1.4\n[info]   Stream #0:0[0x100]: Video: h264 (High) ([27][0][0][0] / 0x001B), yuv420p, 640x480\n[rawvideo @ 0x1] [warning] Non-monotonous DTS\r[h264 @ 0x2] [error] bad\n[h264 @ 0x2] [error] bad\n[Parsed_showinfo_0 @ 0x3] [info] config in time_base: 1/90000, frame_rate: 25/1\n[Parsed_showinfo_0 @ 0x3] [info] n: 0 pts: 0 pts_time:0 pos: 5 s:640x480 i:P\n";
        let (tx, rx) = std::sync::mpsc::channel();
        let mut r = LogReader::spawn(std::io::Cursor::new(text.as_bytes().to_vec()), Some(tx));
        let s = r.finish();
        assert_eq!((s.error_count, s.warning_count), (2, 1));
        assert_eq!(s.errors, vec!["h264: bad".to_string()]);
        assert_eq!(s.reason().as_deref(), Some("h264: bad"));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![FrameMeta { pts: Some(0.0), size: Some((640, 480)) }]);
        assert_eq!((s.duration, s.frame_rate), (Some(None), Some(25.0)));
        assert_eq!(s.video_codec.as_deref(), Some("h264"));
        let mut r = LogReader::spawn(std::io::Cursor::new(b"[info]   Duration: 00:01:04.50, start: 0.0\n".to_vec()), None);
        assert_eq!(r.finish().duration, Some(Some(64.5)));
    }

    #[test]
    fn long_and_odd_lines_are_survived() {
        let mut bytes = vec![b'x'; 200_000];
        bytes.extend_from_slice(b"\n\xff\xfe[error] \xc3\n");
        let mut r = LogReader::spawn(std::io::Cursor::new(bytes), None);
        let s = r.finish();
        assert_eq!(s.error_count, 0, "{s:?}");
        assert!(s.tail.iter().all(|l| l.len() <= 64 << 10));
        let mut rng = crate::rng::SplitMix64(7);
        for _ in 0..300 {
            let n = rng.below(300);
            let alphabet = b"[] @0xerrorwaning\n\r x:_-pts_time:NOPTS1.5";
            let bytes: Vec<u8> = (0..n).map(|_| alphabet[rng.below(alphabet.len())]).collect();
            let _ = LogReader::spawn(std::io::Cursor::new(bytes), None).finish();
        }
    }
}
