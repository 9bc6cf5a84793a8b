//! GMAC/s of edgesight's convolution kernel alone on given shapes, input in cache or not as the
//! shape makes it (for tuning `engine::cpu_kernels::conv`). One thread, or THREADS=n on the
//! kernels' own pool.
//! usage: cargo run --release --example conv_shapes -- CIN COUT GROUP K STRIDE H W [REPS]...
//!   (several shapes: repeat the 7 numbers; K is square, padding K/2)
//! EDGESIGHT_DW=blocked|direct|rows and EDGESIGHT_DENSE=direct force a kernel (`KernelChoice`).
use edgesight::engine::cpu_kernels::conv::{Clamp, ConvSpec, Isa, PackedConv};
use edgesight::engine::cpu_kernels::KernelChoice;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let kernels = KernelChoice::from_env()?;
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let isa = kernels.isa().unwrap_or(Isa::Portable);
    for s in args.chunks(7) {
        let [c_in, c_out, group, k, stride, h, w] = s.try_into().expect("7 numbers per shape");
        let p = k / 2;
        let spec = ConvSpec { c_in, c_out, group, kernel: [k, k], stride: [stride; 2], dilation: [1, 1], pad_before: [p, p], pad_after: [p, p] };
        let weights: Vec<f32> = (0..c_out * c_in / group * k * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let conv = PackedConv::plan(spec.clone(), &weights, Clamp { lo: 0.0, hi: 6.0 }, isa, h, w, &kernels);
        let (oh, ow) = spec.output_hw(h, w).unwrap();
        let input: Vec<f32> = (0..c_in * h * w).map(|i| (i % 13) as f32 * 0.01).collect();
        let bias = vec![0.1; c_out];
        // Aligned to 64 bytes, as the engine's tensors are.
        let mut out_buf = vec![0.0f32; c_out * oh * ow + 16];
        let skip = out_buf.as_ptr().align_offset(64);
        let out = &mut out_buf[skip..][..c_out * oh * ow];
        let threads: usize = std::env::var("THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
        edgesight::engine::cpu_kernels::pool::set_threads(threads).expect("threads start");
        let serial = |n: usize, f: &(dyn Fn(usize) + Sync)| edgesight::engine::cpu_kernels::pool::parallel(n, f);
        let macs = conv.macs(h, w) as f64;
        let reps = ((2e9 / macs) as usize).clamp(3, 2000);
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..reps {
                conv.run(&input, h, w, &bias, out, &serial);
            }
            best = best.min(t.elapsed().as_secs_f64() / reps as f64);
        }
        println!("ci {c_in:4} co {c_out:4} g {group:4} k {k} s {stride} {h}x{w}: {:8.3} ms {:6.1} GMAC/s ({:?})", best * 1e3, macs / best / 1e9, conv.strategy());
    }
    Ok(())
}
