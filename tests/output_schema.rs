//! The output files of docs/output-format.md on real runs: every frames.jsonl line of a short
//! clip, and every images.jsonl line less its image fields, validates against
//! docs/frames.schema.json; mutated lines do not; report.json has the documented fields.
//!
//! The validator is the part of JSON Schema draft 2020-12 that the schema uses (below); a
//! keyword outside it fails the test rather than being ignored. (The `jsonschema` crate would
//! change the features of serde_json, hashbrown, regex and num-rational in test builds and so
//! rebuild tract, wgpu and egui a second time for `cargo test`.)

mod common;

use common::{clip, data, repo, s, scratch, BIN};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A JSON Schema (draft 2020-12) restricted to: type, required, properties,
/// additionalProperties, propertyNames, minProperties, items, prefixItems, minItems, maxItems,
/// minimum, maximum, minLength, anyOf and local `$ref`s into `$defs`; annotations ($schema,
/// title, description) are read past.
struct Validator {
    root: Value,
}

const KEYWORDS: [&str; 20] = [
    "$schema", "title", "description", "$defs", "$ref", "type", "required", "properties", "additionalProperties",
    "propertyNames", "minProperties", "items", "prefixItems", "minItems", "maxItems", "minimum", "maximum",
    "minLength", "anyOf", "$comment",
];

impl Validator {
    fn new(root: Value) -> Validator {
        assert_eq!(root["$schema"], "https://json-schema.org/draft/2020-12/schema");
        Validator { root }
    }

    fn is_valid(&self, v: &Value) -> bool {
        self.errors(v).is_empty()
    }

    fn errors(&self, v: &Value) -> Vec<String> {
        let mut e = Vec::new();
        self.check(&self.root, v, "", &mut e);
        e
    }

    fn check(&self, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
        let schema = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => return errs.push(format!("{at}: no value is allowed here")),
            Value::Object(o) => o,
            other => panic!("schema at {at}: {other} is not a schema"),
        };
        for k in schema.keys() {
            assert!(KEYWORDS.contains(&k.as_str()), "schema keyword {k} (at {at}) is not implemented by this test's validator");
        }
        if let Some(r) = schema.get("$ref") {
            let name = r.as_str().and_then(|r| r.strip_prefix("#/$defs/")).unwrap_or_else(|| panic!("$ref {r}: only #/$defs/NAME"));
            let target = self.root["$defs"].get(name).unwrap_or_else(|| panic!("$ref {r}: no such definition"));
            self.check(target, v, at, errs);
        }
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
                _ => panic!("type {t}"),
            };
            let is = |t: &str| match t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "number" => v.is_number(),
                "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
                "boolean" => v.is_boolean(),
                "null" => v.is_null(),
                _ => panic!("type {t}"),
            };
            if !types.iter().any(|t| is(t)) {
                errs.push(format!("{at}: {v} is not of type {t}"));
            }
        }
        if let Some(n) = v.as_f64() {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if n < min {
                    errs.push(format!("{at}: {n} is less than the minimum {min}"));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if n > max {
                    errs.push(format!("{at}: {n} is greater than the maximum {max}"));
                }
            }
        }
        if let (Some(s), Some(min)) = (v.as_str(), schema.get("minLength").and_then(Value::as_u64)) {
            if (s.chars().count() as u64) < min {
                errs.push(format!("{at}: {v} is shorter than {min}"));
            }
        }
        if let Value::Object(o) = v {
            for r in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                if !o.contains_key(r.as_str().unwrap()) {
                    errs.push(format!("{at}: {r} is a required property"));
                }
            }
            if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
                if (o.len() as u64) < min {
                    errs.push(format!("{at}: fewer than {min} properties"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, item) in o {
                let here = format!("{at}/{k}");
                if let Some(names) = schema.get("propertyNames") {
                    self.check(names, &Value::String(k.clone()), &format!("{here} (name)"), errs);
                }
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.check(s, item, &here, errs),
                    None => {
                        if let Some(extra) = schema.get("additionalProperties") {
                            if extra == &Value::Bool(false) {
                                errs.push(format!("{at}: additional property {k} is not allowed"));
                            } else {
                                self.check(extra, item, &here, errs);
                            }
                        }
                    }
                }
            }
        }
        if let Value::Array(a) = v {
            let prefix = schema.get("prefixItems").and_then(Value::as_array).map_or(&[][..], |p| p.as_slice());
            for (i, item) in a.iter().enumerate() {
                let here = format!("{at}/{i}");
                match prefix.get(i) {
                    Some(s) => self.check(s, item, &here, errs),
                    None => {
                        if let Some(s) = schema.get("items") {
                            self.check(s, item, &here, errs);
                        }
                    }
                }
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if (a.len() as u64) < min {
                    errs.push(format!("{at}: {} items, fewer than {min}", a.len()));
                }
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
                if (a.len() as u64) > max {
                    errs.push(format!("{at}: {} items, more than {max}", a.len()));
                }
            }
        }
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            if !any.iter().any(|s| {
                let mut e = Vec::new();
                self.check(s, v, at, &mut e);
                e.is_empty()
            }) {
                errs.push(format!("{at}: matches none of anyOf"));
            }
        }
    }
}

