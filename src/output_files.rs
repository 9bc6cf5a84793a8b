//! Output files that stay consistent whatever ends the run: a full disk, Ctrl-C, a kill.
//!
//! - `LineFile` (frames.jsonl, images.jsonl, the CSV): lines are written out per frame, so a
//!   killed run keeps everything before it; a write that fails half way (disk full) is cut back
//!   to the last whole line, so readers never see a partial line.
//! - `ReservedFile` (report.json): written at the start with room to spare (`"ended": "running"`,
//!   padded with spaces, which JSON allows), then rewritten in that room at the end, so the
//!   report can still say why the run ended when the disk is full by then.

use anyhow::{anyhow, Result};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct LineFile {
    file: File,
    path: PathBuf,
    /// Bytes on disk that end in a whole line.
    committed: u64,
    pending: Vec<u8>,
}

impl LineFile {
    pub fn create(path: &Path) -> Result<LineFile> {
        let file = File::create(path).map_err(|e| anyhow!("cannot create {}: {e}", path.display()))?;
        Ok(LineFile { file, path: path.to_path_buf(), committed: 0, pending: Vec::new() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one line (without its newline) for the next `commit`.
    pub fn line(&mut self, text: &[u8]) {
        self.pending.extend_from_slice(text);
        self.pending.push(b'\n');
    }

    /// The queued line of `value` as JSON.
    pub fn json_line(&mut self, value: &impl serde::Serialize) -> Result<()> {
        serde_json::to_writer(&mut self.pending, value)?;
        self.pending.push(b'\n');
        Ok(())
    }

    /// Writes the queued lines. On failure the file is cut back to its last whole line (which
    /// frees space rather than needing it) and the error names the file.
    pub fn commit(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match self.file.write_all(&self.pending) {
            Ok(()) => {
                self.committed += self.pending.len() as u64;
                self.pending.clear();
                Ok(())
            }
            Err(e) => {
                self.pending.clear();
                let _ = self.file.set_len(self.committed);
                let _ = self.file.seek(SeekFrom::Start(self.committed));
                Err(anyhow!("cannot write {}: {e}", self.path.display()))
            }
        }
    }
}

/// Room kept for the final report.json (reports are a few KB).
pub const REPORT_ROOM: usize = 64 << 10;

pub struct ReservedFile {
    path: PathBuf,
    room: usize,
}

impl ReservedFile {
    /// Creates `path` holding `first` (JSON) padded with spaces to `room` bytes.
    pub fn reserve(path: &Path, first: &[u8], room: usize) -> Result<ReservedFile> {
        let mut bytes = first.to_vec();
        bytes.resize(room.max(first.len()), b' ');
        // A final newline keeps the padded file a text file.
        if let Some(last) = bytes.last_mut() {
            *last = b'\n';
        }
        std::fs::write(path, &bytes).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
        Ok(ReservedFile { path: path.to_path_buf(), room: bytes.len() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the content with `last`, in place: what fits in the reserved room needs no
    /// new space on the disk.
    pub fn rewrite(&self, last: &[u8]) -> Result<()> {
        let fail = |e: std::io::Error| anyhow!("cannot write {}: {e}", self.path.display());
        let mut f = OpenOptions::new().write(true).open(&self.path).map_err(fail)?;
        if last.len() <= self.room {
            // Spaces first over the old text's tail, then the cut: valid JSON at every step.
            f.write_all(last).map_err(fail)?;
            f.set_len(last.len() as u64).map_err(fail)?;
        } else {
            f.set_len(0).map_err(fail)?;
            f.write_all(last).map_err(fail)?;
        }
        f.sync_data().map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("edgesight-outfiles-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn lines_reach_the_disk_per_commit() {
        let d = dir("lines");
        let p = d.join("a.jsonl");
        let mut f = LineFile::create(&p).unwrap();
        f.json_line(&serde_json::json!({"i": 1})).unwrap();
        f.line(b"plain");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"i\":1}\nplain\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// /dev/full fails every write with ENOSPC: the error names the file, nothing partial stays.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_leaves_whole_lines() {
        let d = dir("full");
        let p = d.join("frames.jsonl");
        std::os::unix::fs::symlink("/dev/full", &p).unwrap();
        let mut f = LineFile::create(&p).unwrap();
        f.line(b"x");
        let e = f.commit().unwrap_err().to_string();
        assert!(e.contains("frames.jsonl") && e.contains("No space left"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_report_is_rewritten_in_its_room() {
        let d = dir("report");
        let p = d.join("report.json");
        let r = ReservedFile::reserve(&p, br#"{"ended":"running"}"#, 1000).unwrap();
        let first = std::fs::read(&p).unwrap();
        assert_eq!(first.len(), 1000);
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&first).unwrap()["ended"], "running");
        r.rewrite(br#"{"ended":"complete","frames":3}"#).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!((v["ended"].as_str(), v["frames"].as_u64()), (Some("complete"), Some(3)));
        let long = format!("{{\"x\":\"{}\"}}", "y".repeat(2000));
        r.rewrite(long.as_bytes()).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), long);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
