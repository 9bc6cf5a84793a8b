//! Where the program's data (the `models/` folder, and `assets/` beside it) is found at run
//! time, so that a copied or installed binary works without the source tree it was built from.
//! The entry point gathers the places (from the environment and the executable's path) and
//! passes them here; nothing is read from the environment in this module.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The places to look, in order of precedence (`None`: not known on this system).
#[derive(Debug, Clone, Default)]
pub struct Places {
    /// `EDGESIGHT_MODELS`: taken as it is (it need not hold the catalogue).
    pub explicit: Option<PathBuf>,
    /// The running executable's path.
    pub exe: Option<PathBuf>,
    /// `$XDG_DATA_HOME`, else `~/.local/share`.
    pub data_home: Option<PathBuf>,
    /// The current directory.
    pub cwd: Option<PathBuf>,
    /// The source tree the binary was built from (last resort; off when the caller says so).
    pub source_tree: Option<PathBuf>,
}

impl Places {
    /// The candidate `models/` folders, in order.
    pub fn candidates(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(dir) = self.exe.as_deref().and_then(Path::parent) {
            v.push(dir.join("models"));
            v.push(dir.join("../share/edgesight/models"));
        }
        if let Some(d) = &self.data_home {
            v.push(d.join("edgesight/models"));
        }
        if let Some(d) = &self.cwd {
            v.push(d.join("models"));
        }
        if let Some(d) = &self.source_tree {
            v.push(d.join("models"));
        }
        v
    }

    /// The models folder: `explicit` when given, else the first candidate that holds the
    /// catalogue (`catalog.json`). The error names every place looked.
    pub fn models_dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.explicit {
            if !d.is_dir() {
                bail!("EDGESIGHT_MODELS={} is not a folder", d.display());
            }
            return Ok(d.clone());
        }
        let candidates = self.candidates();
        if let Some(d) = candidates.iter().find(|d| d.join("catalog.json").is_file()) {
            return Ok(d.clone());
        }
        let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
        bail!(
            "no models folder found (a folder `models` holding catalog.json); looked in: {}. Set EDGESIGHT_MODELS to the folder, or put `models/` next to the executable",
            if looked.is_empty() { "nowhere (no executable path, data folder or current folder known)".to_string() } else { looked.join(", ") }
        )
    }
}

/// The `assets/` folder that belongs to a models folder (they are installed side by side).
pub fn assets_dir(models_dir: &Path) -> PathBuf {
    models_dir.parent().map(|p| p.join("assets")).unwrap_or_else(|| PathBuf::from("assets"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_folder_holding_the_catalogue_wins_and_misses_name_every_place() {
        let root = std::env::temp_dir().join(format!("edgesight-data-dirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (bin, data, cwd) = (root.join("bin"), root.join("data"), root.join("cwd"));
        for d in [&bin, &data, &cwd] {
            std::fs::create_dir_all(d).unwrap();
        }
        let places = Places { exe: Some(bin.join("edgesight")), data_home: Some(data.clone()), cwd: Some(cwd.clone()), ..Places::default() };
        let e = places.models_dir().unwrap_err().to_string();
        for p in places.candidates() {
            assert!(e.contains(&p.display().to_string()), "{e}");
        }
        std::fs::create_dir_all(cwd.join("models")).unwrap();
        std::fs::write(cwd.join("models/catalog.json"), "{}").unwrap();
        assert_eq!(places.models_dir().unwrap(), cwd.join("models"));
        std::fs::create_dir_all(data.join("edgesight/models")).unwrap();
        std::fs::write(data.join("edgesight/models/catalog.json"), "{}").unwrap();
        assert_eq!(places.models_dir().unwrap(), data.join("edgesight/models"));
        assert_eq!(assets_dir(&data.join("edgesight/models")), data.join("edgesight/assets"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
