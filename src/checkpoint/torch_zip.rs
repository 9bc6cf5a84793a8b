//! torch.save zip checkpoints (torch >= 1.6): `<folder>/data.pkl` plus raw storages in
//! `<folder>/data/<key>`, optionally `<folder>/byteorder`. The pickle is read with the
//! restricted unpickler, the state dict is located in it, and every tensor view is checked
//! against its storage entry before any tensor memory is allocated.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::rc::Rc;

use anyhow::{anyhow, bail, Context, Result};

use super::pickle::{unpickle, Global, Node, Pickle, Value};
use super::tensor::{check_layout, gather, DType, Layout, MAX_TENSOR_BYTES};
use super::zip::ZipArchive;
use super::{NamedTensor, StateDict};

/// Upper bound for data.pkl: ~400k tensors' worth, and it bounds the unpickler's memory.
const MAX_PICKLE_BYTES: u64 = 64 << 20;
/// How deep parameter / subclass wrappers around a tensor may nest.
const MAX_WRAPPER_DEPTH: usize = 8;

/// Reads a torch.save zip checkpoint from any seekable source; `label` names it in errors.
pub fn read_torch<R: Read + Seek>(reader: R, label: &str) -> Result<StateDict> {
    read(reader).map_err(|e| anyhow!("checkpoint {label}: {e:#}"))
}

/// Whether `reader` is a zip archive laid out as torch.save writes it (one `<folder>/data.pkl`);
/// the reason when it is not (another zip, an .npz, not a zip at all).
pub fn check_torch_layout<R: Read + Seek>(reader: R) -> Result<()> {
    let zip = ZipArchive::new(reader).context("not a valid zip archive")?;
    find_folder(&zip).map(|_| ())
}

fn read<R: Read + Seek>(mut reader: R) -> Result<StateDict> {
    sniff(&mut reader)?;
    let mut zip = ZipArchive::new(reader).context("not a valid zip archive")?;
    let folder = find_folder(&zip)?;
    let big_endian = match zip.find(&format!("{folder}/byteorder")) {
        // Writers before the byteorder record only ran on little-endian machines.
        None => false,
        Some(_) => {
            let raw = zip.read(&format!("{folder}/byteorder"), 16)?;
            match String::from_utf8_lossy(&raw).trim() {
                "little" => false,
                "big" => true,
                other => bail!("entry '{folder}/byteorder' says '{other}', expected 'little' or 'big'"),
            }
        }
    };
    let pkl_name = format!("{folder}/data.pkl");
    let pkl = zip.read(&pkl_name, MAX_PICKLE_BYTES)?;
    let pickle = unpickle(&pkl).with_context(|| format!("entry '{pkl_name}'"))?;
    let dict = find_state_dict(&pickle)?;

    // Pass 1: resolve and check every tensor without touching storage bytes.
    let mut specs = Vec::with_capacity(dict.len());
    let mut seen = HashSet::with_capacity(dict.len());
    let mut total_bytes = 0u64;
    for (key, value) in dict {
        let Value::Str(name) = key else {
            bail!("the state dict has a key that is {}, not a string", pickle.kind(key));
        };
        if !seen.insert(name.clone()) {
            bail!("the state dict has key '{name}' twice");
        }
        let spec = resolve_tensor(&pickle, value, 0).with_context(|| format!("state dict entry '{name}'"))?;
        let entry_name = format!("{folder}/data/{}", spec.key);
        let entry = zip.find(&entry_name).ok_or_else(|| {
            anyhow!("tensor '{name}' uses storage '{}' but entry '{entry_name}' is missing", spec.key)
        })?;
        let needed = spec.storage_numel.checked_mul(spec.dtype.size() as u64);
        if needed != Some(entry.size) {
            bail!(
                "entry '{entry_name}' holds {} bytes but tensor '{name}' declares a storage of {} {} elements ({} bytes)",
                entry.size,
                spec.storage_numel,
                spec.dtype,
                needed.map_or_else(|| "too many".to_string(), |n| n.to_string())
            );
        }
        let layout = Layout { offset: spec.offset, shape: &spec.shape, strides: &spec.strides };
        let numel =
            check_layout(&layout, spec.storage_numel, spec.dtype).with_context(|| format!("tensor '{name}'"))?;
        total_bytes += numel * spec.dtype.size() as u64;
        if total_bytes > MAX_TENSOR_BYTES {
            bail!("tensors add up to more than the {} GiB limit", MAX_TENSOR_BYTES >> 30);
        }
        specs.push((name.clone(), entry_name, spec));
    }

    // Pass 2: decode. Consecutive tensors often share a storage: keep the last one read.
    let mut cached: Option<(String, Vec<u8>)> = None;
    let mut tensors = Vec::with_capacity(specs.len());
    for (name, entry_name, spec) in specs {
        if cached.as_ref().is_none_or(|(n, _)| *n != entry_name) {
            let bytes = zip.read(&entry_name, MAX_TENSOR_BYTES)?;
            cached = Some((entry_name, bytes));
        }
        let bytes = &cached.as_ref().expect("just filled").1;
        let layout = Layout { offset: spec.offset, shape: &spec.shape, strides: &spec.strides };
        let data = gather(spec.dtype, bytes, big_endian, &layout);
        let shape = spec.shape.iter().map(|&d| d as usize).collect();
        tensors.push(NamedTensor { name: name.to_string(), shape, data });
    }
    Ok(StateDict { tensors })
}

