//! Hand-built torch checkpoints: the layouts real files use (GPU locations, views, shared
//! storages, 0-dim tensors, big-endian, wrappers) and the ones a hostile or broken file may
//! hold (forbidden globals, short storages, absurd sizes, legacy formats).

use std::io::Cursor;
use std::path::Path;

use anyhow::Result;

use super::super::{load_torch, read_torch, DType, StateDict, TensorData};
use super::largest_allocation;
use super::writer::{entry, f32_bytes, i64_bytes, write_zip, PickleWriter, TorchFile};

fn load(tf: &TorchFile) -> Result<StateDict> {
    read_torch(Cursor::new(tf.to_bytes()), "test.pth")
}

fn err(tf: &TorchFile) -> String {
    match load(tf) {
        Ok(sd) => panic!("expected an error, got {} tensors", sd.len()),
        Err(e) => format!("{e:#}"),
    }
}

/// Writes one tensor's pickle ops.
type WriteTensor<'a> = &'a dyn Fn(&mut PickleWriter);

/// `OrderedDict` with the given (name, tensor-writing closure) items.
fn state_dict(items: &[(&str, WriteTensor)]) -> Vec<u8> {
    let mut p = PickleWriter::new();
    p.ordered_dict().put();
    p.mark();
    for (name, tensor) in items {
        p.str(name);
        tensor(&mut p);
    }
    p.setitems().stop()
}

fn f32s(sd: &StateDict, name: &str) -> Vec<f32> {
    sd.get(name).unwrap().data.as_f32().unwrap().to_vec()
}

#[test]
fn gpu_location_views_offsets_and_scalars() {
    let six: Vec<f32> = (0..6).map(|i| i as f32).collect();
    let pickle = state_dict(&[
        // 2x3 weight saved on cuda:0: the location is ignored.
        ("w", &|p| {
            p.tensor("FloatStorage", "0", "cuda:0", 6, 0, &[2, 3], &[3, 1]);
        }),
        // Its transpose, sharing the storage: non-contiguous, gathered to row-major.
        ("wt", &|p| {
            p.tensor("FloatStorage", "0", "cuda:0", 6, 0, &[3, 2], &[1, 3]);
        }),
        // A slice at storage offset 4 of the same storage.
        ("tail", &|p| {
            p.tensor("FloatStorage", "0", "cuda:1", 6, 4, &[2], &[1]);
        }),
        // Every other element.
        ("even", &|p| {
            p.tensor("FloatStorage", "0", "cpu", 6, 0, &[3], &[2]);
        }),
        // 0-dim int64 (num_batches_tracked), at offset 1 of a two-element storage.
        ("n", &|p| {
            p.tensor("LongStorage", "1", "cpu", 2, 1, &[], &[]);
        }),
        ("empty", &|p| {
            p.tensor("FloatStorage", "2", "cpu", 0, 0, &[0, 4], &[4, 1]);
        }),
    ]);
    let tf = TorchFile::new(pickle, vec![("0", f32_bytes(&six)), ("1", i64_bytes(&[5, 12345678901])), ("2", vec![])]);
    let sd = load(&tf).unwrap();
    assert_eq!(sd.names().collect::<Vec<_>>(), ["w", "wt", "tail", "even", "n", "empty"]);
    assert_eq!(sd.get("w").unwrap().shape, [2, 3]);
    assert_eq!(f32s(&sd, "w"), six);
    assert_eq!(sd.get("wt").unwrap().shape, [3, 2]);
    assert_eq!(f32s(&sd, "wt"), [0., 3., 1., 4., 2., 5.]);
    assert_eq!(f32s(&sd, "tail"), [4., 5.]);
    assert_eq!(f32s(&sd, "even"), [0., 2., 4.]);
    let n = sd.get("n").unwrap();
    assert!(n.shape.is_empty());
    assert_eq!(n.data, TensorData::I64(vec![12345678901]));
    let empty = sd.get("empty").unwrap();
    assert_eq!((empty.shape.clone(), empty.numel()), (vec![0, 4], 0));
}

