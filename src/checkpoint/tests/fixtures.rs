//! The real fixtures made by the official code: LitePose-XS (copied into tests/data/fixtures)
//! and, when the shared reference folder sits beside the clone, LitePose-S and BEVANet-S.
//! Expected values come from keys.tsv and from checksums.tsv, which checksums.py computes with
//! zipfile + numpy from the raw storages (no torch).

use std::path::{Path, PathBuf};

use super::super::{load_npy, load_npz, load_torch, DType, StateDict, TensorData};

fn local(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fixtures").join(name)
}

use crate::shared_fixtures::reference as shared;

fn read_tsv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn shape_text(shape: &[usize]) -> String {
    if shape.is_empty() {
        "scalar".to_string()
    } else {
        shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
    }
}

/// Every key, shape and dtype equals keys.tsv, in order.
fn check_keys(sd: &StateDict, keys_tsv: &Path) {
    let rows = read_tsv(keys_tsv);
    assert_eq!(sd.len(), rows.len(), "tensor count vs {}", keys_tsv.display());
    for (t, row) in sd.tensors.iter().zip(&rows) {
        assert_eq!(t.name, row[0]);
        assert_eq!(shape_text(&t.shape), row[1], "shape of {}", t.name);
        assert_eq!(t.dtype().name(), row[2], "dtype of {}", t.name);
        assert_eq!(t.numel(), t.shape.iter().product::<usize>(), "numel of {}", t.name);
    }
}

/// Every tensor's numel, sum, sum of |x|, first and last element equal checksums.tsv.
fn check_values(sd: &StateDict, checksums_tsv: &Path) {
    let rows = read_tsv(checksums_tsv);
    assert_eq!(sd.len(), rows.len());
    for (t, row) in sd.tensors.iter().zip(&rows) {
        assert_eq!(t.name, row[0]);
        let num = |i: usize| row[i].parse::<f64>().unwrap();
        let values: Vec<f64> = match &t.data {
            TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            other => panic!("unexpected dtype {:?} for {}", other.dtype(), t.name),
        };
        assert_eq!(values.len() as f64, num(1), "numel of {}", t.name);
        let sum: f64 = values.iter().sum();
        let abs: f64 = values.iter().map(|x| x.abs()).sum();
        // Summation order differs from numpy's pairwise sum: allow rounding only.
        let tol = 1e-9 * num(3) + 1e-12;
        assert!((sum - num(2)).abs() <= tol, "sum of {}: {sum} vs {}", t.name, num(2));
        assert!((abs - num(3)).abs() <= tol, "abs sum of {}: {abs} vs {}", t.name, num(3));
        assert_eq!(values[0], num(4), "first element of {}", t.name);
        assert_eq!(values[values.len() - 1], num(5), "last element of {}", t.name);
    }
}

#[test]
fn litepose_xs_checkpoint_matches_listing_and_values() {
    let sd = load_torch(&local("litepose-XS.pth")).unwrap();
    assert_eq!(sd.len(), 679);
    check_keys(&sd, &local("litepose-XS.keys.tsv"));
    check_values(&sd, &local("litepose-XS.checksums.tsv"));

    // Spot checks against python (numpy over the raw storage bytes).
    let (shape, w) = sd.f32("first.0.0.weight").unwrap();
    assert_eq!(shape, &[32, 3, 3, 3]);
    assert_eq!(w[0], -0.001_440_839_3);
    assert_eq!(w[863], -0.012_822_309);
    let (_, w) = sd.f32_slice("first.0.1.weight").unwrap();
    assert_eq!((w[0], w[31]), (0.719_720_2, 0.762_763_86));
    let nbt = sd.get("first.0.1.num_batches_tracked").unwrap();
    assert_eq!(nbt.dtype(), DType::I64);
    assert!(nbt.shape.is_empty());
    assert_eq!(nbt.data.as_i64(), Some(&[0i64][..]));
    // Integer tensors are not weights.
    let e = sd.f32("first.0.1.num_batches_tracked").unwrap_err().to_string();
    assert!(e.contains("int64"), "{e}");
    let e = sd.f32("no.such.key").unwrap_err().to_string();
    assert!(e.contains("no.such.key"), "{e}");
    // Bare state dict: stripping an absent prefix changes nothing.
    let names: Vec<String> = sd.names().map(str::to_string).collect();
    let same = sd.strip_prefix("module.");
    assert!(same.names().eq(names.iter().map(String::as_str)));
}

