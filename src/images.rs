//! Still images: annotated PNGs, images.jsonl, and optionally COCO keypoint results.

use crate::analyzer::{AnalysisTimes, Analyzer};
use crate::frame::Frame;
use crate::interrupt::{signal_name, Stop};
use crate::output_files::LineFile;
use crate::output_paths::{self, Named};
use crate::pipeline::{prepare_out_dir, Interrupted};
use crate::records::{CocoResult, FrameRecord};
use crate::render::{self, Overlay, Style};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub struct ImageJob {
    pub files: Vec<PathBuf>,
    pub out_dir: PathBuf,
    pub coco_results: Option<PathBuf>,
    pub coco_annotations: Option<PathBuf>,
    pub style: Style,
    /// Polled between images: a signal ends the run with whole outputs for the images done.
    pub stop: Stop,
}

#[derive(Serialize)]
struct ImageRecord<'a> {
    #[serde(serialize_with = "crate::video_source::serialize_path")]
    file: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_id: Option<u64>,
    width: usize,
    height: usize,
    #[serde(serialize_with = "crate::video_source::serialize_path")]
    annotated: &'a Path,
    #[serde(flatten)]
    result: &'a FrameRecord,
}

/// file name -> image id, from a COCO annotations file.
pub fn coco_image_ids(path: &Path) -> Result<HashMap<String, u64>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read annotations {}: {e}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("annotations {} are not valid JSON", path.display()))?;
    let images = json["images"]
        .as_array()
        .with_context(|| format!("annotations {} have no 'images' list", path.display()))?;
    let mut ids = HashMap::new();
    for im in images {
        match (im["file_name"].as_str(), im["id"].as_u64()) {
            (Some(name), Some(id)) => {
                ids.insert(name.to_string(), id);
            }
            _ => bail!("annotations {}: an image entry lacks file_name or a numeric id", path.display()),
        }
    }
    Ok(ids)
}

/// A COCO-style numeric file name ("000000000785.jpg") gives the image id.
pub fn numeric_id(path: &Path) -> Option<u64> {
    let stem = path.file_stem()?.to_str()?;
    (!stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok()).flatten()
}

pub fn run(job: &ImageJob, analyzer: &mut Analyzer) -> Result<usize> {
    if job.files.is_empty() {
        bail!("no image files given");
    }
    let ids = job.coco_annotations.as_deref().map(coco_image_ids).transpose()?;
    // Resolve every id before any work, so a naming problem is reported at once.
    let mut image_ids = Vec::new();
    for f in &job.files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let id = match &ids {
            Some(map) => Some(*map.get(name).with_context(|| {
                format!("image {} is not listed in the annotations file", f.display())
            })?),
            None => numeric_id(f),
        };
        if job.coco_results.is_some() && id.is_none() {
            bail!(
                "cannot tell the COCO image id of {}: its name is not numeric; pass --coco-annotations",
                f.display()
            );
        }
        image_ids.push(id);
    }
    let jsonl_path = job.out_dir.join("images.jsonl");
    let annotated: Vec<PathBuf> =
        output_paths::image_stems(&job.files).into_iter().map(|stem| job.out_dir.join(format!("{stem}.annotated.png"))).collect();
    let mut inputs: Vec<Named> = job.files.iter().map(|f| Named { role: "input image", path: f }).collect();
    if let Some(a) = &job.coco_annotations {
        inputs.push(Named { role: "--coco-annotations", path: a });
    }
    let mut outputs = vec![Named { role: "images.jsonl", path: &jsonl_path }];
    if let Some(r) = &job.coco_results {
        outputs.push(Named { role: "--coco-results", path: r });
    }
    outputs.extend(annotated.iter().map(|p| Named { role: "annotated image", path: p }));
    output_paths::check(&inputs, &outputs)?;
    prepare_out_dir(&job.out_dir)?;
    // The results file is checked now, not after every image was processed.
    if let Some(path) = &job.coco_results {
        output_paths::check_writable(path).map_err(|e| anyhow!("cannot write COCO results {}: {e}", path.display()))?;
    }
    let mut jsonl = LineFile::create(&jsonl_path)?;
    let mut coco = Vec::new();
    let schema = analyzer.schema();
    let mut result = Ok(());
    let mut done = 0;
    for (i, ((path, id), out)) in job.files.iter().zip(&image_ids).zip(&annotated).enumerate() {
        if let Some(sig) = job.stop.requested() {
            result = Err(anyhow::Error::new(Interrupted {
                signal: sig,
                message: format!("interrupted by {} after {done} of {} images; outputs for those kept in {}", signal_name(sig), job.files.len(), job.out_dir.display()),
            }));
            break;
        }
        let step = (|| -> Result<()> {
            let mut frame = Frame::load_image(path)?;
            frame.index = i as u64;
            // Images are unrelated: nothing carries over from the last one.
            analyzer.new_sequence();
            let analysis = analyzer.analyze(&frame, &mut AnalysisTimes::default())?;
            let record = FrameRecord::new(i as u64, 0.0, &analysis);
            render::draw(&mut frame, &Overlay::of(&analysis, schema), &job.style);
            frame.save_png(out)?;
            let line = ImageRecord { file: path, image_id: *id, width: frame.width, height: frame.height, annotated: out, result: &record };
            jsonl.json_line(&line)?;
            jsonl.commit()?;
            if let Some(id) = id {
                coco.extend(analysis.people.iter().map(|p| CocoResult::new(*id, p)));
            }
            Ok(())
        })();
        if let Err(e) = step {
            result = Err(e);
            break;
        }
        done += 1;
    }
    if let Some(path) = &job.coco_results {
        // Written whole or not at all: a new file, then renamed over the old one.
        let text = serde_json::to_string(&coco)?;
        write_whole(path, text.as_bytes()).map_err(|e| anyhow!("cannot write COCO results {}: {e}", path.display()))?;
    }
    result.map(|_| job.files.len())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: a reader sees
/// the old file or the new one, never a partial one.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.edgesight-partial"));
    let r = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Annotation files are user input: mutated and random bytes give Ok or Err, never a panic.
    #[test]
    fn annotation_parser_survives_mutations() {
        let dir = std::env::temp_dir().join(format!("edgesight-ann-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ann.json");
        let valid = br#"{"images":[{"id":785,"file_name":"a.jpg","width":640},{"id":2,"file_name":"b.jpg"}],"annotations":[]}"#;
        std::fs::write(&path, valid).unwrap();
        assert_eq!(coco_image_ids(&path).unwrap().get("a.jpg"), Some(&785));
        let mut rng = crate::rng::SplitMix64(0x9e37);
        let mut rnd = move |n: usize| rng.below(n);
        for _ in 0..2000 {
            let mut bytes = valid.to_vec();
            for _ in 0..1 + rnd(4) {
                match rnd(3) {
                    0 if !bytes.is_empty() => {
                        let i = rnd(bytes.len());
                        bytes[i] = rnd(256) as u8;
                    }
                    0 => {}
                    1 => bytes.truncate(rnd(bytes.len() + 1)),
                    _ => {
                        let i = rnd(bytes.len() + 1);
                        bytes.insert(i, b"{}[],:\"0123456789-e"[rnd(19)]);
                    }
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            let _ = coco_image_ids(&path);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn numeric_names_give_ids() {
        assert_eq!(numeric_id(Path::new("a/000000000785.jpg")), Some(785));
        assert_eq!(numeric_id(Path::new("img_785.jpg")), None);
        assert_eq!(numeric_id(Path::new(".jpg")), None);
    }
}