/// Recognises other formats up front, so their errors say what the file is.
fn sniff<R: Read + Seek>(r: &mut R) -> Result<()> {
    let mut head = Vec::with_capacity(512);
    r.by_ref().take(512).read_to_end(&mut head)?;
    r.seek(SeekFrom::Start(0))?;
    const LEGACY_MAGIC: [u8; 14] = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    const RESAVE: &str = "re-save it with torch >= 1.6 (torch.save(torch.load(old), new))";
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Ok(())
    } else if head.is_empty() {
        bail!("the file is empty")
    } else if head.starts_with(&LEGACY_MAGIC) {
        bail!("legacy torch serialization (before torch 1.6) is not supported; {RESAVE}")
    } else if head.get(257..262) == Some(b"ustar") {
        bail!("tar-based torch serialization (torch < 0.4) is not supported; {RESAVE}")
    } else if head[0] == 0x80 {
        bail!("a bare pickle, not a torch zip checkpoint (legacy format?); {RESAVE}")
    } else if head.starts_with(b"\x93NUMPY") {
        bail!("a NumPy .npy file, not a torch checkpoint")
    } else {
        let start: Vec<String> = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
        bail!("not a zip archive (starts with {})", start.join(" "))
    }
}

/// The archive's single top-level folder (any name) holding data.pkl.
fn find_folder<R>(zip: &ZipArchive<R>) -> Result<String> {
    let folders: Vec<&str> = zip
        .entries()
        .iter()
        .filter_map(|e| e.name.strip_suffix("/data.pkl"))
        .filter(|f| !f.is_empty() && !f.contains('/'))
        .collect();
    match folders.as_slice() {
        [one] => Ok(one.to_string()),
        [] if zip.entries().iter().any(|e| e.name.ends_with(".npy")) => {
            bail!("an .npz archive of arrays, not a torch checkpoint (no <folder>/data.pkl)")
        }
        [] => bail!("no '<folder>/data.pkl' entry: not a torch checkpoint"),
        many => bail!("several top-level folders with data.pkl: {}", many.join(", ")),
    }
}

/// The dict of tensors: the top-level dict itself, or a wrapper's 'state_dict' (else 'model')
/// entry when that is a dict. Other wrapper entries (optimizer, epoch...) are ignored unread.
fn find_state_dict(p: &Pickle) -> Result<&[(Value, Value)]> {
    let Some(Node::Dict(top)) = p.node(&p.root) else {
        bail!("the pickle holds {}, not a state dict", p.kind(&p.root));
    };
    // Python semantics: with duplicate keys the last one wins.
    let lookup = |key: &str| top.iter().rev().find(|(k, _)| matches!(k, Value::Str(s) if &**s == key)).map(|(_, v)| v);
    if let Some(v) = lookup("state_dict") {
        return match p.node(v) {
            Some(Node::Dict(inner)) => Ok(inner),
            _ => bail!("the checkpoint's 'state_dict' entry is {}, not a dict", p.kind(v)),
        };
    }
    if let Some(Node::Dict(inner)) = lookup("model").and_then(|v| p.node(v)) {
        return Ok(inner);
    }
    Ok(top)
}

/// A tensor view on a persistent storage, as recorded by `_rebuild_tensor_v2`.
struct TensorSpec {
    key: Rc<str>,
    dtype: DType,
    storage_numel: u64,
    offset: u64,
    shape: Vec<u64>,
    strides: Vec<u64>,
}