#[test]
fn big_endian_byteorder_is_swapped() {
    let pickle = state_dict(&[
        ("f", &|p| {
            p.simple_tensor("FloatStorage", "0", &[2]);
        }),
        ("i", &|p| {
            p.simple_tensor("LongStorage", "1", &[2]);
        }),
        ("h", &|p| {
            p.simple_tensor("HalfStorage", "2", &[1]);
        }),
    ]);
    let be_f32: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
    let be_i64: Vec<u8> = [7i64, -3].iter().flat_map(|v| v.to_be_bytes()).collect();
    let mut tf = TorchFile::new(pickle, vec![("0", be_f32), ("1", be_i64), ("2", vec![0x3c, 0x00])]);
    tf.byteorder = Some("big");
    let sd = load(&tf).unwrap();
    assert_eq!(f32s(&sd, "f"), [1.5, -2.0]);
    assert_eq!(sd.get("i").unwrap().data, TensorData::I64(vec![7, -3]));
    assert_eq!(sd.get("h").unwrap().data, TensorData::F16(vec![0x3c00]));
    assert_eq!(sd.f32("h").unwrap().1, [1.0]);

    tf.byteorder = Some("middle\n");
    assert!(err(&tf).contains("'middle'"));
}

#[test]
fn older_writers_and_other_layouts() {
    let pickle = state_dict(&[("a", &|p| {
        p.simple_tensor("FloatStorage", "0", &[3]);
    })]);
    let data = f32_bytes(&[1., 2., 3.]);
    // No byteorder record (older torch), any folder name, zip64 end records.
    let mut tf = TorchFile::new(pickle.clone(), vec![("0", data.clone())]);
    tf.byteorder = None;
    tf.folder = "litepose-XS".into();
    tf.zip64 = true;
    assert_eq!(f32s(&load(&tf).unwrap(), "a"), [1., 2., 3.]);

    // Deflated entries.
    let mut entries = vec![entry("ckpt/data.pkl", &pickle), entry("ckpt/data/0", &data)];
    for e in &mut entries {
        e.deflate = true;
    }
    let sd = read_torch(Cursor::new(write_zip(&entries, false)), "deflated.pth").unwrap();
    assert_eq!(f32s(&sd, "a"), [1., 2., 3.]);
}

#[test]
fn every_storage_type() {
    let cases: [(&str, Vec<u8>, TensorData); 10] = [
        ("DoubleStorage", 2.5f64.to_le_bytes().to_vec(), TensorData::F64(vec![2.5])),
        ("HalfStorage", vec![0x00, 0xc0], TensorData::F16(vec![0xc000])),
        ("BFloat16Storage", vec![0x80, 0x3f], TensorData::BF16(vec![0x3f80])),
        ("IntStorage", (-9i32).to_le_bytes().to_vec(), TensorData::I32(vec![-9])),
        ("ShortStorage", (-2i16).to_le_bytes().to_vec(), TensorData::I16(vec![-2])),
        ("CharStorage", vec![0xff], TensorData::I8(vec![-1])),
        ("ByteStorage", vec![200], TensorData::U8(vec![200])),
        ("BoolStorage", vec![1], TensorData::Bool(vec![true])),
        ("FloatStorage", 0.25f32.to_le_bytes().to_vec(), TensorData::F32(vec![0.25])),
        ("LongStorage", (-1i64).to_le_bytes().to_vec(), TensorData::I64(vec![-1])),
    ];
    for (ty, bytes, expected) in cases {
        let pickle = state_dict(&[("t", &|p| {
            p.simple_tensor(ty, "0", &[1]);
        })]);
        let sd = load(&TorchFile::new(pickle, vec![("0", bytes)])).unwrap();
        assert_eq!(sd.get("t").unwrap().data, expected, "{ty}");
    }
    // f32 conversion of the half types is exact.
    assert_eq!(TensorData::F16(vec![0xc000]).f32_values(), [-2.0]);
    assert_eq!(TensorData::BF16(vec![0x3f80]).f32_values(), [1.0]);
    assert_eq!(DType::BF16.name(), "bfloat16");

    // torch.UntypedStorage in a persistent id: bytes.
    let mut p = PickleWriter::new();
    p.empty_dict().str("u").global("torch._utils", "_rebuild_tensor_v2").mark();
    p.mark().str("storage").global("torch.storage", "UntypedStorage").str("0").str("cpu").int(3).tuple().raw(b"Q");
    p.int(0).int_tuple(&[3]).int_tuple(&[1]).raw(&[0x89]).ordered_dict().tuple().reduce().setitem();
    let sd = load(&TorchFile::new(p.stop(), vec![("0", vec![1, 2, 3])])).unwrap();
    assert_eq!(sd.get("u").unwrap().data, TensorData::U8(vec![1, 2, 3]));
}

