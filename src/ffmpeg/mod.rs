//! Running the ffmpeg programs as child processes: how they are started, how a local path is
//! passed so that it can never be read as an option or a protocol, and what their stderr says
//! (`log`). Frames with their timestamps go to the encoder as a Matroska stream (`matroska`).

pub mod log;
pub mod matroska;

use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Stdio};

/// A command for one of the ffmpeg programs, with no terminal input, in a process group of its
/// own: a Ctrl-C at the terminal reaches edgesight only, which then closes its children in order
/// (the decoder stopped, the encoder given its last frame and finished), so outputs stay whole.
pub fn tool(name: &str) -> Command {
    let mut c = Command::new(name);
    c.stdin(Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        c.process_group(0);
    }
    c
}

/// "not installed" as a clear message.
pub fn spawn_error(name: &str, e: std::io::Error) -> anyhow::Error {
    if e.kind() == ErrorKind::NotFound {
        anyhow::anyhow!("{name} was not found on PATH; install ffmpeg (Debian: apt-get install ffmpeg)")
    } else {
        anyhow::anyhow!("cannot start {name}: {e}")
    }
}

/// A local file as an ffmpeg input or output argument: through the `file:` protocol, so a name
/// starting with `-` is not an option and one containing `:` is not another protocol. The bytes
/// of the path are kept as they are (names that are not UTF-8 work).
pub fn file_arg(path: &Path) -> OsString {
    let mut s = OsString::from("file:");
    s.push(path.as_os_str());
    s
}

/// Whether `text` names a stream rather than a file: a URL (`rtsp://...`) or `-` (stdin).
pub fn looks_like_stream(text: &OsStr) -> bool {
    let s = text.to_string_lossy();
    if s == "-" {
        return true;
    }
    match s.split_once("://") {
        Some((scheme, _)) => !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)),
        None => false,
    }
}

/// ffmpeg prefixes messages with "[component @ 0x...] "; this is the message without it.
pub fn strip_component(line: &str) -> &str {
    match (line.starts_with('['), line.find("] ")) {
        (true, Some(end)) if line[..end].contains(" @ ") => &line[end + 2..],
        _ => line,
    }
}

/// The first non-empty line of a tool's stderr, without the component prefix.
pub fn first_line(s: &str) -> String {
    let line = s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no message");
    strip_component(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_read_as_options_or_protocols() {
        assert_eq!(file_arg(Path::new("-x.mp4")), OsString::from("file:-x.mp4"));
        assert_eq!(file_arg(Path::new("a:b.mp4")), OsString::from("file:a:b.mp4"));
        #[cfg(unix)]
        {
            use std::os::unix::ffi::{OsStrExt, OsStringExt};
            let raw = OsStr::from_bytes(b"caf\xe9.mp4");
            assert_eq!(file_arg(Path::new(raw)).into_vec(), b"file:caf\xe9.mp4".to_vec());
        }
    }

    #[test]
    fn streams_are_told_from_files() {
        for s in ["-", "rtsp://cam/1", "http://127.0.0.1:8080/x.mp4", "udp://@:1234", "srt+x://h"] {
            assert!(looks_like_stream(OsStr::new(s)), "{s}");
        }
        for s in ["clip.mp4", "-clip.mp4", "a:b.mp4", "dir/://x", "://x", "C:\\x.mp4"] {
            assert!(!looks_like_stream(OsStr::new(s)), "{s}");
        }
    }

    #[test]
    fn ffmpeg_component_prefix_is_stripped() {
        assert_eq!(first_line("\n[h264 @ 0x5622] Invalid NAL unit size\nmore"), "Invalid NAL unit size");
        assert_eq!(first_line("moov atom not found"), "moov atom not found");
        assert_eq!(first_line(""), "no message");
    }
}
