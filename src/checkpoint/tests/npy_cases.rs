//! .npy / .npz: byte strings written by numpy 2.4 (np.save, np.lib.format.write_array,
//! np.savez_compressed), plus hand-made bad headers.

use std::io::Cursor;

use super::super::{parse_npy, read_npz, Array, TensorData};
use super::writer::{entry, npy, write_zip, ZipEntry};

const FORTRAN_F4: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }                                                           \x0a\x00\x00\x00\x00\x00\x00@@\x00\x00\x80?\x00\x00\x80@\x00\x00\x00@\x00\x00\xa0@";
const BIG_I8: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '>i8', 'fortran_order': False, 'shape': (3,), }                                                            \x0a\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01";
const BIG_F4: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }                                                            \x0a?\xc0\x00\x00\xc0\x00\x00\x00";
const SCALAR_BOOL: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '|b1', 'fortran_order': False, 'shape': (), }                                                              \x0a\x01";
const V2_F8: &[u8] = b"\x93NUMPY\x02\x00t\x00\x00\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }                                                          \x0a\x00\x00\x00\x00\x00\x00\xf8?\x00\x00\x00\x00\x00\x00\x00\xc0";
const V3_I2: &[u8] = b"\x93NUMPY\x03\x00t\x00\x00\x00{'descr': '<i2', 'fortran_order': False, 'shape': (2, 2), }                                                        \x0a\x01\x00\x02\x00\x03\x00\x04\x00";
/// np.savez_compressed(f, a=np.arange(4, dtype='<f4'), b=np.array(7, dtype='<i8')): deflated, zip64 local extras.
pub const NPZ_DEFLATED: &[u8] = b"PK\x03\x04-\x00\x00\x00\x08\x00\x00\x00!\x00R3\x13\xfb\xff\xff\xff\xff\xff\xff\xff\xff\x05\x00\x14\x00a.npy\x01\x00\x10\x00\x90\x00\x00\x00\x00\x00\x00\x00N\x00\x00\x00\x00\x00\x00\x00\x9b\xec\x17\xea\x1b\x10\xc9\xc8P\xc6P\xad\x9e\x92Z\x9c\x5c\xa4n\xa5\xa0n\x93f\xa2\xae\xa3\xa0\x9e\x96_TR\x94\x98\x17\x9f_\x94\x92\x0a\x12wK\xcc)N\x05\x8a\x17g$\x16\xa4\x02\xf9\x1a&:\x9a:\x0a\xb5\x0a\x14\x00.\x060h\xb0\x07\x12\x0e@\xe4\x00\x00PK\x03\x04-\x00\x00\x00\x08\x00\x00\x00!\x00#\xb8\xf0l\xff\xff\xff\xff\xff\xff\xff\xff\x05\x00\x14\x00b.npy\x01\x00\x10\x00\x88\x00\x00\x00\x00\x00\x00\x00F\x00\x00\x00\x00\x00\x00\x00\x9b\xec\x17\xea\x1b\x10\xc9\xc8P\xc6P\xad\x9e\x92Z\x9c\x5c\xa4n\xa5\xa0n\x93i\xa1\xae\xa3\xa0\x9e\x96_TR\x94\x98\x17\x9f_\x94\x92\x0a\x12wK\xcc)N\x05\x8a\x17g$\x16\xa4\x02\xf9\x1a\x9a:\x0a\xb5\x0a\x14\x01.v\x06\x08\x00\x00PK\x01\x02-\x03-\x00\x00\x00\x08\x00\x00\x00!\x00R3\x13\xfbN\x00\x00\x00\x90\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x01\x00\x00\x00\x00a.npyPK\x01\x02-\x03-\x00\x00\x00\x08\x00\x00\x00!\x00#\xb8\xf0lF\x00\x00\x00\x88\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x01\x85\x00\x00\x00b.npyPK\x05\x06\x00\x00\x00\x00\x02\x00\x02\x00f\x00\x00\x00\x02\x01\x00\x00\x00\x00";

