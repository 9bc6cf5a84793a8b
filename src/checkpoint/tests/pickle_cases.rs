//! The restricted unpickler on plain containers and on malformed opcode streams.

use super::super::pickle::{unpickle, Node, Pickle, Value};
use super::writer::PickleWriter;

fn items<'a>(p: &'a Pickle, v: &Value) -> &'a [Value] {
    match p.node(v) {
        Some(Node::Tuple(x) | Node::List(x) | Node::Set(x)) => x,
        other => panic!("not a sequence: {other:?}"),
    }
}

#[test]
fn plain_containers_and_scalars() {
    // {'a': [1, -2, 3.5, 'x', b'yz', None, True], 'b': (2**40, -(2**70)), 's': frozenset({1})}
    let mut p = PickleWriter::new();
    p.empty_dict().mark();
    p.str("a").raw(b"]").mark().int(1).raw(b"J").raw(&(-2i32).to_le_bytes()).float(3.5);
    p.raw(&[0x8c, 1]).raw(b"x").raw(b"C\x02yz").raw(b"N").raw(&[0x88]).raw(b"e");
    p.str("b").raw(&[0x8a, 6]).raw(&(1u64 << 40).to_le_bytes()[..6]);
    p.raw(&[0x8a, 9]).raw(&[0, 0, 0, 0, 0, 0, 0, 0, 0xc0]).raw(&[0x86]);
    p.str("s").mark().int(1).raw(&[0x91]);
    p.setitems();
    let pk = unpickle(&p.stop()).unwrap();
    let Some(Node::Dict(d)) = pk.node(&pk.root) else { panic!("root") };
    let keys: Vec<String> = d.iter().map(|(k, _)| format!("{k:?}")).collect();
    assert_eq!(keys, [r#"Str("a")"#, r#"Str("b")"#, r#"Str("s")"#]);
    let a = items(&pk, &d[0].1);
    assert_eq!(format!("{a:?}"), r#"[Int(1), Int(-2), Float(3.5), Str("x"), Bytes([121, 122]), None, Bool(true)]"#);
    let b = items(&pk, &d[1].1);
    assert_eq!(format!("{b:?}"), "[Int(1099511627776), BigInt]");
    assert_eq!(format!("{:?}", items(&pk, &d[2].1)), "[Int(1)]");
}

#[test]
fn memo_shares_mutable_containers() {
    // d = {}; outer = [d, d]; then d['k'] = 1 through the memo: both references see it.
    let mut p = PickleWriter::new();
    p.raw(b"]");
    p.empty_dict();
    let d = p.put();
    p.raw(b"a").get(d).raw(b"a").get(d).str("k").int(1).setitem().raw(b"0");
    let pk = unpickle(&p.stop()).unwrap();
    let outer = items(&pk, &pk.root);
    for v in outer {
        let Some(Node::Dict(kv)) = pk.node(v) else { panic!() };
        assert_eq!(kv.len(), 1);
    }
}

#[test]
fn malformed_streams_are_errors() {
    let cases: [(&[u8], &str); 14] = [
        (b"", "without a STOP"),
        (b"\x80\x02", "without a STOP"),
        (b"\x80\x02.", "STOP"),
        (b"\x80\x09N.", "protocol 9"),
        (b"\x80\x02a.", "APPEND"),
        (b"\x80\x02N(\x85.", "stack underflow"),
        (b"\x80\x02Nt.", "no MARK"),
        (b"\x80\x02h\x05.", "memo key 5"),
        (b"\x80\x02X\xff\xff\xff\x7fabc.", "declares 2147483647 bytes"),
        (b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xffabc.", "bytes but only"),
        (b"\x80\x02X\x02\x00\x00\x00\xff\xfe.", "UTF-8"),
        (b"\x80\x02}(Nu.", "odd number"),
        (b"\x80\x02cos\nsystem\n.", "'os system'"),
        (b"\x80\x02i__main__\nX\n.", "INST"),
    ];
    for (bytes, want) in cases {
        let e = format!("{:#}", unpickle(bytes).err().unwrap_or_else(|| panic!("{bytes:?} parsed")));
        assert!(e.contains(want), "{bytes:?}: {e}");
    }
    // Calling a storage class or a dtype is refused.
    let mut p = PickleWriter::new();
    p.global("torch", "FloatStorage").empty_tuple().reduce();
    assert!(format!("{:#}", unpickle(&p.stop()).err().unwrap()).contains("never does"));
    // Unknown torch names are forbidden like any other global.
    let mut p = PickleWriter::new();
    p.global("torch", "QInt8Storage");
    assert!(format!("{:#}", unpickle(&p.stop()).err().unwrap()).contains("'torch QInt8Storage'"));
}

#[test]
fn deep_nesting_and_cycles_are_harmless() {
    // 200k nested tuples: the arena keeps drops and parsing iterative.
    let mut bytes = vec![0x80, 2, b'N'];
    bytes.extend(std::iter::repeat_n(0x85u8, 200_000));
    bytes.push(b'.');
    assert!(unpickle(&bytes).is_ok());
    // A list that contains itself.
    let mut p = PickleWriter::new();
    p.raw(b"]");
    let l = p.put();
    p.get(l).raw(b"a");
    let pk = unpickle(&p.stop()).unwrap();
    assert_eq!(items(&pk, &pk.root).len(), 1);
}
