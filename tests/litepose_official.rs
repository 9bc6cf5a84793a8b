//! `decode::litepose::group` against the official LitePose grouping code.
//!
//! `synth` makes 48 deterministic heatmap / tag-map sets (only +, -, *, / so every platform
//! computes the same bits): crowded scenes, tags that tie after rounding, exact plateaus,
//! more than MAX_NUM_PEOPLE people, IGNORE_TOO_MUCH on and off, 14 and 17 joints, with and
//! without the flip test's second tag. tests/data/litepose/official_group.json holds what the
//! unmodified lib/core/group.py of mit-han-lab/litepose (00b702d; `HeatmapParser.parse` with
//! adjust and refine: match_by_tag with munkres 1.1.4, adjust, scores, refine) returned for
//! them: per case the number of people, every score, and a hash of every joint (x, y, score)
//! bit pattern. Its top_k (NMS + torch.topk) ran as a numpy equivalent (equal values in pixel
//! order), see tests/data/litepose/official_group.py, which also regenerates the file:
//!
//!   LITEPOSE_CASES=/tmp/cases cargo test --release --test litepose_official -- --ignored
//!   python3 tests/data/litepose/official_group.py /tmp/cases <litepose checkout> tests/data/litepose/official_group.json

mod common;

use edgesight::decode::litepose::{group, GroupedPerson, GroupingParams};
use std::path::Path;

struct Case {
    joints: usize,
    h: usize,
    w: usize,
    /// Tag values per joint and pixel (1, or 2 with the flip test).
    d: usize,
    ignore_too_much: bool,
    /// [J, H, W]
    heatmaps: Vec<f32>,
    /// [D, J, H, W]
    tags: Vec<f32>,
}

use edgesight::rng::SplitMix64 as Rng;

const CASES: usize = 48;

fn synth(case: usize) -> Case {
    let mut rng = Rng(0x11e7_0000 + case as u64);
    let joints = if case % 3 == 0 { 14 } else { 17 };
    let (h, w) = (24 + rng.below(25), 24 + rng.below(25));
    let d = 1 + case % 2;
    // 0: tags anywhere in [-4, 4); 1: tags on a 0.25 grid with 0.25-step noise and 3 score
    // levels (rounding ties, equal costs, plateaus); 2: well separated tags.
    let mode = case % 3;
    let people = if case % 8 == 7 { 36 } else { 1 + rng.below(9) };
    let plane = h * w;
    let mut heatmaps: Vec<f32> = (0..joints * plane).map(|_| rng.unit_f32() * 0.02).collect();
    let mut tags: Vec<f32> = (0..d * joints * plane).map(|_| (rng.unit_f32() - 0.5) * 0.6).collect();
    for p in 0..people {
        let cx = 4.0 + rng.unit_f32() * (w as f32 - 8.0);
        let cy = 4.0 + rng.unit_f32() * (h as f32 - 8.0);
        let base = match mode {
            0 => rng.unit_f32() * 8.0 - 4.0,
            1 => (rng.below(13) as f32 - 6.0) * 0.25,
            _ => p as f32 * 1.6,
        };
        for j in 0..joints {
            if rng.unit_f32() < 0.25 {
                continue; // not visible
            }
            let x = cx + (rng.unit_f32() - 0.5) * 12.0;
            let y = cy + (rng.unit_f32() - 0.5) * 12.0;
            let amp = if mode == 1 { [0.25, 0.5, 1.0][rng.below(3)] } else { 0.05 + rng.unit_f32() * 0.95 };
            let s = 1.0 + rng.unit_f32() * 1.5;
            let noise: Vec<f32> = (0..d)
                .map(|_| if mode == 1 { [0.0, 0.25, 0.5][rng.below(3)] } else { (rng.unit_f32() - 0.5) * 0.3 })
                .collect();
            for yy in 0..h {
                for xx in 0..w {
                    let d2 = (xx as f32 - x) * (xx as f32 - x) + (yy as f32 - y) * (yy as f32 - y);
                    let q = 1.0 + d2 / (s * s);
                    let v = amp / (q * q);
                    let at = j * plane + yy * w + xx;
                    if v > heatmaps[at] {
                        heatmaps[at] = v;
                    }
                    if d2 < 16.0 {
                        for (k, n) in noise.iter().enumerate() {
                            tags[(k * joints + j) * plane + yy * w + xx] = base + n + 0.1 * k as f32;
                        }
                    }
                }
            }
        }
    }
    if mode == 1 && case % 2 == 0 {
        // Exact plateaus: each joint's maximum copied (value and tags) to its right neighbour.
        for j in 0..joints {
            let m = &heatmaps[j * plane..(j + 1) * plane];
            let best = (0..plane).fold(0, |b, i| if m[i] > m[b] { i } else { b });
            if best % w + 1 < w {
                heatmaps[j * plane + best + 1] = heatmaps[j * plane + best];
                for k in 0..d {
                    let base = (k * joints + j) * plane;
                    tags[base + best + 1] = tags[base + best];
                }
            }
        }
    }
    Case { joints, h, w, d, ignore_too_much: case % 5 == 4, heatmaps, tags }
}