#[test]
fn parameters_and_tensor_subclass_wrappers() {
    let mut p = PickleWriter::new();
    p.empty_dict().mark();
    // Parameter(tensor, requires_grad=True, hooks)
    p.str("param").global("torch._utils", "_rebuild_parameter").mark();
    p.simple_tensor("FloatStorage", "0", &[2]);
    p.raw(&[0x88]).ordered_dict().tuple().reduce();
    // _rebuild_parameter_with_state(tensor, True, hooks, state)
    p.str("param_state").global("torch._utils", "_rebuild_parameter_with_state").mark();
    p.simple_tensor("FloatStorage", "0", &[2]);
    p.raw(&[0x88]).ordered_dict().empty_dict().tuple().reduce();
    // _rebuild_from_type_v2(_rebuild_tensor_v2, Parameter, (storage, ...), {})
    p.str("subclass").global("torch._tensor", "_rebuild_from_type_v2").mark();
    p.global("torch._utils", "_rebuild_tensor_v2").global("torch.nn.parameter", "Parameter").mark();
    p.persistent_storage("FloatStorage", "0", "cpu", 2)
        .int(1)
        .int_tuple(&[1])
        .int_tuple(&[1])
        .raw(&[0x89])
        .ordered_dict()
        .tuple();
    p.empty_dict().tuple().reduce();
    p.setitems();
    let sd = load(&TorchFile::new(p.stop(), vec![("0", f32_bytes(&[3., 4.]))])).unwrap();
    assert_eq!(f32s(&sd, "param"), [3., 4.]);
    assert_eq!(f32s(&sd, "param_state"), [3., 4.]);
    assert_eq!(f32s(&sd, "subclass"), [4.]);
}

/// `{'epoch': 7, 'best_mIoU': 0.75, 'state_dict': {...}, 'optimizer': {...}}`.
fn wrapper(optimizer_storage: &str) -> Vec<u8> {
    let mut p = PickleWriter::new();
    p.empty_dict().mark();
    p.str("epoch").int(7);
    p.str("best_mIoU").float(0.75);
    // A numpy float64 scalar, as some trainers store metrics: an inert placeholder.
    p.str("best_np").global("numpy.core.multiarray", "scalar");
    p.global("numpy", "dtype").str("f8").raw(&[0x89, 0x88, 0x87]).reduce();
    p.mark().int(3).str("<").raw(b"NNN").int(-1).int(-1).int(0).tuple().raw(b"b");
    p.raw(b"C\x08").raw(&0.5f64.to_le_bytes()).raw(&[0x86]).reduce();
    p.str("state_dict").ordered_dict().mark();
    p.str("model.w").simple_tensor("FloatStorage", "0", &[2]);
    p.setitems();
    p.str("optimizer").empty_dict().mark();
    p.str("state").empty_dict().int(0).empty_dict().str("momentum_buffer");
    p.simple_tensor("FloatStorage", optimizer_storage, &[2]).setitem().setitem();
    p.str("param_groups")
        .raw(b"]")
        .empty_dict()
        .str("lr")
        .float(0.01)
        .setitem()
        .str("params")
        .raw(b"]")
        .int(0)
        .raw(b"a")
        .setitem()
        .raw(b"a");
    p.setitems();
    p.setitems().stop()
}

