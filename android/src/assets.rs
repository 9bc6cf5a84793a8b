//! The bundled models travel as APK assets (build.sh stages models/*.onnx and catalog.json);
//! tract reads files, so they are copied once into the app's private storage, and
//! `EDGESIGHT_MODELS` points the library's `models_dir()` there.

use android_activity::AndroidApp;
use anyhow::{anyhow, bail, Context, Result};
use std::ffi::CString;
use std::io::Read;
use std::path::PathBuf;

/// Copies every asset into `<internal data>/models` (skipping files already copied with the
/// same size) and returns that folder.
pub fn install_models(app: &AndroidApp) -> Result<PathBuf> {
    let dir = app.internal_data_path().ok_or_else(|| anyhow!("the app has no internal storage path"))?.join("models");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let assets = app.asset_manager();
    let mut root = assets.open_dir(c"").ok_or_else(|| anyhow!("cannot list the APK's assets"))?;
    let names: Vec<CString> = root.by_ref().collect();
    let mut copied = 0;
    for name in &names {
        let file = name.to_string_lossy().to_string();
        if !(file.ends_with(".onnx") || file == "catalog.json") {
            continue;
        }
        let mut asset = assets.open(name).ok_or_else(|| anyhow!("cannot open asset {file}"))?;
        let len = asset.length() as u64;
        let dest = dir.join(&file);
        if std::fs::metadata(&dest).map(|m| m.len() == len).unwrap_or(false) {
            continue;
        }
        let mut bytes = Vec::with_capacity(len as usize);
        asset.read_to_end(&mut bytes).with_context(|| format!("cannot read asset {file}"))?;
        // Write then rename: a copy cut short (app killed) is never taken for a model.
        let tmp = dir.join(format!(".{file}.part"));
        std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &dest).with_context(|| format!("cannot write {}", dest.display()))?;
        copied += 1;
    }
    if !names.iter().any(|n| n.to_bytes().ends_with(b".onnx")) {
        bail!("the APK carries no models (assets/*.onnx); it was built without them");
    }
    log::info!("models in {} ({copied} copied from the APK)", dir.display());
    Ok(dir)
}
