//! Top-down pose (a person detector, then MoveNet SinglePose on each person's crop) against
//! MultiPose on real ground truth: the COCO and CrowdPose images of tests/data (mean best OKS,
//! misses), and a crowd sequence made from them (a 3 x 2 mosaic of all six images, 15 people,
//! panned and zoomed over 25 frames, where MultiPose stops at six people). Figures are printed.

mod common;

use common::{data, edgesight, s, scratch};
use edgesight::analyzer::{AnalysisTimes, Analyzer, ModelChoice};
use edgesight::decode::PoseThresholds;
use edgesight::detections::Person;
use edgesight::frame::Frame;
use edgesight::metrics::{best_oks, load_coco, load_crowdpose_as_coco, oks, GroundTruth, GroundTruthSet};
use edgesight::topdown::TopDownParams;

/// A person counts as missed when no pose reaches this OKS (as in tests/accuracy.rs).
const MISSED_BELOW_OKS: f32 = 0.25;
/// Top-down may be this much below MultiPose's mean best OKS (the bound).
const MEAN_SLACK: f32 = 0.02;
/// CrowdPose has no segment area: this times the box area (mmpose's convention).
const CROWDPOSE_AREA_OF_BOX: f32 = 0.53;

fn analyzer(pose: &str, topdown: TopDownParams) -> Analyzer {
    let choice = ModelChoice { pose: Some(pose.into()), topdown, ..Default::default() };
    Analyzer::new(&choice, PoseThresholds::default()).unwrap()
}

fn datasets() -> Vec<(&'static str, &'static str, GroundTruthSet)> {
    vec![
        ("COCO", "coco", load_coco(&data("coco/test_coco.json")).unwrap()),
        ("CrowdPose", "crowdpose", load_crowdpose_as_coco(&data("crowdpose/test_crowdpose.json"), CROWDPOSE_AREA_OF_BOX).unwrap()),
    ]
}

/// Per annotated person with visible joints: (image id, visible joints, best OKS).
fn best_per_person(a: &mut Analyzer, folder: &str, gt: &GroundTruthSet) -> Vec<(u64, usize, f32)> {
    let mut out = Vec::new();
    for (id, file, _, _) in &gt.images {
        a.new_sequence();
        let frame = Frame::load_image(&data(&format!("{folder}/{file}"))).unwrap();
        let people = a.analyze(&frame, &mut AnalysisTimes::default()).unwrap().people;
        for person in gt.people.iter().filter(|p| p.image_id == *id && p.num_visible > 0) {
            out.push((*id, person.num_visible, best_oks(person, &people)));
        }
    }
    out
}

fn mean(v: &[(u64, usize, f32)]) -> f32 {
    v.iter().map(|x| x.2).sum::<f32>() / v.len() as f32
}

#[test]
fn topdown_is_as_accurate_as_multipose_on_ground_truth() {
    let mut multipose = analyzer("movenet-multipose", TopDownParams::default());
    let mut topdown = analyzer("topdown-thunder", TopDownParams::default());
    let mut lightning = analyzer("topdown-lightning", TopDownParams::default());
    for (name, folder, gt) in datasets() {
        let mp = best_per_person(&mut multipose, folder, &gt);
        let td = best_per_person(&mut topdown, folder, &gt);
        let tl = best_per_person(&mut lightning, folder, &gt);
        println!("{name}: {} annotated people with visible joints (image, visible joints: best OKS MultiPose / top-down Thunder / Lightning)", mp.len());
        for ((m, t), l) in mp.iter().zip(&td).zip(&tl) {
            println!("  {} {:>2}: {:.3} / {:.3} / {:.3}", m.0, m.1, m.2, t.2, l.2);
        }
        let missed = |v: &[(u64, usize, f32)]| v.iter().filter(|x| x.1 >= 10 && x.2 < MISSED_BELOW_OKS).count();
        println!(
            "{name}: mean best OKS MultiPose {:.3} ({} missed), top-down Thunder {:.3} ({} missed), Lightning {:.3} ({} missed)",
            mean(&mp),
            missed(&mp),
            mean(&td),
            missed(&td),
            mean(&tl),
            missed(&tl)
        );
        assert!(mean(&td) >= mean(&mp) - MEAN_SLACK, "{name}: top-down {:.3} < MultiPose {:.3} - {MEAN_SLACK}", mean(&td), mean(&mp));
        // Nobody with 10+ visible joints that MultiPose finds is missed by top-down.
        for (m, t) in mp.iter().zip(&td) {
            assert!(!(m.1 >= 10 && m.2 >= MISSED_BELOW_OKS && t.2 < MISSED_BELOW_OKS), "{name}: image {} person ({} joints) missed by top-down: {:.3} vs {:.3}", m.0, m.1, t.2, m.2);
        }
    }
}

