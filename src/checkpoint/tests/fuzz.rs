//! Deterministic fuzzing: thousands of mutated checkpoints, pickles, .npy and .npz files,
//! plus pure random bytes. Each load must return Ok or Err — never panic — and its largest
//! single allocation must stay proportional to the input size.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use super::super::pickle::unpickle;
use super::super::zip::ZipArchive;
use super::super::{parse_npy, read_npz, read_torch, TensorData};
use super::largest_allocation;
use super::npy_cases::NPZ_DEFLATED;
use super::writer::{entry, f32_bytes, i64_bytes, npy, write_zip, PickleWriter, Rng, TorchFile};

/// Iterations of a fuzz loop: `n`, or `n / EDGESIGHT_FUZZ_DIVISOR` when that is set. CI sets it
/// for the aarch64 run under qemu, where emulation makes the full counts take over half an hour;
/// the native run always does the full counts.
fn iterations(n: u64) -> u64 {
    match std::env::var("EDGESIGHT_FUZZ_DIVISOR").ok().and_then(|v| v.parse::<u64>().ok()).filter(|&d| d > 1) {
        Some(d) => {
            let k = (n / d).max(1);
            eprintln!("fuzz: {k} of {n} iterations (EDGESIGHT_FUZZ_DIVISOR={d})");
            k
        }
        None => n,
    }
}

/// Runs one load on `input`; reports the seed and input if it panics or over-allocates.
fn check<T>(what: &str, seed: u64, input: &[u8], load: impl FnOnce(&[u8]) -> T) {
    let (result, largest) = largest_allocation(|| catch_unwind(AssertUnwindSafe(|| load(input))));
    let hex: String = input.iter().take(256).map(|b| format!("{b:02x}")).collect();
    if result.is_err() {
        panic!("{what}: panicked on iteration seed {seed}, input ({} bytes) starts {hex}", input.len());
    }
    // Generous: nodes of a pickle cost ~40 bytes per input byte, deflate may expand ~1000x.
    let bound = 128 * input.len() + (1 << 20);
    assert!(largest <= bound, "{what}: seed {seed} allocated {largest} bytes at once for {} input bytes", input.len());
}

/// A small but feature-complete checkpoint: wrapper dict, optimizer junk, memo reuse,
/// shared storage with a transposed view and an offset, a 0-dim int64 tensor.
fn sample_checkpoint() -> TorchFile {
    let mut p = PickleWriter::new();
    p.empty_dict().mark().str("epoch").int(3).str("state_dict").ordered_dict();
    p.put();
    p.mark();
    p.str("conv.weight").tensor("FloatStorage", "0", "cuda:0", 6, 0, &[2, 3], &[3, 1]);
    p.str("conv.weight_t").tensor("FloatStorage", "0", "cuda:0", 6, 0, &[3, 2], &[1, 3]);
    p.str("conv.bias").tensor("FloatStorage", "0", "cpu", 6, 4, &[2], &[1]);
    p.str("bn.num_batches_tracked").tensor("LongStorage", "1", "cpu", 1, 0, &[], &[]);
    p.str("half").simple_tensor("HalfStorage", "2", &[2]);
    p.setitems();
    p.str("optimizer").empty_dict().str("lr").float(0.1).setitem();
    p.setitems();
    TorchFile::new(
        p.stop(),
        vec![("0", f32_bytes(&[0., 1., 2., 3., 4., 5.])), ("1", i64_bytes(&[42])), ("2", vec![0x00, 0x3c, 0x00, 0xc0])],
    )
}

fn load_torch_bytes(b: &[u8]) {
    let _ = read_torch(Cursor::new(b), "fuzz.pth");
}

#[test]
fn allocation_tracker_sees_large_buffers() {
    let (_, largest) = largest_allocation(|| std::hint::black_box(vec![0u8; 10 << 20]));
    assert!(largest >= 10 << 20, "{largest}");
    let (_, largest) = largest_allocation(|| std::hint::black_box(vec![0u8; 100]));
    assert!(largest < 10 << 20, "{largest}");
}

#[test]
fn sample_checkpoint_loads() {
    let sd = read_torch(Cursor::new(sample_checkpoint().to_bytes()), "sample.pth").unwrap();
    assert_eq!(sd.len(), 5);
    assert_eq!(sd.get("conv.weight_t").unwrap().f32_values(), [0., 3., 1., 4., 2., 5.]);
}

#[test]
fn fuzz_checkpoint_zip_bytes() {
    let mut tf = sample_checkpoint();
    let plain = tf.to_bytes();
    tf.zip64 = true;
    let zip64 = tf.to_bytes();
    let mut rng = Rng(1);
    for i in 0..iterations(20_000) {
        let base = if i % 2 == 0 { &plain } else { &zip64 };
        let input = rng.mutate(base);
        check("checkpoint zip", i, &input, load_torch_bytes);
    }
}

