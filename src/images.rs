//! Still images: annotated PNGs, images.jsonl, and optionally COCO keypoint results.

use crate::analyzer::{AnalysisTimes, Analyzer};
use crate::frame::Frame;
use crate::pipeline::prepare_out_dir;
use crate::records::{CocoResult, FrameRecord};
use crate::render::{self, Overlay, Style};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct ImageJob {
    pub files: Vec<PathBuf>,
    pub out_dir: PathBuf,
    pub coco_results: Option<PathBuf>,
    pub coco_annotations: Option<PathBuf>,
    pub style: Style,
}

#[derive(Serialize)]
struct ImageRecord<'a> {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_id: Option<u64>,
    width: usize,
    height: usize,
    annotated: String,
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
    prepare_out_dir(&job.out_dir)?;
    let jsonl_path = job.out_dir.join("images.jsonl");
    let mut jsonl =
        BufWriter::new(File::create(&jsonl_path).map_err(|e| anyhow!("cannot create {}: {e}", jsonl_path.display()))?);
    let mut coco = Vec::new();
    let schema = analyzer.schema();
    let mut result = Ok(());
    for (i, (path, id)) in job.files.iter().zip(&image_ids).enumerate() {
        let step = (|| -> Result<()> {
            let mut frame = Frame::load_image(path)?;
            frame.index = i as u64;
            let analysis = analyzer.analyze(&frame, &mut AnalysisTimes::default())?;
            let record = FrameRecord::new(i as u64, 0.0, &analysis);
            if let Some(id) = id {
                coco.extend(analysis.people.iter().map(|p| CocoResult::new(*id, p)));
            }
            render::draw(&mut frame, &Overlay::of(&analysis, schema), &job.style);
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
            let out = job.out_dir.join(format!("{stem}.annotated.png"));
            frame.save_png(&out)?;
            let line = ImageRecord {
                file: path.display().to_string(),
                image_id: *id,
                width: frame.width,
                height: frame.height,
                annotated: out.display().to_string(),
                result: &record,
            };
            serde_json::to_writer(&mut jsonl, &line)?;
            jsonl.write_all(b"\n")?;
            Ok(())
        })();
        if let Err(e) = step {
            result = Err(e);
            break;
        }
    }
    jsonl.flush().with_context(|| format!("cannot write {}", jsonl_path.display()))?;
    if let Some(path) = &job.coco_results {
        let text = serde_json::to_string(&coco)?;
        std::fs::write(path, text).map_err(|e| anyhow!("cannot write COCO results {}: {e}", path.display()))?;
    }
    result.map(|_| job.files.len())
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