fn resolve_tensor(p: &Pickle, v: &Value, depth: usize) -> Result<TensorSpec> {
    match p.node(v) {
        Some(Node::Call { func, args }) => apply(p, *func, args, depth),
        _ => bail!("is {}, not a tensor; a state dict may hold only tensors", p.kind(v)),
    }
}

/// Interprets an allowed tensor-producing call `func(*args)`.
fn apply(p: &Pickle, func: Global, args: &Value, depth: usize) -> Result<TensorSpec> {
    if depth > MAX_WRAPPER_DEPTH {
        bail!("tensor wrappers nest too deeply");
    }
    let args = tuple(p, args, "arguments")?;
    match func {
        Global::RebuildTensorV2 => rebuild_tensor_v2(p, args),
        // Parameter(data, requires_grad, hooks[, state]): the data is the tensor.
        Global::RebuildParameter | Global::RebuildParameterWithState => {
            let data = args.first().ok_or_else(|| anyhow!("_rebuild_parameter without arguments"))?;
            resolve_tensor(p, data, depth + 1)
        }
        // _rebuild_from_type_v2(func, new_type, args, state): a tensor subclass.
        Global::RebuildFromTypeV2 => {
            let [inner, new_type, inner_args, _state] = args else {
                bail!("_rebuild_from_type_v2 takes 4 arguments, got {}", args.len());
            };
            if !matches!(new_type, Value::Global(Global::TensorClass)) {
                bail!("_rebuild_from_type_v2 builds {}, not a torch.Tensor or Parameter", p.kind(new_type));
            }
            let Value::Global(inner) = inner else {
                bail!("_rebuild_from_type_v2 with a function that is {}", p.kind(inner));
            };
            apply(p, *inner, inner_args, depth + 1)
        }
        Global::Opaque(name) => bail!("is a {name}, not a tensor; a state dict may hold only tensors"),
        other => bail!("is a call to {other:?}, not a tensor"),
    }
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
fn rebuild_tensor_v2(p: &Pickle, args: &[Value]) -> Result<TensorSpec> {
    if !(6..=7).contains(&args.len()) {
        bail!("_rebuild_tensor_v2 takes 6 or 7 arguments, got {}", args.len());
    }
    let Some(Node::PersistentId(pid)) = p.node(&args[0]) else {
        bail!("tensor storage is {}, not a persistent storage reference", p.kind(&args[0]));
    };
    // ('storage', storage_type, key, location, numel); the location ('cpu', 'cuda:0') is ignored.
    let pid = tuple(p, pid, "persistent id")?;
    let [Value::Str(tag), storage_type, Value::Str(key), _location, numel] = pid else {
        bail!("persistent id is not ('storage', type, key, location, numel)");
    };
    if &**tag != "storage" {
        bail!("persistent id of kind '{tag}' is not supported");
    }
    let dtype = match storage_type {
        Value::Global(Global::Storage(d)) => *d,
        Value::Global(Global::UntypedStorage) => DType::U8,
        other => bail!("storage type is {}, not a torch storage class", p.kind(other)),
    };
    if key.is_empty() || key.contains('/') || key.contains("..") {
        bail!("storage key '{key}' is not a plain name");
    }
    let shape = uint_tuple(p, &args[2], "size")?;
    let strides = uint_tuple(p, &args[3], "stride")?;
    if shape.len() != strides.len() {
        bail!("size {shape:?} and stride {strides:?} differ in length");
    }
    Ok(TensorSpec {
        key: key.clone(),
        dtype,
        storage_numel: uint(numel, "storage numel")?,
        offset: uint(&args[1], "storage offset")?,
        shape,
        strides,
    })
}

fn tuple<'a>(p: &'a Pickle, v: &Value, what: &str) -> Result<&'a [Value]> {
    match p.node(v) {
        Some(Node::Tuple(items)) => Ok(items),
        _ => bail!("{what} is {}, not a tuple", p.kind(v)),
    }
}

fn uint(v: &Value, what: &str) -> Result<u64> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        Value::Int(i) => bail!("{what} is negative ({i})"),
        _ => bail!("{what} is not an int"),
    }
}

fn uint_tuple(p: &Pickle, v: &Value, what: &str) -> Result<Vec<u64>> {
    tuple(p, v, what)?.iter().map(|x| uint(x, what)).collect()
}