#[test]
fn litepose_xs_input_npy() {
    let a = load_npy(&local("litepose-XS.input.npy")).unwrap();
    assert_eq!(a.shape, vec![1, 3, 256, 256]);
    let v = a.data.as_f32().expect("float32");
    assert_eq!(v[0], 0.203_999_37);
    assert_eq!(v[v.len() - 1], 1.800_485_4);
    let sum: f64 = v.iter().map(|&x| f64::from(x)).sum();
    assert!((sum - 43_752.658_411_562_574).abs() < 1e-6, "{sum}");
}

#[test]
fn litepose_xs_outputs_npz() {
    let arrays = load_npz(&local("litepose-XS.outputs.npz")).unwrap();
    let names: Vec<&str> = arrays.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["out0", "out1"]);
    assert_eq!(arrays[0].shape, vec![1, 34, 64, 64]);
    assert_eq!(arrays[1].shape, vec![1, 17, 128, 128]);
    // Stats printed in litepose-XS.io.txt, and first/last elements from numpy.
    let expect = [
        (-0.058_500_457, 0.039_379_817, -0.23761, 0.218548, -0.00346697, 0.0890837),
        (-0.025_388_028, 0.042_930_78, -0.161018, 0.244889, -0.00516, 0.0457681),
    ];
    for (a, (first, last, min, max, mean, std)) in arrays.iter().zip(expect) {
        let v = a.data.as_f32().expect("float32");
        assert_eq!((v[0], v[v.len() - 1]), (first, last), "{}", a.name);
        let n = v.len() as f64;
        let m = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let s = (v.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / n).sqrt();
        let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!((f64::from(lo) - min).abs() < 1e-5 && (f64::from(hi) - max).abs() < 1e-5, "{}: {lo} {hi}", a.name);
        assert!((m - mean).abs() < 1e-7 && (s - std).abs() < 1e-6, "{}: {m} {s}", a.name);
    }
}

#[test]
fn litepose_s_shared_fixture() {
    let Some(pth) = shared("litepose-S.pth") else { return };
    let sd = load_torch(&pth).unwrap();
    check_keys(&sd, &shared("litepose-S.keys.tsv").unwrap());
    check_values(&sd, &local("litepose-S.checksums.tsv"));
    let a = load_npy(&shared("litepose-S.input.npy").unwrap()).unwrap();
    assert_eq!(a.shape, vec![1, 3, 448, 448]);
    let outs = load_npz(&shared("litepose-S.outputs.npz").unwrap()).unwrap();
    let shapes: Vec<_> = outs.iter().map(|o| (o.name.as_str(), o.shape.clone())).collect();
    assert_eq!(shapes, [("out0", vec![1, 34, 112, 112]), ("out1", vec![1, 17, 224, 224])]);
}

#[test]
fn bevanet_s_shared_fixture() {
    let Some(pth) = shared("BEVANet-S.pth") else { return };
    let sd = load_torch(&pth).unwrap();
    assert_eq!(sd.len(), 766);
    check_keys(&sd, &shared("BEVANet-S.keys.tsv").unwrap());
    check_values(&sd, &local("BEVANet-S.checksums.tsv"));
    assert!(sd.names().all(|n| n.starts_with("model.") || n == "sem_loss.criterion.weight"));
    assert_eq!(sd.get("sem_loss.criterion.weight").unwrap().shape, vec![19]);

    // The deploy model's keys, once `model.` is stripped, are all there with the same shapes.
    let sd = sd.strip_prefix("model.");
    assert_eq!(sd.len(), 766);
    for row in read_tsv(&shared("BEVANet-S.deploy_keys.tsv").unwrap()) {
        let t = sd.get(&row[0]).unwrap_or_else(|| panic!("deploy key {} missing", row[0]));
        assert_eq!(shape_text(&t.shape), row[1], "{}", row[0]);
        assert_eq!(t.dtype().name(), row[2], "{}", row[0]);
    }
    let a = load_npy(&shared("BEVANet-S.input.npy").unwrap()).unwrap();
    assert_eq!(a.shape, vec![1, 3, 256, 512]);
    let outs = load_npz(&shared("BEVANet-S.outputs.npz").unwrap()).unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!((outs[0].name.as_str(), outs[0].shape.clone()), ("out0", vec![1, 19, 32, 64]));
}
