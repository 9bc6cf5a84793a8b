//! Test-only writers: a pickle emitter that produces what torch.save emits (protocol 2),
//! a zip writer (stored / deflated, optional zip64 end records), an .npy writer, and a
//! deterministic PRNG for the fuzz tests.

use std::io::Write;

/// Emits pickle opcodes; `BINPUT`s are not needed for correctness, so only some are written.
pub struct PickleWriter {
    pub bytes: Vec<u8>,
    memo: u32,
}

impl PickleWriter {
    /// Starts with `PROTO 2`, as torch.save writes.
    pub fn new() -> Self {
        PickleWriter { bytes: vec![0x80, 2], memo: 0 }
    }

    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(b);
        self
    }

    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.raw(b"c").raw(module.as_bytes()).raw(b"\n").raw(name.as_bytes()).raw(b"\n")
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        let len = (s.len() as u32).to_le_bytes();
        self.raw(b"X").raw(&len).raw(s.as_bytes())
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        match v {
            0..=0xff => self.raw(&[b'K', v as u8]),
            0x100..=0xffff => self.raw(b"M").raw(&(v as u16).to_le_bytes()),
            _ if i32::try_from(v).is_ok() => self.raw(b"J").raw(&(v as i32).to_le_bytes()),
            _ => self.raw(&[0x8a, 8]).raw(&v.to_le_bytes()),
        }
    }

    pub fn float(&mut self, v: f64) -> &mut Self {
        self.raw(b"G").raw(&v.to_be_bytes())
    }

    pub fn mark(&mut self) -> &mut Self {
        self.raw(b"(")
    }

    pub fn tuple(&mut self) -> &mut Self {
        self.raw(b"t")
    }

    pub fn int_tuple(&mut self, vs: &[u64]) -> &mut Self {
        self.mark();
        for &v in vs {
            self.int(v as i64);
        }
        self.tuple()
    }

    pub fn empty_tuple(&mut self) -> &mut Self {
        self.raw(b")")
    }

    pub fn empty_dict(&mut self) -> &mut Self {
        self.raw(b"}")
    }

    pub fn setitem(&mut self) -> &mut Self {
        self.raw(b"s")
    }

    pub fn setitems(&mut self) -> &mut Self {
        self.raw(b"u")
    }

    pub fn reduce(&mut self) -> &mut Self {
        self.raw(b"R")
    }

    pub fn put(&mut self) -> u32 {
        let k = self.memo;
        self.memo += 1;
        self.raw(b"r").raw(&k.to_le_bytes());
        k
    }

    pub fn get(&mut self, k: u32) -> &mut Self {
        self.raw(b"j").raw(&k.to_le_bytes())
    }

    pub fn stop(&mut self) -> Vec<u8> {
        self.raw(b".");
        self.bytes.clone()
    }

    /// `collections.OrderedDict()`, as torch pickles a state dict.
    pub fn ordered_dict(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict").empty_tuple().reduce()
    }

    /// `_rebuild_tensor_v2(persistent ('storage', torch.<ty>, key, location, numel), offset, size, stride, False, OrderedDict())`.
    #[allow(clippy::too_many_arguments)]
    pub fn tensor(
        &mut self,
        ty: &str,
        key: &str,
        location: &str,
        numel: u64,
        offset: u64,
        size: &[u64],
        stride: &[u64],
    ) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").mark();
        self.persistent_storage(ty, key, location, numel);
        self.int(offset as i64).int_tuple(size).int_tuple(stride).raw(&[0x89]).ordered_dict().tuple().reduce()
    }

    pub fn persistent_storage(&mut self, ty: &str, key: &str, location: &str, numel: u64) -> &mut Self {
        self.mark().str("storage").global("torch", ty).str(key).str(location).int(numel as i64).tuple().raw(b"Q")
    }

    /// A contiguous tensor with its own storage `key`.
    pub fn simple_tensor(&mut self, ty: &str, key: &str, shape: &[u64]) -> &mut Self {
        let numel = shape.iter().product();
        let strides = row_major(shape);
        self.tensor(ty, key, "cpu", numel, 0, shape, &strides)
    }
}

