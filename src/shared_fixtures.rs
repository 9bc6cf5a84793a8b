//! The project's shared reference fixtures (`../shared/reference/fixtures` beside the clone),
//! for the unit tests that compare against the official code's outputs. Absent, a test skips
//! with a note; with `EDGESIGHT_REQUIRE_FIXTURES=1` (set by `.ci/run`) it fails instead.

use std::path::{Path, PathBuf};

/// The fixture file `name`, or None (with a note) when the folder is not there.
pub fn reference(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/fixtures").join(name);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("EDGESIGHT_REQUIRE_FIXTURES").is_ok_and(|v| v == "1") {
        panic!("{} is missing and EDGESIGHT_REQUIRE_FIXTURES=1", p.display());
    }
    eprintln!("skipped: {} is absent", p.display());
    None
}