#[test]
fn wrapper_dict_returns_its_state_dict() {
    let tf = TorchFile::new(wrapper("1"), vec![("0", f32_bytes(&[1., 2.])), ("1", f32_bytes(&[9., 9.]))]);
    let sd = load(&tf).unwrap();
    assert_eq!(sd.names().collect::<Vec<_>>(), ["model.w"]);
    let sd = sd.strip_prefix("model.");
    assert_eq!(f32s(&sd, "w"), [1., 2.]);
    // The optimizer's tensors are never decoded: its storage may even be absent.
    let tf = TorchFile::new(wrapper("99"), vec![("0", f32_bytes(&[1., 2.]))]);
    assert_eq!(load(&tf).unwrap().len(), 1);
}

#[test]
fn strip_prefix_rules() {
    let pickle = state_dict(&[
        ("module.a", &|p| {
            p.simple_tensor("FloatStorage", "0", &[1]);
        }),
        ("a", &|p| {
            p.simple_tensor("FloatStorage", "1", &[1]);
        }),
        ("b", &|p| {
            p.simple_tensor("FloatStorage", "1", &[1]);
        }),
    ]);
    let tf = TorchFile::new(pickle, vec![("0", f32_bytes(&[1.])), ("1", f32_bytes(&[2.]))]);
    let sd = load(&tf).unwrap().strip_prefix("module.");
    assert_eq!(sd.names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(f32s(&sd, "a"), [1.]);
}

#[test]
fn forbidden_globals_are_errors_not_calls() {
    let marker = std::env::temp_dir().join(format!("edgesight-pickle-marker-{}", std::process::id()));
    let cmd = format!("touch {}", marker.display());
    for (module, name) in
        [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("subprocess", "Popen"), ("torch", "load")]
    {
        // GLOBAL form.
        let mut p = PickleWriter::new();
        p.global(module, name).str(&cmd).raw(&[0x85]).reduce();
        let e = err(&TorchFile::new(p.stop(), vec![]));
        assert!(e.contains(&format!("'{module} {name}'")) && e.contains("only state dicts"), "{e}");
        assert!(e.starts_with("checkpoint test.pth: "), "{e}");
        // STACK_GLOBAL form (protocol 4).
        let mut p = PickleWriter::new();
        p.raw(&[0x80, 4]).str(module).str(name).raw(&[0x93]).str(&cmd).raw(&[0x85]).reduce();
        let e = err(&TorchFile::new(p.stop(), vec![]));
        assert!(e.contains(&format!("'{module} {name}'")), "{e}");
    }
    // Hidden in the junk part of a wrapper: still refused.
    let mut p = PickleWriter::new();
    p.empty_dict().str("state_dict").empty_dict().setitem();
    p.str("optimizer").global("os", "system").str(&cmd).raw(&[0x85]).reduce().setitem();
    assert!(err(&TorchFile::new(p.stop(), vec![])).contains("'os system'"));
    assert!(!marker.exists(), "something was executed");
}

#[test]
fn storage_and_view_size_errors() {
    let one = |ty: &'static str, numel: u64, offset: u64, size: &'static [u64], stride: &'static [u64]| {
        state_dict(&[("w", &move |p: &mut PickleWriter| {
            p.tensor(ty, "12", "cpu", numel, offset, size, stride);
        })])
    };
    // The entry is smaller than the storage the tensor declares.
    let e = err(&TorchFile::new(one("FloatStorage", 100, 0, &[100], &[1]), vec![("12", vec![0; 100])]));
    assert!(
        e.contains("entry 'archive/data/12' holds 100 bytes") && e.contains("400 bytes") && e.contains("'w'"),
        "{e}"
    );
    // The view runs past its storage.
    let e = err(&TorchFile::new(one("FloatStorage", 6, 3, &[4], &[1]), vec![("12", vec![0; 24])]));
    assert!(e.contains("reaches element 6") && e.contains("'w'"), "{e}");
    let e = err(&TorchFile::new(one("FloatStorage", 6, 0, &[2, 3], &[4, 1]), vec![("12", vec![0; 24])]));
    assert!(e.contains("reaches element"), "{e}");
    // Absurd sizes: refused from the header numbers alone, with no large allocation.
    let absurd = |tf: TorchFile| {
        let bytes = tf.to_bytes();
        let (result, largest) = largest_allocation(|| read_torch(Cursor::new(&bytes), "test.pth"));
        assert!(largest < 64 << 10, "allocated {largest} bytes");
        format!("{:#}", result.unwrap_err())
    };
    let e = absurd(TorchFile::new(
        one("FloatStorage", 1_000_000_000_000, 0, &[1_000_000_000_000], &[1]),
        vec![("12", vec![0; 16])],
    ));
    assert!(e.contains("holds 16 bytes"), "{e}");
    let e =
        absurd(TorchFile::new(one("FloatStorage", 4, 0, &[1_000_000, 1_000_000], &[1, 1]), vec![("12", vec![0; 16])]));
    assert!(e.contains("limit"), "{e}");
    let e = absurd(TorchFile::new(one("FloatStorage", 4, 0, &[1_000_000_000_000], &[0]), vec![("12", vec![0; 16])]));
    assert!(e.contains("limit"), "{e}");
    let e = err(&TorchFile::new(one("FloatStorage", 4, 0, &[1000], &[0]), vec![("12", vec![0; 16])]));
    assert!(e.contains("storage holds only 4"), "{e}");
    let e = err(&TorchFile::new(one("LongStorage", u64::MAX / 4, 0, &[1], &[1]), vec![("12", vec![0; 16])]));
    assert!(e.contains("storage of"), "{e}");
    let e = err(&TorchFile::new(one("FloatStorage", 4, 0, &[u64::MAX / 2, 4], &[1, 1]), vec![("12", vec![0; 16])]));
    assert!(e.contains("64 bits") || e.contains("limit"), "{e}");
    // Missing storage entry.
    let e = err(&TorchFile::new(one("FloatStorage", 4, 0, &[4], &[1]), vec![]));
    assert!(e.contains("entry 'archive/data/12' is missing"), "{e}");
    // A storage key that tries to leave the data folder.
    let mut p = PickleWriter::new();
    p.empty_dict().str("w").tensor("FloatStorage", "../data.pkl", "cpu", 1, 0, &[1], &[1]).setitem();
    assert!(err(&TorchFile::new(p.stop(), vec![])).contains("not a plain name"));
}

