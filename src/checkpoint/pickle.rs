//! Restricted unpickler. It builds a passive object graph and never runs anything:
//! `GLOBAL` only resolves names on a fixed allowlist (torch tensor rebuilders, storage
//! types, `OrderedDict`, and a few harmless names that become opaque placeholders), and
//! "calls" (`REDUCE`, `NEWOBJ`) are recorded as nodes for the caller to interpret.
//!
//! Containers live in an arena (`Pickle::nodes`) and values refer to them by index, so
//! shared references behave as in Python (a memoised dict filled later is the same dict),
//! cycles cannot leak, and deeply nested input cannot overflow the stack when dropped.
//! Every length read from the input is checked against the bytes left before allocating.

use std::collections::HashMap;
use std::rc::Rc;

use anyhow::{anyhow, bail, Result};

use super::tensor::DType;

/// A global name the unpickler accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    /// `torch.FloatStorage` and friends: the element type of a persistent storage.
    Storage(DType),
    /// `torch.UntypedStorage`: bytes.
    UntypedStorage,
    /// `torch.float32` and friends.
    TorchDtype(DType),
    /// `torch.Tensor` / `torch.nn.parameter.Parameter` as the `new_type` of `_rebuild_from_type_v2`.
    TensorClass,
    /// Harmless names seen in training checkpoints (numpy scalars, argparse namespaces...):
    /// kept as inert placeholders, never called.
    Opaque(&'static str),
}

/// Resolves `module name` against the allowlist.
fn lookup_global(module: &str, name: &str) -> Option<Global> {
    use DType::*;
    let g = match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch", "Tensor") | ("torch._tensor", "Tensor") | ("torch.nn.parameter", "Parameter") => Global::TensorClass,
        ("torch", "UntypedStorage") | ("torch.storage", "UntypedStorage") => Global::UntypedStorage,
        ("torch", storage) if storage.ends_with("Storage") => Global::Storage(match storage {
            "FloatStorage" => F32,
            "DoubleStorage" => F64,
            "HalfStorage" => F16,
            "BFloat16Storage" => BF16,
            "LongStorage" => I64,
            "IntStorage" => I32,
            "ShortStorage" => I16,
            "CharStorage" => I8,
            "ByteStorage" => U8,
            "BoolStorage" => Bool,
            _ => return None,
        }),
        ("torch", "device") => Global::Opaque("torch device"),
        ("torch", dtype) => Global::TorchDtype(match dtype {
            "float32" | "float" => F32,
            "float64" | "double" => F64,
            "float16" | "half" => F16,
            "bfloat16" => BF16,
            "int64" | "long" => I64,
            "int32" | "int" => I32,
            "int16" | "short" => I16,
            "int8" => I8,
            "uint8" => U8,
            "bool" => Bool,
            _ => return None,
        }),
        ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar") => Global::Opaque("numpy scalar"),
        ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => Global::Opaque("numpy array"),
        ("numpy", "dtype") => Global::Opaque("numpy dtype"),
        ("numpy", "ndarray") => Global::Opaque("numpy ndarray"),
        ("_codecs", "encode") => Global::Opaque("bytes"),
        ("builtins" | "__builtin__", "set") => Global::Opaque("set"),
        ("builtins" | "__builtin__", "frozenset") => Global::Opaque("frozenset"),
        ("builtins" | "__builtin__", "slice") => Global::Opaque("slice"),
        ("builtins" | "__builtin__", "complex") => Global::Opaque("complex"),
        ("argparse", "Namespace") => Global::Opaque("argparse Namespace"),
        ("torch.torch_version", "TorchVersion") => Global::Opaque("torch version"),
        _ => return None,
    };
    Some(g)
}

pub(crate) type NodeId = usize;

/// A pickled value. Compound values are arena nodes. Scalar payloads the torch reader never
/// reads are still kept, for `Debug` output and the unpickler's own tests.
#[derive(Clone, Debug)]
#[allow(dead_code)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in 64 bits (kept opaque).
    BigInt,
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Global(Global),
    Node(NodeId),
}

#[derive(Debug)]
pub(crate) enum Node {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Insertion order kept; duplicate keys are kept too (the caller decides).
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    /// `func(*args)` as recorded by REDUCE / NEWOBJ; `func` is an allowlisted callable.
    Call {
        func: Global,
        args: Value,
    },
    /// The result of `persistent_load(pid)`.
    PersistentId(Value),
}

pub(crate) struct Pickle {
    pub nodes: Vec<Node>,
    pub root: Value,
}

impl Pickle {
    pub fn node(&self, v: &Value) -> Option<&Node> {
        match v {
            Value::Node(id) => self.nodes.get(*id),
            _ => None,
        }
    }