fn arr(bytes: &[u8]) -> Array {
    parse_npy(bytes).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A format 1.0 file with exactly this header text.
fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

fn npy_err(bytes: &[u8]) -> String {
    format!("{:#}", parse_npy(bytes).expect_err("should fail"))
}

#[test]
fn numpy_written_arrays() {
    // Fortran order [[0,1,2],[3,4,5]] is stored column-major and comes back row-major.
    let a = arr(FORTRAN_F4);
    assert_eq!(a.shape, [2, 3]);
    assert_eq!(a.data, TensorData::F32(vec![0., 1., 2., 3., 4., 5.]));
    assert_eq!(arr(BIG_I8).data, TensorData::I64(vec![-1, 0, 1]));
    assert_eq!(arr(BIG_F4).data, TensorData::F32(vec![1.5, -2.0]));
    let s = arr(SCALAR_BOOL);
    assert!(s.shape.is_empty());
    assert_eq!(s.data, TensorData::Bool(vec![true]));
    assert_eq!(arr(V2_F8).data, TensorData::F64(vec![1.5, -2.0]));
    let v3 = arr(V3_I2);
    assert_eq!((v3.shape.clone(), v3.data.clone()), (vec![2, 2], TensorData::I16(vec![1, 2, 3, 4])));
    assert_eq!(v3.f32_values(), [1., 2., 3., 4.]);
}

#[test]
fn hand_made_headers() {
    let f = |v: f32| v.to_le_bytes();
    assert_eq!(arr(&npy("<f4", false, "(0, 3)", &[])).shape, [0, 3]);
    assert_eq!(arr(&npy("|u1", false, "(2,)", &[7, 9])).data, TensorData::U8(vec![7, 9]));
    assert_eq!(arr(&npy("|i1", false, "(1,)", &[0xfe])).data, TensorData::I8(vec![-2]));
    assert_eq!(arr(&npy("<f2", false, "(1,)", &[0x00, 0x3c])).f32_values(), [1.0]);
    assert_eq!(
        arr(&npy("<i4", true, "(2, 2)", &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0])).data,
        TensorData::I32(vec![1, 3, 2, 4])
    );
    // Python 2 longs, other key order, double quotes, 3-d Fortran.
    let a = arr(&npy("<f4", false, "(1L, 2L)", &[f(1.0), f(2.0)].concat()));
    assert_eq!(a.shape, [1, 2]);
    let b = with_header(
        "{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"<i8\"}\n",
        &[5, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(arr(&b).data, TensorData::I64(vec![5, 6]));
    // shape (2, 1, 3) in Fortran order: element [i,0,k] sits at i + 2k.
    let data: Vec<u8> = [0.0f32, 3.0, 1.0, 4.0, 2.0, 5.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(arr(&npy("<f4", true, "(2, 1, 3)", &data)).data, TensorData::F32(vec![0., 1., 2., 3., 4., 5.]));
}

#[test]
fn bad_arrays_are_clear_errors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"PK\x03\x04".to_vec(), "not a .npy file"),
        (b"\x93NUMPY\x04\x00\x00\x00".to_vec(), "version 4.0"),
        (b"\x93NUMPY\x01\x00\xff\x00{".to_vec(), "runs past the end"),
        (b"\x93NUMPY\x02\x00\xff\xff\xff\xff{".to_vec(), "over the 65536-byte limit"),
        (npy("<f4", false, "(3,)", &[0; 8]), "needs 12 data bytes but the file holds 8"),
        (npy("<f4", false, "(1,)", &[0; 8]), "needs 4 data bytes but the file holds 8"),
        (npy("<f4", false, "(1000000000000,)", &[0; 8]), "limit"),
        (npy("<f4", false, "(4294967296, 4294967296, 4294967296)", &[]), "overflows"),
        (npy("<f4", false, "(99999999999999999999999,)", &[]), "too large"),
        (npy("<c8", false, "(1,)", &[0; 8]), "'<c8' is not supported"),
        (npy("<U3", false, "(1,)", &[0; 12]), "'<U3' is not supported"),
        (npy("f4", false, "(1,)", &[0; 4]), "no byte-order mark"),
        (npy("<f4", false, "(1.5,)", &[0; 4]), "expected ','"),
        (npy("<f4", false, "((1,),)", &[0; 4]), "non-integer"),
        (npy("<f4", false, "(-1,)", &[0; 4]), "unexpected character"),
        (npy("<f4", false, "[1]", &[0; 4]), "malformed header key"),
        (npy("<f4", false, "((((((((((1,),),),),),),),),),)", &[0; 4]), "nests too deeply"),
    ];
    for (bytes, want) in cases {
        let e = npy_err(&bytes);
        assert!(e.contains(want), "want {want:?}: {e}");
    }
    // Structured dtypes, missing keys, junk after the dict.
    let s = with_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n", &[0; 4]);
    assert!(npy_err(&s).contains("structured"));
    let m = with_header("{'descr': '<f4', 'shape': ()}\n", &[0; 4]);
    assert!(npy_err(&m).contains("no 'fortran_order'"));
    let j = with_header("{'descr': '<f4', 'fortran_order': False, 'shape': ()} x\n", &[0; 4]);
    assert!(npy_err(&j).contains("after the header dict"));
    let q = with_header("{'descr': '<f4\\', 'fortran_order': False, 'shape': ()}\n", &[0; 4]);
    assert!(npy_err(&q).contains("escapes"));
    let u = with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (", &[]);
    assert!(npy_err(&u).contains("ends early"));
}

#[test]
fn npz_archives() {
    let arrays = read_npz(Cursor::new(NPZ_DEFLATED), "small.npz").unwrap();
    assert_eq!(arrays.len(), 2);
    assert_eq!((arrays[0].name.as_str(), arrays[0].shape.clone()), ("a", vec![4]));
    assert_eq!(arrays[0].data, TensorData::F32(vec![0., 1., 2., 3.]));
    assert_eq!((arrays[1].name.as_str(), arrays[1].shape.clone()), ("b", vec![]));
    assert_eq!(arrays[1].data, TensorData::I64(vec![7]));

    // Stored entries and names in folders.
    let zip = write_zip(
        &[
            entry("x.npy", &npy("<f4", false, "(1,)", &1f32.to_le_bytes())),
            entry("sub/y.npy", &npy("|u1", false, "()", &[3])),
        ],
        false,
    );
    let arrays = read_npz(Cursor::new(zip), "s.npz").unwrap();
    assert_eq!(arrays.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["x", "sub/y"]);

    let zip = write_zip(&[entry("x.txt", b"hi")], false);
    let e = format!("{:#}", read_npz(Cursor::new(zip), "t.npz").unwrap_err());
    assert!(e.starts_with("npz t.npz: ") && e.contains("'x.txt' is not an .npy"), "{e}");
    let zip = write_zip(&[entry("x.npy", &npy("<f4", false, "(2,)", &[0; 4]))], false);
    let e = format!("{:#}", read_npz(Cursor::new(zip), "t.npz").unwrap_err());
    assert!(e.contains("entry 'x.npy'") && e.contains("needs 8 data bytes"), "{e}");
    // A deflated entry whose size field lies.
    let z = ZipEntry { name: "x.npy".into(), data: npy("<f4", false, "(1,)", &[0; 4]), deflate: true };
    let good = write_zip(std::slice::from_ref(&z), false);
    assert!(read_npz(Cursor::new(good.clone()), "d.npz").is_ok());
    let mut bad = good.clone();
    let cd = bad.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
    bad[cd + 24] = bad[cd + 24].wrapping_add(1); // uncompressed size + 1
    let e = format!("{:#}", read_npz(Cursor::new(bad), "d.npz").unwrap_err());
    assert!(e.contains("inflates to"), "{e}");
}