#[test]
fn state_dict_shape_errors() {
    // Non-tensor values are errors naming the key.
    let mut p = PickleWriter::new();
    p.ordered_dict().mark().str("w").simple_tensor("FloatStorage", "0", &[1]).str("epoch").int(3).setitems();
    let e = err(&TorchFile::new(p.stop(), vec![("0", f32_bytes(&[1.]))]));
    assert!(e.contains("'epoch'") && e.contains("not a tensor"), "{e}");
    // Not a dict at all.
    let mut p = PickleWriter::new();
    p.raw(b"]").int(1).raw(b"a");
    assert!(err(&TorchFile::new(p.stop(), vec![])).contains("a list, not a state dict"));
    // 'state_dict' that is not a dict.
    let mut p = PickleWriter::new();
    p.empty_dict().str("state_dict").int(1).setitem();
    assert!(err(&TorchFile::new(p.stop(), vec![])).contains("'state_dict' entry is an int"));
    // Duplicate key.
    let mut p = PickleWriter::new();
    p.empty_dict().mark().str("w").simple_tensor("FloatStorage", "0", &[1]).str("w").simple_tensor(
        "FloatStorage",
        "0",
        &[1],
    );
    p.setitems();
    assert!(err(&TorchFile::new(p.stop(), vec![("0", f32_bytes(&[1.]))])).contains("'w' twice"));
    // Non-string key.
    let mut p = PickleWriter::new();
    p.empty_dict().int(5).simple_tensor("FloatStorage", "0", &[1]).setitem();
    assert!(err(&TorchFile::new(p.stop(), vec![("0", f32_bytes(&[1.]))])).contains("not a string"));
    // An inert placeholder where a tensor should be.
    let mut p = PickleWriter::new();
    p.empty_dict().str("w").global("argparse", "Namespace").empty_tuple().reduce().setitem();
    assert!(err(&TorchFile::new(p.stop(), vec![])).contains("argparse Namespace, not a tensor"));
    // A truncated pickle.
    let mut pickle = state_dict(&[("w", &|p| {
        p.simple_tensor("FloatStorage", "0", &[1]);
    })]);
    pickle.truncate(pickle.len() - 3);
    let e = err(&TorchFile::new(pickle, vec![("0", f32_bytes(&[1.]))]));
    assert!(e.contains("data.pkl") && e.contains("STOP"), "{e}");
}