    /// A short description of a value for error messages.
    pub fn kind(&self, v: &Value) -> &'static str {
        match v {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) | Value::BigInt => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Bytes(_) => "bytes",
            Value::Global(_) => "a python class or function",
            Value::Node(_) => match self.node(v) {
                Some(Node::Tuple(_)) => "a tuple",
                Some(Node::List(_)) => "a list",
                Some(Node::Dict(_)) => "a dict",
                Some(Node::Set(_)) => "a set",
                Some(Node::Call { func: Global::Opaque(name), .. }) => name,
                Some(Node::Call { .. }) => "a tensor",
                Some(Node::PersistentId(_)) => "a storage",
                None => "a dangling reference",
            },
        }
    }
}

/// Parses a pickle (protocols 2 to 5, the binary opcodes torch and plain containers use).
pub(crate) fn unpickle(data: &[u8]) -> Result<Pickle> {
    let mut m = Machine { data, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), nodes: Vec::new() };
    loop {
        let at = m.pos;
        let op = m.take(1).map_err(|_| anyhow!("pickle ends at byte {at} without a STOP opcode"))?[0];
        match m.step(op) {
            Ok(true) => {}
            Ok(false) => {
                let root = m.pop().map_err(|e| anyhow!("pickle opcode STOP at byte {at}: {e}"))?;
                return Ok(Pickle { nodes: m.nodes, root });
            }
            Err(e) if e.is::<Forbidden>() => return Err(e),
            Err(e) => bail!("pickle opcode {} at byte {at}: {e}", op_name(op)),
        }
    }
}

/// A global outside the allowlist: reported as is, the message stands on its own.
#[derive(Debug)]
struct Forbidden(String);

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "references python object '{}'; only state dicts (tensors in plain containers) are accepted", self.0)
    }
}