#[test]
fn fuzz_checkpoint_pickle() {
    // Mutate data.pkl only and re-zip it with a valid CRC, so the unpickler and the tensor
    // checks see the damage instead of the zip layer.
    let tf = sample_checkpoint();
    let mut rng = Rng(2);
    let mut loaded = 0;
    for i in 0..iterations(25_000) {
        let pickle = rng.mutate(&tf.pickle);
        let bytes =
            TorchFile::new(pickle, tf.storages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).to_bytes();
        check("checkpoint pickle", i, &bytes, |b| {
            if read_torch(Cursor::new(b), "fuzz.pth").is_ok() {
                loaded += 1;
            }
        });
    }
    // Some mutations (e.g. inside a float or a name) leave a loadable file.
    assert!(loaded > 0);
}

#[test]
fn fuzz_real_pickle() {
    // The LitePose-XS data.pkl (95 KB, 679 tensors) mutated, then unpickled and resolved
    // (its storages are left out of the zip, so a clean parse ends in "entry is missing").
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fixtures/litepose-XS.pth");
    let file = std::fs::read(path).unwrap();
    let mut zip = ZipArchive::new(Cursor::new(file)).unwrap();
    let pickle = zip.read("litepose-XS/data.pkl", 1 << 20).unwrap();
    assert!(unpickle(&pickle).is_ok());
    let mut rng = Rng(3);
    for i in 0..iterations(1500) {
        let mutated = rng.mutate(&pickle);
        let bytes = TorchFile::new(mutated, vec![]).to_bytes();
        check("real pickle", i, &bytes, load_torch_bytes);
    }
}

#[test]
fn fuzz_random_bytes() {
    let mut rng = Rng(4);
    for i in 0..iterations(12_000) {
        let len = rng.below(2048);
        let mut input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        match i % 4 {
            // Valid magic numbers, so the parsers get past their first check.
            0 => drop(input.splice(0..0, *b"PK\x03\x04")),
            1 => drop(input.splice(0..0, *b"\x93NUMPY\x01\x00")),
            2 => drop(input.splice(0..0, [0x80, 2])),
            // A plausible end record pointing at random central-directory bytes.
            _ => {
                let n = input.len() as u32;
                let cd = rng.below(n as usize + 1) as u32;
                let mut eocd = b"PK\x05\x06\0\0\0\0".to_vec();
                let count = (rng.below(4) as u16).to_le_bytes();
                eocd.extend_from_slice(&[count[0], count[1], count[0], count[1]]);
                eocd.extend_from_slice(&(n - cd).to_le_bytes());
                eocd.extend_from_slice(&cd.to_le_bytes());
                eocd.extend_from_slice(&[0, 0]);
                input.extend_from_slice(&eocd);
            }
        };
        check("random torch", i, &input, load_torch_bytes);
        check("random npy", i, &input, |b| {
            let _ = parse_npy(b);
        });
        check("random npz", i, &input, |b| {
            let _ = read_npz(Cursor::new(b), "fuzz.npz");
        });
        check("random pickle", i, &input, |b| {
            let _ = unpickle(b);
        });
    }
}

#[test]
fn fuzz_npy() {
    let data: Vec<u8> = (0..24u8).collect();
    let bases = [
        npy("<f4", false, "(2, 3)", &data),
        npy(">i8", false, "(3,)", &data),
        npy("<f4", true, "(3, 2)", &data),
        npy("|b1", false, "(4, 6)", &data),
        npy("<f2", false, "()", &data[..2]),
    ];
    let mut rng = Rng(5);
    for i in 0..iterations(30_000) {
        let input = rng.mutate(&bases[i as usize % bases.len()]);
        check("npy", i, &input, |b| {
            let _ = parse_npy(b);
        });
    }
}

#[test]
fn fuzz_npz() {
    let stored = write_zip(
        &[entry("a.npy", &npy("<f4", false, "(2,)", &[0; 8])), entry("b.npy", &npy("<i8", false, "()", &[1; 8]))],
        true,
    );
    let mut rng = Rng(6);
    for i in 0..iterations(20_000) {
        let base: &[u8] = if i % 2 == 0 { &stored } else { NPZ_DEFLATED };
        let input = rng.mutate(base);
        check("npz", i, &input, |b| {
            let _ = read_npz(Cursor::new(b), "fuzz.npz");
        });
    }
}

/// Raw element bits, to compare payloads of any type (NaNs included) with the reference.
fn bits(d: &TensorData) -> Vec<u64> {
    match d {
        TensorData::F32(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
        TensorData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
        TensorData::F16(v) | TensorData::BF16(v) => v.iter().map(|&x| u64::from(x)).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as u64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| u64::from(x as u32)).collect(),
        TensorData::I16(v) => v.iter().map(|&x| u64::from(x as u16)).collect(),
        TensorData::I8(v) => v.iter().map(|&x| u64::from(x as u8)).collect(),
        TensorData::U8(v) => v.iter().map(|&x| u64::from(x)).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| u64::from(x)).collect(),
    }
}

