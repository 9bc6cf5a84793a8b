//! Official fixtures (made by running the official LitePose / BEVANet code with seeded random
//! weights): each checkpoint goes through edgesight's own reader and converter, runs on the CPU
//! engine, and must reproduce the official outputs: max |diff| <= 1e-4 * max |official|.
//! LitePose-XS is committed (tests/data/fixtures); the larger ones are read from ../shared.

mod common;

use edgesight::checkpoint;
use edgesight::convert;
use edgesight::engine::Tensor;
use std::path::{Path, PathBuf};

fn committed(name: &str) -> PathBuf {
    common::data("fixtures").join(name)
}

/// The three files of the official fixture `stem` in ../shared/reference/fixtures
/// (checkpoint, input, outputs), or a skip (a failure under EDGESIGHT_REQUIRE_FIXTURES=1).
fn shared_fixture(test: &str, stem: &str) -> Option<[PathBuf; 3]> {
    let f = |ext: &str| format!("reference/fixtures/{stem}.{ext}");
    common::shared_or_skip(test, [f("pth").as_str(), f("input.npy").as_str(), f("outputs.npz").as_str()])
}

/// Runs `onnx` on the fixture input and compares every output with the official ones: as many
/// outputs as the official file holds (out0, out1, ...), each with its shape and values.
fn check_outputs(label: &str, onnx: &[u8], input: &Path, outputs: &Path) {
    let x = checkpoint::load_npy(input).unwrap();
    // Planned as the CPU engine plans it (edgesight's own kernels included).
    let got = common::edgesight_cpu_outputs(onnx, &Tensor::f32(x.shape.clone(), x.data.f32_values()));
    let expected = checkpoint::load_npz(outputs).unwrap();
    assert_eq!(got.len(), expected.len(), "{label}: {} outputs, {outputs:?} holds {}", got.len(), expected.len());
    for (i, (shape, got_v)) in got.iter().enumerate() {
        let want = expected.iter().find(|e| e.name == format!("out{i}")).unwrap_or_else(|| panic!("out{i} in {outputs:?}"));
        assert_eq!(shape, &want.shape, "{label} out{i} shape");
        let want_v = want.data.f32_values();
        assert_eq!(got_v.len(), want_v.len(), "{label} out{i} length");
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
    let Some([pth, input, outputs]) = shared_fixture("litepose_s_matches_official_outputs", "litepose-S") else { return };
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
    if let Some(s) = common::shared_file("checkpoint_with_a_wrong_key_is_refused_with_the_key_named", "reference/fixtures/litepose-S.pth") {
        let entries = convert::read_checkpoint(&s).unwrap();
        let e = convert::build(convert::arch("litepose-xs").unwrap(), &entries, 256, 256).unwrap_err().to_string();
        assert!(e.contains("mis-shaped keys"), "{e}");
    }
}

#[test]
fn bevanet_s_matches_official_outputs() {
    let Some([pth, input, outputs]) = shared_fixture("bevanet_s_matches_official_outputs", "BEVANet-S") else { return };
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

/// The skip-or-fail rule of the shared-folder helper: present files are returned; missing ones
/// are a `skipped:` line without EDGESIGHT_REQUIRE_FIXTURES=1 and a failure naming them with it.
#[test]
fn missing_shared_files_skip_or_fail_by_the_switch() {
    let dir = common::data("fixtures");
    let [p] = common::files_or_skip(&dir, "present", ["litepose-XS.pth"], true).unwrap();
    assert!(p.is_file());
    let nowhere = common::scratch("no_shared_folder").join("shared");
    assert!(common::files_or_skip(&nowhere, "absent", ["reference/fixtures/x.pth"], false).is_none());
    let e = std::panic::catch_unwind(|| common::files_or_skip(&nowhere, "absent", ["a.pth", "b.npy"], true)).unwrap_err();
    let msg = e.downcast_ref::<String>().unwrap();
    assert!(msg.contains("EDGESIGHT_REQUIRE_FIXTURES=1"), "{msg}");
    assert!(msg.contains(&nowhere.join("a.pth").display().to_string()) && msg.contains("b.npy"), "{msg}");
}