impl std::error::Error for Forbidden {}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack heights at each MARK; values below the top mark are out of reach, as in Python.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    nodes: Vec<Node>,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if n > self.data.len() - self.pos {
            bail!("needs {n} bytes but only {} are left", self.data.len() - self.pos);
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }

    /// A length prefix, checked against the bytes left.
    fn len_bytes(&mut self, len: u64) -> Result<&[u8]> {
        let left = (self.data.len() - self.pos) as u64;
        if len > left {
            bail!("declares {len} bytes but only {left} are left");
        }
        self.take(len as usize)
    }

    /// A newline-terminated line (for GLOBAL), at most 1024 bytes.
    fn line(&mut self) -> Result<&str> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().take(1024).position(|&b| b == b'\n').ok_or_else(|| anyhow!("missing newline"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| anyhow!("name is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn push_node(&mut self, n: Node) {
        self.nodes.push(n);
        self.stack.push(Value::Node(self.nodes.len() - 1));
    }

    fn pop(&mut self) -> Result<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            bail!("stack underflow");
        }
        Ok(self.stack.pop().expect("checked non-empty"))
    }

    fn top(&self) -> Result<&Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            bail!("stack underflow");
        }
        Ok(self.stack.last().expect("checked non-empty"))
    }

    /// Pops everything above the top mark, and the mark.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let mark = self.marks.pop().ok_or_else(|| anyhow!("no MARK on the stack"))?;
        Ok(self.stack.split_off(mark))
    }

    fn str_value(&mut self, bytes_len: u64) -> Result<Value> {
        let b = self.len_bytes(bytes_len)?;
        let s = std::str::from_utf8(b).map_err(|_| anyhow!("string is not valid UTF-8"))?;
        Ok(Value::Str(Rc::from(s)))
    }

    /// Python 2 `str`: text when it is UTF-8, bytes otherwise.
    fn py2_str_value(&mut self, bytes_len: u64) -> Result<Value> {
        let b = self.len_bytes(bytes_len)?;
        Ok(match std::str::from_utf8(b) {
            Ok(s) => Value::Str(Rc::from(s)),
            Err(_) => Value::Bytes(Rc::from(b)),
        })
    }

    fn bytes_value(&mut self, len: u64) -> Result<Value> {
        Ok(Value::Bytes(Rc::from(self.len_bytes(len)?)))
    }

    /// Little-endian two's-complement integer of `n` bytes (LONG1 / LONG4).
    fn long_value(&mut self, n: u64) -> Result<Value> {
        let b = self.len_bytes(n)?;
        if b.is_empty() {
            return Ok(Value::Int(0));
        }
        let negative = b[b.len() - 1] & 0x80 != 0;
        let fill = if negative { 0xff } else { 0 };
        if b.len() > 8 && b[8..].iter().any(|&x| x != fill) {
            return Ok(Value::BigInt);
        }
        let mut buf = [fill; 8];
        let n = b.len().min(8);
        buf[..n].copy_from_slice(&b[..n]);
        let v = i64::from_le_bytes(buf);
        // The sign must survive truncation to 8 bytes.
        if (v < 0) != negative {
            return Ok(Value::BigInt);
        }
        Ok(Value::Int(v))
    }

    fn node_mut(&mut self, v: &Value) -> Option<&mut Node> {
        match v {
            Value::Node(id) => self.nodes.get_mut(*id),
            _ => None,
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        match lookup_global(module, name) {
            Some(g) => {
                self.push(Value::Global(g));
                Ok(())
            }
            None => Err(Forbidden(format!("{module} {name}")).into()),
        }
    }

    /// `callable(*args)` for REDUCE and NEWOBJ: records a node, runs nothing.
    fn call(&mut self, callable: Value, args: Value) -> Result<()> {
        let Value::Global(func) = callable else {
            bail!("calls something that is not an allowed class or function");
        };
        let no_args = match self.node_mut(&args) {
            Some(Node::Tuple(items)) => items.is_empty(),
            _ => bail!("arguments are not a tuple"),
        };
        match func {
            Global::OrderedDict => {
                if !no_args {
                    bail!("OrderedDict with constructor arguments is not supported");
                }
                self.push_node(Node::Dict(Vec::new()));
            }
            Global::Storage(_) | Global::UntypedStorage | Global::TorchDtype(_) | Global::TensorClass => {
                bail!("calls {func:?}, which a state dict never does");
            }
            _ => self.push_node(Node::Call { func, args }),
        }
        Ok(())
    }

    fn memo_get(&self, key: u32) -> Result<Value> {
        self.memo.get(&key).cloned().ok_or_else(|| anyhow!("memo key {key} was never stored"))
    }

    fn memo_put(&mut self, key: u32) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    /// Executes one opcode; returns false on STOP.
    fn step(&mut self, op: u8) -> Result<bool> {
        match op {
            0x80 => {
                // PROTO
                let p = self.u8()?;
                if !(2..=5).contains(&p) {
                    bail!("protocol {p} is not supported (2 to 5 are)");
                }
            }
            0x95 => {
                // FRAME: only a hint for buffered readers; check the length and go on.
                let n = self.u64()?;
                if n > (self.data.len() - self.pos) as u64 {
                    bail!("frame of {n} bytes runs past the end");
                }
            }
            b'.' => return Ok(false),
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.top()?.clone();
                self.push(v);
            }
            b'N' => self.push(Value::None),
            0x88 => self.push(Value::Bool(true)),
            0x89 => self.push(Value::Bool(false)),
            b'J' => {
                let v = self.u32()? as i32;
                self.push(Value::Int(v.into()));
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Value::Int(v.into()));
            }
            b'M' => {
                let v = self.u16()?;
                self.push(Value::Int(v.into()));
            }
            0x8a => {
                let n = self.u8()?;
                let v = self.long_value(n.into())?;
                self.push(v);
            }
            0x8b => {
                let n = self.u32()? as i32;
                if n < 0 {
                    bail!("negative length");
                }
                let v = self.long_value(n as u64)?;
                self.push(v);
            }
            b'G' => {
                let v = f64::from_be_bytes(self.take(8)?.try_into()?);
                self.push(Value::Float(v));
            }
            b'X' => {
                let n = self.u32()?;
                let v = self.str_value(n.into())?;
                self.push(v);
            }
            0x8c => {
                let n = self.u8()?;
                let v = self.str_value(n.into())?;
                self.push(v);
            }
            0x8d => {
                let n = self.u64()?;
                let v = self.str_value(n)?;
                self.push(v);
            }
            b'T' => {
                let n = self.u32()? as i32;
                if n < 0 {
                    bail!("negative length");
                }
                let v = self.py2_str_value(n as u64)?;
                self.push(v);
            }
            b'U' => {
                let n = self.u8()?;
                let v = self.py2_str_value(n.into())?;
                self.push(v);
            }
            b'B' => {
                let n = self.u32()?;
                let v = self.bytes_value(n.into())?;
                self.push(v);
            }
            b'C' => {
                let n = self.u8()?;
                let v = self.bytes_value(n.into())?;
                self.push(v);
            }
            0x8e | 0x96 => {
                // BINBYTES8, BYTEARRAY8
                let n = self.u64()?;
                let v = self.bytes_value(n)?;
                self.push(v);
            }
            b')' => self.push_node(Node::Tuple(Vec::new())),
            b't' => {
                let items = self.pop_mark()?;
                self.push_node(Node::Tuple(items));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push_node(Node::Tuple(items));
            }
            b']' => self.push_node(Node::List(Vec::new())),
            b'l' => {
                let items = self.pop_mark()?;
                self.push_node(Node::List(items));
            }
            b'}' => self.push_node(Node::Dict(Vec::new())),
            b'd' => {
                let items = self.pop_mark()?;
                let pairs = pairs(items)?;
                self.push_node(Node::Dict(pairs));
            }
            0x8f => self.push_node(Node::Set(Vec::new())),
            0x91 => {
                let items = self.pop_mark()?;
                self.push_node(Node::Set(items));
            }
            b'a' => {
                let v = self.pop()?;
                let target = self.top()?.clone();
                match self.node_mut(&target) {
                    Some(Node::List(items)) => items.push(v),
                    _ => bail!("target is not a list"),
                }
            }
            b'e' => {
                let vs = self.pop_mark()?;
                let target = self.top()?.clone();
                match self.node_mut(&target) {
                    Some(Node::List(items)) => items.extend(vs),
                    _ => bail!("target is not a list"),
                }
            }
            0x90 => {
                let vs = self.pop_mark()?;
                let target = self.top()?.clone();
                match self.node_mut(&target) {
                    Some(Node::Set(items)) => items.extend(vs),
                    _ => bail!("target is not a set"),
                }
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                let target = self.top()?.clone();
                match self.node_mut(&target) {
                    Some(Node::Dict(items)) => items.push((k, v)),
                    _ => bail!("target is not a dict"),
                }
            }
            b'u' => {
                let vs = self.pop_mark()?;
                let new = pairs(vs)?;
                let target = self.top()?.clone();
                match self.node_mut(&target) {
                    Some(Node::Dict(items)) => items.extend(new),
                    _ => bail!("target is not a dict"),
                }
            }
            b'c' => {
                let module = self.line()?.to_owned();
                let name = self.line()?.to_owned();
                self.global(&module, &name)?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    bail!("module and name are not strings");
                };
                self.global(&module, &name)?;
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                self.call(callable, args)?;
            }
            0x81 => {
                // NEWOBJ: cls.__new__(cls, *args)
                let args = self.pop()?;
                let cls = self.pop()?;
                self.call(cls, args)?;
            }
            0x92 => {
                // NEWOBJ_EX: keyword arguments are dropped with the placeholder semantics.
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                self.call(cls, args)?;
            }
            b'b' => {
                // BUILD sets attributes (e.g. a state dict's `_metadata`): nothing to keep.
                let _state = self.pop()?;
                let target = self.top()?.clone();
                match self.node_mut(&target) {
                    Some(Node::Dict(_)) | Some(Node::Call { .. }) => {}
                    _ => bail!("BUILD on something that is not an object"),
                }
            }
            b'Q' => {
                let pid = self.pop()?;
                self.push_node(Node::PersistentId(pid));
            }
            b'q' => {
                let k = self.u8()?;
                self.memo_put(k.into())?;
            }
            b'r' => {
                let k = self.u32()?;
                self.memo_put(k)?;
            }
            0x94 => {
                let k = u32::try_from(self.memo.len())?;
                self.memo_put(k)?;
            }
            b'h' => {
                let k = self.u8()?;
                let v = self.memo_get(k.into())?;
                self.push(v);
            }
            b'j' => {
                let k = self.u32()?;
                let v = self.memo_get(k)?;
                self.push(v);
            }
            _ => bail!("is not supported by this restricted unpickler"),
        }
        Ok(true)
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
    if items.len() % 2 != 0 {
        bail!("odd number of items for a dict");
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn op_name(op: u8) -> String {
    let name = match op {
        0x80 => "PROTO",
        0x95 => "FRAME",
        b'.' => "STOP",
        b'(' => "MARK",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'N' => "NONE",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'M' => "BININT2",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'G' => "BINFLOAT",
        b'X' => "BINUNICODE",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8e => "BINBYTES8",
        0x96 => "BYTEARRAY8",
        b')' => "EMPTY_TUPLE",
        b't' => "TUPLE",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        b']' => "EMPTY_LIST",
        b'l' => "LIST",
        b'}' => "EMPTY_DICT",
        b'd' => "DICT",
        0x8f => "EMPTY_SET",
        0x91 => "FROZENSET",
        b'a' => "APPEND",
        b'e' => "APPENDS",
        0x90 => "ADDITEMS",
        b's' => "SETITEM",
        b'u' => "SETITEMS",
        b'c' => "GLOBAL",
        0x93 => "STACK_GLOBAL",
        b'R' => "REDUCE",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        b'b' => "BUILD",
        b'Q' => "BINPERSID",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        0x94 => "MEMOIZE",
        b'h' => "BINGET",
        b'j' => "LONG_BINGET",
        b'i' => "INST",
        b'o' => "OBJ",
        b'P' => "PERSID",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        0x82..=0x84 => "EXT",
        _ => return format!("0x{op:02x}"),
    };
    format!("{name} (0x{op:02x})")
}
