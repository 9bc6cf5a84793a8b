//! Official fixtures (made by running the official LitePose / BEVANet code with seeded random
//! weights): each checkpoint goes through edgesight's own reader and converter, runs on the CPU
//! engine, and must reproduce the official outputs: max |diff| <= 1e-4 * max |official|.
//! LitePose-XS is committed (tests/data/fixtures); the larger ones are read from ../shared.

use edgesight::checkpoint;
use edgesight::convert;
use std::path::{Path, PathBuf};
use tract_onnx::prelude::*;

fn committed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fixtures").join(name)
}

fn shared(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/fixtures").join(name);
    p.is_file().then_some(p)
}

/// Runs `onnx` on the fixture input and compares every output with the official ones.
fn check_outputs(label: &str, onnx: &[u8], input: &Path, outputs: &Path) {
    let x = checkpoint::load_npy(input).unwrap();
    let shape = x.shape.clone();
    let data = x.data.f32_values();
    // Planned as the CPU engine plans it (edgesight's own kernels included).
    let model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .unwrap()
        .with_input_fact(0, f32::fact(&shape).into())
        .unwrap();
    let model = edgesight::engine::tract_cpu::optimize(model, &Default::default()).unwrap().into_runnable().unwrap();
    let t = tract_onnx::prelude::Tensor::from_shape(&shape, &data).unwrap();
    let got = model.run(tvec!(t.into())).unwrap();
    let expected = checkpoint::load_npz(outputs).unwrap();
    for (i, out) in got.iter().enumerate() {
        let want = expected.iter().find(|e| e.name == format!("out{i}")).unwrap_or_else(|| panic!("out{i} in {outputs:?}"));
        assert_eq!(out.shape(), want.shape.as_slice(), "{label} out{i} shape");
        let out = out.cast_to::<f32>().unwrap();
        let got_v: Vec<f32> = out.to_plain_array_view::<f32>().unwrap().iter().copied().collect();
        let want_v = want.data.f32_values();
        let max_ref = want_v.iter().fold(0f32, |m, v| m.max(v.abs()));
        let max_diff = got_v.iter().zip(&want_v).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        println!("{label} out{i} {:?}: max |diff| {max_diff:.3e}, max |official| {max_ref:.4}, ratio {:.3e}", want.shape, max_diff / max_ref);
        assert!(max_diff <= 1e-4 * max_ref, "{label} out{i}: max |diff| {max_diff} > 1e-4 * {max_ref}");
    }
}

fn litepose(label: &str, arch: &str, pth: &Path, input: &Path, outputs: &Path) {
    let entries = convert::read_checkpoint(pth).unwrap();
    let x = checkpoint::load_npy(input).unwrap();
    let built = convert::build(convert::arch(arch).unwrap(), &entries, x.shape[2], x.shape[3]).unwrap();
    check_outputs(label, &built.onnx, input, outputs);
}

#[test]
fn litepose_xs_matches_official_outputs() {
    litepose(
        "LitePose-XS",
        "litepose-xs",
        &committed("litepose-XS.pth"),
        &committed("litepose-XS.input.npy"),
        &committed("litepose-XS.outputs.npz"),
    );
}

#[test]
fn litepose_s_matches_official_outputs() {
    let (Some(pth), Some(input), Some(outputs)) =
        (shared("litepose-S.pth"), shared("litepose-S.input.npy"), shared("litepose-S.outputs.npz"))
    else {
        println!("skipped: ../shared/reference/fixtures/litepose-S.* not present");
        return;
    };
    litepose("LitePose-S", "litepose-s", &pth, &input, &outputs);
}

#[test]
fn checkpoint_with_a_wrong_key_is_refused_with_the_key_named() {
    let mut entries = convert::read_checkpoint(&committed("litepose-XS.pth")).unwrap();
    entries.retain(|e| e.0 != "stage.2.3.depth_conv.0.weight");
    entries.push(("stage.9.bogus.weight".into(), vec![3], vec![0.0; 3]));
    let i = entries.iter().position(|e| e.0 == "first.0.0.weight").unwrap();
    entries[i].1 = vec![32, 3, 5, 5];
    entries[i].2 = vec![0.0; 32 * 3 * 5 * 5];
    let e = convert::build(convert::arch("litepose-xs").unwrap(), &entries, 256, 256).unwrap_err().to_string();
    assert!(e.contains("missing keys (1)") && e.contains("stage.2.3.depth_conv.0.weight"), "{e}");
    assert!(e.contains("unexpected keys (1)") && e.contains("stage.9.bogus.weight"), "{e}");
    assert!(e.contains("first.0.0.weight: checkpoint has 32x3x5x5, the architecture needs 32x3x3x3"), "{e}");
    // The wrong architecture for a real checkpoint: S keys into XS shapes.
    if let Some(s) = shared("litepose-S.pth") {
        let entries = convert::read_checkpoint(&s).unwrap();
        let e = convert::build(convert::arch("litepose-xs").unwrap(), &entries, 256, 256).unwrap_err().to_string();
        assert!(e.contains("mis-shaped keys"), "{e}");
    }
}

#[test]
fn bevanet_s_matches_official_outputs() {
    let (Some(pth), Some(input), Some(outputs)) =
        (shared("BEVANet-S.pth"), shared("BEVANet-S.input.npy"), shared("BEVANet-S.outputs.npz"))
    else {
        println!("skipped: ../shared/reference/fixtures/BEVANet-S.* not present");
        return;
    };
    // The official training-wrapper state dict (model. prefix, aux heads, loss buffer) as is.
    let entries = convert::read_checkpoint(&pth).unwrap();
    assert!(entries.iter().any(|e| e.0.starts_with("model.seghead_ds.")));
    let x = checkpoint::load_npy(&input).unwrap();
    let built = convert::build(convert::arch("bevanet-s").unwrap(), &entries, x.shape[2], x.shape[3]).unwrap();
    check_outputs("BEVANet-S", &built.onnx, &input, &outputs);
}

#[test]
fn random_weights_cover_every_key() {
    // Speed runs use seeded random weights; the strict loader must accept them for every arch.
    for name in convert::arch_names() {
        let arch = convert::arch(name).unwrap();
        let entries = convert::random_entries(arch, 1);
        let (h, w) = match arch {
            convert::Arch::LitePose(_) => (128, 128),
            convert::Arch::BevaNet(_) => (64, 128),
        };
        convert::build(arch, &entries, h, w).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    }
}