pub fn row_major(shape: &[u64]) -> Vec<u64> {
    let mut s = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// One zip entry to write.
pub struct ZipEntry {
    pub name: String,
    pub data: Vec<u8>,
    pub deflate: bool,
}

pub fn entry(name: &str, data: &[u8]) -> ZipEntry {
    ZipEntry { name: name.to_string(), data: data.to_vec(), deflate: false }
}

/// Writes a zip; `zip64` adds zip64 end records and saturates the classic end record fields.
pub fn write_zip(entries: &[ZipEntry], zip64: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let crc = crc32fast::hash(&e.data);
        let (method, payload) = if e.deflate {
            let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&e.data).unwrap();
            (8u16, enc.finish().unwrap())
        } else {
            (0u16, e.data.clone())
        };
        // Local header, with a little padding in the extra field as torch does for alignment.
        let pad = [0u8; 4];
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0]);
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&(pad.len() as u16).to_le_bytes());
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(&[0xfe, 0xca, 0, 0]);
        out.extend_from_slice(&payload);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0]);
        central.extend_from_slice(&method.to_le_bytes());
        central.extend_from_slice(&[0; 4]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        central.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 8]); // extra len, comment len, disk, internal attrs
        central.extend_from_slice(&[0; 4]); // external attrs
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(e.name.as_bytes());
    }
    let cd_offset = out.len() as u64;
    out.extend_from_slice(&central);
    let n = entries.len() as u64;
    if zip64 {
        let end64 = out.len() as u64;
        out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0]);
        out.extend_from_slice(&[0; 8]); // disk numbers
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(central.len() as u64).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&end64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let (count, size, off) =
        if zip64 { (0xffff, 0xffff_ffff, 0xffff_ffff) } else { (n as u16, central.len() as u32, cd_offset as u32) };
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&off.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// A torch.save-like archive: `<folder>/data.pkl`, `data/<key>` storages, byteorder, version.
pub struct TorchFile {
    pub folder: String,
    pub pickle: Vec<u8>,
    pub storages: Vec<(String, Vec<u8>)>,
    pub byteorder: Option<&'static str>,
    pub zip64: bool,
}

impl TorchFile {
    pub fn new(pickle: Vec<u8>, storages: Vec<(&str, Vec<u8>)>) -> Self {
        TorchFile {
            folder: "archive".into(),
            pickle,
            storages: storages.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            byteorder: Some("little"),
            zip64: false,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let f = &self.folder;
        let mut entries = vec![entry(&format!("{f}/data.pkl"), &self.pickle)];
        if let Some(order) = self.byteorder {
            entries.push(entry(&format!("{f}/byteorder"), order.as_bytes()));
        }
        for (k, v) in &self.storages {
            entries.push(entry(&format!("{f}/data/{k}"), v));
        }
        entries.push(entry(&format!("{f}/version"), b"3\n"));
        write_zip(&entries, self.zip64)
    }
}

pub fn f32_bytes(vs: &[f32]) -> Vec<u8> {
    vs.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn i64_bytes(vs: &[i64]) -> Vec<u8> {
    vs.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// An .npy (format 1.0) with the header numpy would write, padded to 64 bytes.
pub fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let fortran = if fortran { "True" } else { "False" };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// splitmix64: small, deterministic, good enough to drive mutations.
/// Test randomness: the crate's splitmix64 plus byte-level mutations for fuzzing.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut g = crate::rng::SplitMix64(self.0);
        let v = g.next_u64();
        self.0 = g.0;
        v
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Applies 1 to 4 random mutations: bit flips, byte sets, insertions, deletions,
    /// truncation, duplicated chunks, and "interesting" values (0, 0xff, 0x7f, 0x80).
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut b = input.to_vec();
        for _ in 0..1 + self.below(4) {
            if b.is_empty() {
                b.push(self.next() as u8);
                continue;
            }
            let at = self.below(b.len());
            match self.below(8) {
                0 | 1 => b[at] ^= 1 << self.below(8),
                2 => b[at] = self.next() as u8,
                3 => {
                    let n = 1 + self.below(8);
                    for _ in 0..n {
                        b.insert(at, self.next() as u8);
                    }
                }
                4 => {
                    let n = (1 + self.below(16)).min(b.len() - at);
                    b.drain(at..at + n);
                }
                5 => b.truncate(at),
                6 => {
                    let n = (1 + self.below(32)).min(b.len() - at);
                    let chunk: Vec<u8> = b[at..at + n].to_vec();
                    let to = self.below(b.len());
                    b.splice(to..to, chunk);
                }
                _ => b[at] = [0, 0xff, 0x7f, 0x80][self.below(4)],
            }
        }
        b
    }
}