/// The mosaic: 3 x 2 tiles of 640 x 480 (COCO 785, 40083, 196141; COCO 197388, CrowdPose
/// 106848, 103319), each image scaled to fit its tile at the tile's top-left corner, and the
/// ground truth moved with it.
fn mosaic() -> (Frame, Vec<GroundTruth>) {
    let (tw, th) = (640usize, 480usize);
    let layout = [("coco", 785u64), ("coco", 40083), ("coco", 196141), ("coco", 197388), ("crowdpose", 106848), ("crowdpose", 103319)];
    let sets = datasets();
    let mut rgb = vec![0u8; 3 * tw * 2 * th * 3];
    let width = 3 * tw;
    let mut people = Vec::new();
    for (i, (folder, id)) in layout.iter().enumerate() {
        let (_, _, gt) = sets.iter().find(|(_, f, _)| f == folder).unwrap();
        let file = &gt.images.iter().find(|im| im.0 == *id).unwrap().1;
        let img = image::open(data(&format!("{folder}/{file}"))).unwrap().into_rgb8();
        let (w0, h0) = (img.width() as f32, img.height() as f32);
        let scale = (tw as f32 / w0).min(th as f32 / h0);
        let (w, h) = ((w0 * scale).round() as u32, (h0 * scale).round() as u32);
        let tile = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
        let (tx, ty) = ((i % 3) * tw, (i / 3) * th);
        for y in 0..h as usize {
            for x in 0..w as usize {
                let p = tile.get_pixel(x as u32, y as u32).0;
                let o = ((ty + y) * width + tx + x) * 3;
                rgb[o..o + 3].copy_from_slice(&p);
            }
        }
        let (sx, sy) = (w as f32 / w0, h as f32 / h0);
        for p in gt.people.iter().filter(|p| p.image_id == *id) {
            let mut q = p.clone();
            for k in &mut q.keypoints {
                k[0] = tx as f32 + k[0] * sx;
                k[1] = ty as f32 + k[1] * sy;
            }
            q.area *= sx * sy;
            people.push(q);
        }
    }
    (Frame::new(width, 2 * th, rgb).unwrap(), people)
}

/// Frame i of `n` of the crowd sequence: a 2:1 window of the mosaic that zooms in from the
/// whole mosaic to two thirds of it and back while its centre circles (t = i / (n - 1)):
/// width 1920 - 640 sin(pi t), centre (960 + (1920 - w)/2 sin(2 pi t), 480 + (960 - h)/2 cos(2 pi t)),
/// rounded to whole pixels, shown at 960 x 480.
fn window(i: usize, n: usize) -> (u32, u32, u32, u32) {
    let t = i as f64 / (n - 1) as f64;
    let pi = std::f64::consts::PI;
    let w = 1920.0 - 640.0 * (pi * t).sin();
    let h = w / 2.0;
    let cx = 960.0 + (1920.0 - w) / 2.0 * (2.0 * pi * t).sin();
    let cy = 480.0 + (960.0 - h) / 2.0 * (2.0 * pi * t).cos();
    let (x0, y0) = ((cx - w / 2.0).round().max(0.0), (cy - h / 2.0).round().max(0.0));
    let w = w.round().min(1920.0 - x0);
    (x0 as u32, y0 as u32, w as u32, (w / 2.0).round().min(960.0 - y0) as u32)
}

/// The annotated people with at least 6 visible joints inside the window, in frame pixels.
fn in_view(people: &[GroundTruth], (x0, y0, w, h): (u32, u32, u32, u32), fw: f32, fh: f32) -> Vec<GroundTruth> {
    let (sx, sy) = (fw / w as f32, fh / h as f32);
    people
        .iter()
        .filter_map(|p| {
            let mut q = p.clone();
            for k in &mut q.keypoints {
                k[0] = (k[0] - x0 as f32) * sx;
                k[1] = (k[1] - y0 as f32) * sy;
                if !(k[0] >= 0.0 && k[0] < fw && k[1] >= 0.0 && k[1] < fh) {
                    k[2] = 0.0;
                }
            }
            q.num_visible = q.keypoints.iter().filter(|k| k[2] > 0.0).count();
            q.area *= sx * sy;
            (q.num_visible >= 6).then_some(q)
        })
        .collect()
}