/// Reference gather, written the slow obvious way: element `k` of the row-major output
/// sits at `offset + sum(index[d] * stride[d])` of the storage.
fn reference(storage: &[u8], size: usize, big: bool, offset: u64, shape: &[u64], strides: &[u64]) -> Vec<u64> {
    let numel: u64 = shape.iter().product();
    (0..numel)
        .map(|k| {
            let (mut rest, mut at) = (k, offset);
            for d in (0..shape.len()).rev() {
                at += (rest % shape[d]) * strides[d];
                rest /= shape[d];
            }
            let mut e = storage[at as usize * size..(at as usize + 1) * size].to_vec();
            if big {
                e.reverse();
            }
            e.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        })
        .collect()
}

#[test]
fn property_random_tensor_views() {
    // Random storages and views (offsets, strides incl. 0, empty and 0-dim shapes, wrong
    // entry sizes, both byte orders): the loader accepts exactly the views that fit, and
    // then returns what the reference gather computes.
    let types =
        [("FloatStorage", 4usize), ("LongStorage", 8), ("ByteStorage", 1), ("HalfStorage", 2), ("IntStorage", 4)];
    let mut rng = Rng(7);
    let mut accepted = 0;
    let cases = iterations(20_000);
    for i in 0..cases {
        let (ty, size) = types[rng.below(types.len())];
        let storage_numel = rng.below(24) as u64;
        let mut entry_len = storage_numel as usize * size;
        if rng.below(10) == 0 {
            entry_len = (entry_len + rng.below(3)).saturating_sub(1);
        }
        let ndim = rng.below(4);
        let shape: Vec<u64> = (0..ndim).map(|_| rng.below(5) as u64).collect();
        let strides: Vec<u64> = (0..ndim).map(|_| rng.below(7) as u64).collect();
        let offset = rng.below(12) as u64;
        let big = rng.below(2) == 0;
        let storage: Vec<u8> = (0..entry_len).map(|_| rng.next() as u8).collect();

        let mut p = PickleWriter::new();
        p.ordered_dict().mark();
        p.str("t").tensor(ty, "7", "cuda:0", storage_numel, offset, &shape, &strides);
        // A second, contiguous view of the same storage.
        p.str("all").tensor(ty, "7", "cpu", storage_numel, 0, &[storage_numel], &[1]);
        p.setitems();
        let mut tf = TorchFile::new(p.stop(), vec![("7", storage.clone())]);
        tf.byteorder = Some(if big { "big" } else { "little" });
        let result = read_torch(Cursor::new(tf.to_bytes()), "prop.pth");

        let numel: u64 = shape.iter().product();
        let last = offset + shape.iter().zip(&strides).map(|(&d, &s)| d.saturating_sub(1) * s).sum::<u64>();
        let valid = entry_len == storage_numel as usize * size
            && (numel == 0 || (numel <= storage_numel && last < storage_numel));
        match result {
            Ok(sd) if valid => {
                accepted += 1;
                let t = sd.get("t").unwrap();
                assert_eq!(t.shape, shape.iter().map(|&d| d as usize).collect::<Vec<_>>(), "case {i}");
                assert_eq!(bits(&t.data), reference(&storage, size, big, offset, &shape, &strides), "case {i}");
                let all = sd.get("all").unwrap();
                assert_eq!(bits(&all.data), reference(&storage, size, big, 0, &[storage_numel], &[1]), "case {i}");
            }
            Err(_) if !valid => {}
            Ok(_) => panic!("case {i}: accepted an invalid view {shape:?} {strides:?} +{offset} of {storage_numel} ({entry_len} bytes)"),
            Err(e) => panic!("case {i}: refused a valid view {shape:?} {strides:?} +{offset} of {storage_numel}: {e:#}"),
        }
    }
    // At least a quarter of the random views are valid (5000 of the full 20 000).
    assert!(accepted > cases / 4, "only {accepted} valid cases of {cases}");
}

#[test]
fn property_random_npy() {
    let types = [("<f4", 4usize), (">f4", 4), ("<i8", 8), (">i8", 8), ("|u1", 1), ("<f2", 2), (">i2", 2), ("<f8", 8)];
    let mut rng = Rng(8);
    for i in 0..iterations(10_000) {
        let (descr, size) = types[rng.below(types.len())];
        let shape: Vec<u64> = (0..rng.below(4)).map(|_| rng.below(5) as u64).collect();
        let numel: u64 = shape.iter().product();
        let fortran = rng.below(2) == 0;
        let data: Vec<u8> = (0..numel as usize * size).map(|_| rng.next() as u8).collect();
        let shape_text = match shape.len() {
            1 => format!("({},)", shape[0]),
            _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
        };
        let a = parse_npy(&npy(descr, fortran, &shape_text, &data)).unwrap_or_else(|e| panic!("case {i}: {e:#}"));
        assert_eq!(a.shape, shape.iter().map(|&d| d as usize).collect::<Vec<_>>());
        // Fortran order: the first index varies fastest.
        let mut strides = vec![1u64; shape.len()];
        if fortran {
            for d in 1..shape.len() {
                strides[d] = strides[d - 1] * shape[d - 1];
            }
        } else {
            for d in (0..shape.len().saturating_sub(1)).rev() {
                strides[d] = strides[d + 1] * shape[d + 1];
            }
        }
        assert_eq!(bits(&a.data), reference(&data, size, descr.starts_with('>'), 0, &shape, &strides), "case {i}");
    }
}
