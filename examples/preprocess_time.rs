//! Preprocessing time per model for the bundled clip's first frame (median of 200 runs).
//! usage: cargo run --release --example preprocess_time [-- MODEL...]  (default: the default job's
//! movenet-multipose and selfie)
use edgesight::catalog::Catalog;
use edgesight::video_source::{probe, VideoReader};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() {
        names = vec!["movenet-multipose".into(), "selfie".into()];
    }
    let clip = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/vtest-4s.mp4");
    let info = probe(&clip)?;
    let frame = VideoReader::open(&info)?.next_frame()?.expect("a frame");
    let catalog = Catalog::builtin();
    for name in names {
        let spec = catalog.get(&name)?;
        let mut times = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            let (x, _) = edgesight::preprocess::prepare(spec, &frame);
            times.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(x);
        }
        times.sort_by(f64::total_cmp);
        let (h, w) = spec.input_size(frame.width, frame.height);
        println!("{name:20} {w}x{h} from {}x{}: median {:.3} ms, p10 {:.3} ms", frame.width, frame.height, times[100], times[20]);
    }
    Ok(())
}