/// Annotated people matched one to one (best pair first) at OKS >= 0.5.
fn matched(gt: &[GroundTruth], people: &[Person]) -> usize {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, g) in gt.iter().enumerate() {
        for (j, p) in people.iter().enumerate() {
            let o = oks(g, p);
            if o >= 0.5 {
                pairs.push((o, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut gi, mut pj) = (vec![false; gt.len()], vec![false; people.len()]);
    let mut n = 0;
    for (_, i, j) in pairs {
        if !gi[i] && !pj[j] {
            gi[i] = true;
            pj[j] = true;
            n += 1;
        }
    }
    n
}

#[test]
fn topdown_finds_the_crowd_that_multipose_caps() {
    let (mosaic, people) = mosaic();
    let n = 25;
    let (fw, fh) = (960u32, 480u32);
    let frames: Vec<(Frame, Vec<GroundTruth>)> = (0..n)
        .map(|i| {
            let win = window(i, n);
            let img = image::RgbImage::from_raw(mosaic.width as u32, mosaic.height as u32, mosaic.rgb.clone()).unwrap();
            let sub = image::imageops::crop_imm(&img, win.0, win.1, win.2, win.3).to_image();
            let shown = image::imageops::resize(&sub, fw, fh, image::imageops::FilterType::Triangle);
            let mut f = Frame::new(fw as usize, fh as usize, shown.into_raw()).unwrap();
            f.index = i as u64;
            f.timestamp_s = i as f64 / 25.0;
            (f, in_view(&people, win, fw as f32, fh as f32))
        })
        .collect();
    let total: usize = frames.iter().map(|f| f.1.len()).sum();
    let run = |name: &str, params: TopDownParams| -> (usize, usize) {
        let mut a = analyzer(name, params);
        a.new_sequence();
        let (mut hit, mut poses) = (0, 0);
        for (f, gt) in &frames {
            let found = a.analyze(f, &mut AnalysisTimes::default()).unwrap().people;
            hit += matched(gt, &found);
            poses += found.len();
        }
        (hit, poses)
    };
    let (mp, mp_poses) = run("movenet-multipose", TopDownParams::default());
    let (td, td_poses) = run("topdown-thunder", TopDownParams::default());
    let every = TopDownParams { detect_every: 1, ..TopDownParams::default() };
    let (td1, td1_poses) = run("topdown-thunder", every);
    let (tl, tl_poses) = run("topdown-lightning", TopDownParams::default());
    println!("crowd sequence: {n} frames of 960x480, {total} annotated person-frames in view (6+ visible joints)");
    for (what, hit, poses) in [
        ("MultiPose (at most 6 people)", mp, mp_poses),
        ("top-down Thunder, detector every 5 frames", td, td_poses),
        ("top-down Thunder, detector every frame", td1, td1_poses),
        ("top-down Lightning, detector every 5 frames", tl, tl_poses),
    ] {
        println!("  {what}: {hit} matched ({:.3}), {:.1} poses per frame", hit as f64 / total as f64, poses as f64 / n as f64);
    }
    println!("  ratio top-down Thunder / MultiPose: {:.2}", td as f64 / mp.max(1) as f64);
    assert!(total > 150, "the mosaic shows too few people: {total}");
    assert!(td as f64 >= 1.5 * mp as f64, "top-down found {td}, MultiPose {mp}: less than 1.5 times as many");
}

/// The whole headless pipeline with top-down pose: every frame, people found, both models
/// reported.
#[test]
fn video_runs_with_topdown_pose() {
    let out = scratch("topdown-video");
    let r = edgesight(&["video", s(&common::clip()), "--out", s(&out), "--pose", "topdown-lightning", "--seg", "none", "--quiet"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(out.join("frames.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 40);
    let with_people = lines.iter().filter(|l| !l["people"].as_array().unwrap().is_empty()).count();
    assert!(with_people >= 35, "people in only {with_people} of 40 frames");
    let most = lines.iter().map(|l| l["people"].as_array().unwrap().len()).max().unwrap();
    println!("top-down on the bundled clip: people in {with_people} of 40 frames, at most {most} in one");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let names: Vec<&str> = report["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["nanodet", "movenet-lightning"]);
    // Its own flags are checked.
    let r = edgesight(&["video", s(&common::clip()), "--out", s(&out), "--pose", "topdown-lightning", "--detect-every", "0"]);
    common::assert_clean_failure(&r, &["--detect-every"]);
    let r = edgesight(&["image", s(&data("coco/000000000785.jpg")), "--out", s(&out), "--pose", "topdown-thunder", "--pose-size", "256"]);
    common::assert_clean_failure(&r, &["--pose-size", "topdown-thunder"]);
}