fn params(c: &Case) -> GroupingParams {
    let p = if c.joints == 17 { GroupingParams::coco() } else { GroupingParams::crowdpose() };
    GroupingParams { ignore_too_much: c.ignore_too_much, ..p }
}

/// FNV-1a (64 bit) over the little-endian bit patterns of every (x, y, score), person by person.
fn joints_hash(people: &[GroupedPerson]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for p in people {
        for &(x, y, v) in &p.joints {
            for f in [x, y, v] {
                for b in f.to_bits().to_le_bytes() {
                    hash ^= b as u64;
                    hash = hash.wrapping_mul(0x100_0000_01b3);
                }
            }
        }
    }
    hash
}

#[test]
fn group_reproduces_the_official_code_bit_for_bit() {
    let path = common::data("litepose/official_group.json");
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let expected = expected["cases"].as_array().unwrap();
    assert_eq!(expected.len(), CASES);
    let (mut people_total, mut max_people, mut failures) = (0, 0, Vec::new());
    for (i, e) in expected.iter().enumerate() {
        let c = synth(i);
        assert_eq!(
            (c.joints, c.h, c.w, c.d),
            (
                e["joints"].as_u64().unwrap() as usize,
                e["h"].as_u64().unwrap() as usize,
                e["w"].as_u64().unwrap() as usize,
                e["d"].as_u64().unwrap() as usize
            ),
            "case {i}: synthetic input differs from the one the expectations were made for"
        );
        let people = group(&c.heatmaps, &c.tags, c.h, c.w, &params(&c));
        let scores: Vec<u32> = people.iter().map(|p| p.score.to_bits()).collect();
        let want_scores: Vec<u32> =
            e["scores"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap() as u32).collect();
        let hash = format!("{:016x}", joints_hash(&people));
        people_total += people.len();
        max_people = max_people.max(people.len());
        if scores != want_scores || hash != e["joints_fnv1a"].as_str().unwrap() {
            failures.push(format!(
                "case {i}: {} people (official {}), scores equal: {}, joints equal: {}",
                people.len(),
                want_scores.len(),
                scores == want_scores,
                hash == e["joints_fnv1a"].as_str().unwrap()
            ));
        }
    }
    println!("{CASES} cases, {people_total} people (up to {max_people} in one case): {} differ", failures.len());
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Writes the synthetic inputs for tests/data/litepose/official_group.py.
#[test]
#[ignore]
fn write_cases_for_the_official_code() {
    let Ok(dir) = std::env::var("LITEPOSE_CASES") else {
        panic!("set LITEPOSE_CASES to the folder to write the cases to");
    };
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut index = Vec::new();
    for i in 0..CASES {
        let c = synth(i);
        let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
        std::fs::write(dir.join(format!("case{i}.heatmaps.f32")), bytes(&c.heatmaps)).unwrap();
        std::fs::write(dir.join(format!("case{i}.tags.f32")), bytes(&c.tags)).unwrap();
        index.push(serde_json::json!({
            "joints": c.joints, "h": c.h, "w": c.w, "d": c.d, "ignore_too_much": c.ignore_too_much,
        }));
    }
    std::fs::write(dir.join("index.json"), serde_json::to_string_pretty(&index).unwrap()).unwrap();
}