/// The frames.jsonl schema.
fn validator() -> Validator {
    let path = repo("docs/frames.schema.json");
    Validator::new(serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap())
}

/// Every violation of `line`, with where it is.
fn violations(v: &Validator, line: &Value) -> Vec<String> {
    v.errors(line)
}

fn lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{} line {}: {e}: {l}", p.display(), i + 1)))
        .collect()
}

/// The first `n` frames of the bundled clip as a clip of their own.
fn short_clip(dir: &Path, n: usize) -> PathBuf {
    let out = dir.join("short.mp4");
    let r = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i", s(&clip()), "-frames:v", &n.to_string(), "-an"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", s(&out)])
        .output()
        .expect("ffmpeg runs");
    assert!(r.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&r.stderr));
    out
}

/// Checks on a frame's people that a schema cannot express (the default models: MoveNet's
/// scores are probabilities, its boxes and joints lie in the frame).
fn check_people(where_: &str, line: &Value, joints: usize, w: f64, h: f64) {
    for (i, p) in line["people"].as_array().unwrap().iter().enumerate() {
        let score = p["score"].as_f64().unwrap();
        assert!(score <= 1.0, "{where_} person {i}: score {score} > 1");
        let b: Vec<f64> = p["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(0.0 <= b[0] && b[0] <= b[2] && b[2] <= w && 0.0 <= b[1] && b[1] <= b[3] && b[3] <= h, "{where_} person {i}: box {b:?}");
        let kps = p["keypoints"].as_array().unwrap();
        assert_eq!(kps.len(), joints, "{where_} person {i}: joints");
        for k in kps {
            let (x, y, ks) = (k[0].as_f64().unwrap(), k[1].as_f64().unwrap(), k[2].as_f64().unwrap());
            assert!((0.0..=w).contains(&x) && (0.0..=h).contains(&y) && ks <= 1.0, "{where_} person {i}: joint {k}");
        }
    }
}

#[test]
fn video_outputs_follow_the_documented_format() {
    let v = validator();
    let dir = scratch("output_schema_video");
    let input = short_clip(&dir, 8);
    let out = dir.join("out");
    let r = Command::new(BIN).args(["video", s(&input), "--out", s(&out), "--quiet"]).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let keys: BTreeSet<&str> = report.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let documented: BTreeSet<&str> = [
        "edgesight_version", "ended", "input", "frames", "frames_read", "dropped_frames", "keep_up", "concurrent_models", "input_ended_early", "wall_time_s", "fps",
        "overhead_vs_inference_percent", "stages", "models", "backend", "keypoint_names", "tracks", "outputs",
    ]
    .into();
    assert_eq!(keys, documented, "report.json fields (input_message, input_warnings, interrupted_by, error, reconnections, input_lost and frame_limit appear only when they apply)");
    assert_eq!(report["ended"], "complete");
    let stages: BTreeSet<&str> = report["stages"].as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(stages, ["decode", "decode_output", "encode", "inference", "latency", "preprocess", "render", "track"].into());
    assert_eq!((report["input"]["source"].as_str(), report["keep_up"].as_bool(), report["dropped_frames"].as_u64()), (Some("file"), Some(false), Some(0)));
    assert_eq!(report["frames_read"], report["frames"]);
    let tracks: BTreeSet<&str> = report["tracks"].as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(tracks, ["count", "frames_with_reacquired_tracks", "max_length_frames", "mean_length_frames"].into());
    let joints = report["keypoint_names"].as_array().unwrap().len();
    assert_eq!(joints, 17);
    let (w, h) = (report["input"]["width"].as_f64().unwrap(), report["input"]["height"].as_f64().unwrap());

    let frames = lines(&out.join("frames.jsonl"));
    assert_eq!(frames.len(), 8, "one line per frame");
    assert_eq!(report["frames"], 8);
    for (i, line) in frames.iter().enumerate() {
        let bad = violations(&v, line);
        assert!(bad.is_empty(), "frames.jsonl line {}: {bad:#?}\n{line}", i + 1);
        assert_eq!(line["index"], i, "frames.jsonl line {}: index", i + 1);
        assert!(line.get("mask").is_some(), "the default segmentation model gives a mask");
        check_people(&format!("frame {i}"), line, joints, w, h);
    }
    assert!(frames.iter().any(|l| !l["people"].as_array().unwrap().is_empty()), "nobody found in the clip");

    // Wrong lines must fail: each mutation of a real line with people and a mask.
    let good = frames.iter().find(|l| !l["people"].as_array().unwrap().is_empty()).unwrap().clone();
    assert!(good["people"][0]["track_id"].as_u64().is_some_and(|id| id >= 1), "tracked by default: {good}");
    let mutations: [(&str, fn(&mut Value)); 14] = [
        ("an unknown field", |l| l["extra"] = json!(1)),
        ("no people", |l| drop(l.as_object_mut().unwrap().remove("people"))),
        ("no index", |l| drop(l.as_object_mut().unwrap().remove("index"))),
        ("a string index", |l| l["index"] = json!("0")),
        ("a negative index", |l| l["index"] = json!(-1)),
        ("a NaN timestamp (null)", |l| l["timestamp_s"] = Value::Null),
        ("a negative person score", |l| l["people"][0]["score"] = json!(-0.1)),
        ("a mask coverage above 1", |l| l["mask"]["coverage"] = json!(1.5)),
        ("a box of 5 numbers", |l| l["people"][0]["box"].as_array_mut().unwrap().push(json!(0.0))),
        ("a joint of 2 numbers", |l| drop(l["people"][0]["keypoints"][0].as_array_mut().unwrap().pop())),
        ("16 joints", |l| drop(l["people"][0]["keypoints"].as_array_mut().unwrap().pop())),
        ("a track id of 0", |l| l["people"][0]["track_id"] = json!(0)),
        ("a fractional track id", |l| l["people"][0]["track_id"] = json!(1.5)),
        ("a person field renamed", |l| {
            let p = l["people"][0].as_object_mut().unwrap();
            let b = p.remove("box").unwrap();
            p.insert("bbox".into(), b);
        }),
    ];
    for (what, mutate) in mutations {
        let mut line = good.clone();
        mutate(&mut line);
        assert!(!v.is_valid(&line), "a line with {what} passes the schema: {line}");
    }
    let mut classes = good.clone();
    classes["classes"] = json!({"road": 0.25, "person": 0.75});
    assert!(violations(&v, &classes).is_empty(), "class fractions are allowed");
    classes["classes"]["road"] = json!(-0.25);
    assert!(!v.is_valid(&classes), "a negative class fraction passes the schema");
}

#[test]
fn image_outputs_follow_the_documented_format() {
    let v = validator();
    let out = scratch("output_schema_images");
    let files = [data("coco/000000000785.jpg"), data("coco/000000196141.jpg")];
    let r = Command::new(BIN).args(["image", s(&files[0]), s(&files[1]), "--out", s(&out)]).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let records = lines(&out.join("images.jsonl"));
    assert_eq!(records.len(), files.len(), "one line per image");
    for (i, line) in records.iter().enumerate() {
        let mut rest = line.clone();
        let o = rest.as_object_mut().unwrap();
        // The image's own fields, then the frame record (index i, timestamp 0).
        assert_eq!(o.remove("file").unwrap(), json!(s(&files[i])));
        let id = files[i].file_stem().unwrap().to_str().unwrap().parse::<u64>().unwrap();
        assert_eq!(o.remove("image_id").unwrap(), json!(id), "numeric COCO names give the image id");
        let (w, h) = (o.remove("width").unwrap().as_f64().unwrap(), o.remove("height").unwrap().as_f64().unwrap());
        assert!(w > 0.0 && h > 0.0);
        let annotated = o.remove("annotated").unwrap();
        assert!(Path::new(annotated.as_str().unwrap()).is_file(), "{annotated}");
        let bad = violations(&v, &rest);
        assert!(bad.is_empty(), "images.jsonl line {}: {bad:#?}\n{line}", i + 1);
        assert_eq!(rest["index"], i);
        assert_eq!(rest["timestamp_s"], 0.0);
        check_people(&format!("image {i}"), &rest, 17, w, h);
    }
}
