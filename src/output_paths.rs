//! Output paths that never destroy a user's file: no output may be an input (the same file after
//! links and `..` are resolved), no two outputs may be one file, images that share a name stem
//! get distinct annotated names, and a rerun into the same folder leaves no stale masks.

use anyhow::{bail, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

/// The file a path ends at: the longest existing ancestor resolved (links, `..`), the rest
/// appended as written.
pub fn resolve(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let absolute = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(path) };
    let mut rest = Vec::new();
    let mut base = absolute.as_path();
    loop {
        if let Ok(p) = base.canonicalize() {
            let mut out = p;
            for c in rest.iter().rev() {
                out.push(c);
            }
            return out;
        }
        match (base.file_name(), base.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                base = parent;
            }
            _ => return lexical(&absolute),
        }
    }
}

/// `..` and `.` removed without looking at the disk (nothing of the path exists).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The identity of an existing file (device and inode on Unix: hard links are one file).
fn identity(path: &Path) -> Option<(u64, u64, PathBuf)> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino(), PathBuf::new()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Some((0, 0, path.canonicalize().ok()?))
    }
}

/// A named path: what the user calls it ("input video", "--csv") and where it is.
pub struct Named<'a> {
    pub role: &'a str,
    pub path: &'a Path,
}

/// Fails, before any work, when an output would overwrite an input or another output.
pub fn check(inputs: &[Named], outputs: &[Named]) -> Result<()> {
    let mut by_identity = HashMap::new();
    for i in inputs {
        if let Some(id) = identity(i.path) {
            by_identity.entry(id).or_insert(i);
        }
    }
    let mut seen: HashMap<PathBuf, &Named> = HashMap::new();
    for o in outputs {
        if let Some(i) = identity(o.path).and_then(|id| by_identity.get(&id)) {
            bail!(
                "{} {} is the {} {}: writing it would destroy the input; choose another output path",
                o.role,
                o.path.display(),
                i.role,
                i.path.display()
            );
        }
        let r = resolve(o.path);
        if let Some(other) = seen.get(&r) {
            bail!("{} {} and {} {} are the same file; choose another path for one of them", other.role, other.path.display(), o.role, o.path.display());
        }
        seen.insert(r, o);
    }
    Ok(())
}

/// Distinct output name stems for images: the file's stem when no other input shares it (case
/// ignored, for case-insensitive file systems), else the whole file name ("x.png", "x.jpg"),
/// else that with "-2", "-3", ... in input order. Names that are not UTF-8 are made readable
/// (U+FFFD) and then kept distinct the same way.
pub fn image_stems(files: &[PathBuf]) -> Vec<String> {
    let stem = |p: &PathBuf| p.file_stem().map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.is_empty()).unwrap_or_else(|| "image".into());
    let name = |p: &PathBuf| p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let mut stem_count: HashMap<String, usize> = HashMap::new();
    for f in files {
        *stem_count.entry(stem(f).to_lowercase()).or_default() += 1;
    }
    let mut taken: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let base = if stem_count[&stem(f).to_lowercase()] == 1 { stem(f) } else { name(f) };
        let mut candidate = base.clone();
        let mut n = 2;
        while taken.contains(&candidate.to_lowercase()) {
            candidate = format!("{base}-{n}");
            n += 1;
        }
        taken.insert(candidate.to_lowercase());
        out.push(candidate);
    }
    out
}

/// Fails when `path` cannot be written (missing or read-only folder), before any work; a file
/// that was not there before is removed again.
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    let existed = path.exists();
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Whether `name` is one of the mask files a video run writes ("000042.png").
pub fn is_mask_file(name: &str) -> bool {
    name.strip_suffix(".png").is_some_and(|d| d.len() >= 6 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the mask files an earlier run left in `dir` (only those: other files stay), and the
/// folder when that leaves it empty.
pub fn remove_stale_masks(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        if e.file_name().to_str().is_some_and(is_mask_file) && e.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(e.path()).map_err(|err| anyhow::anyhow!("cannot remove the earlier run's mask {}: {err}", e.path().display()))?;
        }
    }
    let _ = std::fs::remove_dir(dir); // fails, as it should, when other files are there
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("edgesight-outpaths-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_output_that_is_an_input_is_refused() {
        let d = scratch("same");
        let input = d.join("annotated.mp4");
        std::fs::write(&input, b"x").unwrap();
        let via_dots = d.join("sub/../annotated.mp4");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        let e = check(&[Named { role: "input video", path: &input }], &[Named { role: "annotated video", path: &via_dots }]).unwrap_err();
        assert!(e.to_string().contains("destroy the input"), "{e}");
        #[cfg(unix)]
        {
            let link = d.join("link.json");
            std::os::unix::fs::symlink(&input, &link).unwrap();
            assert!(check(&[Named { role: "in", path: &input }], &[Named { role: "out", path: &link }]).is_err());
            let hard = d.join("hard.json");
            std::fs::hard_link(&input, &hard).unwrap();
            assert!(check(&[Named { role: "in", path: &input }], &[Named { role: "out", path: &hard }]).is_err());
        }
        // Distinct files pass; two outputs that are one (not yet existing) file do not.
        let other = d.join("new/out.json");
        assert!(check(&[Named { role: "in", path: &input }], &[Named { role: "out", path: &other }]).is_ok());
        let again = d.join("new/x/../out.json");
        let e = check(&[], &[Named { role: "a", path: &other }, Named { role: "b", path: &again }]).unwrap_err();
        assert!(e.to_string().contains("same file"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn image_names_never_collide() {
        let files: Vec<PathBuf> = ["a/x.png", "b/x.png", "a/x.jpg", "c/y.jpg", "d/X.PNG", "e/x.png-2.png"].iter().map(PathBuf::from).collect();
        let stems = image_stems(&files);
        assert_eq!(stems, ["x.png", "x.png-2", "x.jpg", "y", "X.PNG-3", "x.png-2-2"]);
        let lower: HashSet<String> = stems.iter().map(|s| s.to_lowercase()).collect();
        assert_eq!(lower.len(), files.len(), "{stems:?}");
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let raw = |b: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(b));
            let stems = image_stems(&[raw(b"caf\xe9.jpg"), raw(b"caf\xe8.jpg")]);
            assert_ne!(stems[0], stems[1]);
            assert!(stems[0].starts_with("caf\u{fffd}"), "{stems:?}");
        }
    }

    #[test]
    fn only_our_masks_are_removed() {
        let d = scratch("masks");
        for n in ["000000.png", "000001.png", "1234567.png", "notes.txt", "00001.png"] {
            std::fs::write(d.join(n), b"x").unwrap();
        }
        remove_stale_masks(&d).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["00001.png", "notes.txt"]);
        for n in &left {
            std::fs::remove_file(d.join(n)).unwrap();
        }
        std::fs::write(d.join("000000.png"), b"x").unwrap();
        remove_stale_masks(&d).unwrap();
        assert!(!d.exists(), "an emptied masks folder is removed");
        let _ = std::fs::remove_dir_all(&d);
    }
}