#[test]
fn other_formats_get_clear_errors() {
    let cases: [(Vec<u8>, &str); 7] = [
        (vec![], "empty"),
        (
            [&[0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19][..], &[0; 20]]
                .concat(),
            "legacy torch serialization",
        ),
        ([&[0u8; 257][..], b"ustar\0", &[0; 300]].concat(), "tar-based"),
        (b"\x80\x04\x95\x10\x00".to_vec(), "bare pickle"),
        (b"\x93NUMPY\x01\x00".to_vec(), ".npy"),
        (b"hello world".to_vec(), "not a zip archive (starts with 68 65 6c 6c)"),
        (write_zip(&[entry("a.npy", b"x")], false), ".npz archive"),
    ];
    for (bytes, want) in cases {
        let e = format!("{:#}", read_torch(Cursor::new(bytes), "x.pth").unwrap_err());
        assert!(e.contains(want) && e.starts_with("checkpoint x.pth: "), "{e}");
    }
    let e = read_torch(Cursor::new(write_zip(&[entry("a/b.txt", b"x")], false)), "x.pth").unwrap_err();
    assert!(e.to_string().contains("no '<folder>/data.pkl'"), "{e}");
    let e = load_torch(Path::new("/nonexistent/dir/model.pth")).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/dir/model.pth") && e.contains("cannot open"), "{e}");
}

#[test]
fn corrupt_zip_entries_are_detected() {
    let pickle = state_dict(&[("w", &|p| {
        p.simple_tensor("FloatStorage", "0", &[2]);
    })]);
    let bytes = TorchFile::new(pickle, vec![("0", f32_bytes(&[1., 2.]))]).to_bytes();
    // Flip a bit inside the storage's payload: the CRC check catches it.
    let at = bytes.windows(8).position(|w| w == f32_bytes(&[1., 2.]).as_slice()).unwrap();
    let mut bad = bytes.clone();
    bad[at] ^= 1;
    let e = format!("{:#}", read_torch(Cursor::new(bad), "x.pth").unwrap_err());
    assert!(e.contains("CRC mismatch") && e.contains("archive/data/0"), "{e}");
    // Truncated file: the end record is gone.
    let e = format!("{:#}", read_torch(Cursor::new(bytes[..bytes.len() - 10].to_vec()), "x.pth").unwrap_err());
    assert!(e.contains("end-of-central-directory"), "{e}");
}
