//! Defensive readers for PyTorch checkpoints and NumPy arrays.
//!
//! - [`load_torch`]: a `torch.save` zip checkpoint (torch >= 1.6) holding a state dict.
//!   The pickle inside is read by a restricted unpickler that never executes anything:
//!   only tensor rebuilders, storage types, `OrderedDict` and a few inert names (numpy
//!   scalars, argparse namespaces...) are accepted; any other python object is an error
//!   naming it. Legacy (pre-1.6) files get an error asking to re-save them.
//! - [`load_npy`] / [`parse_npy`] and [`load_npz`]: `.npy` arrays and `.npz` archives.
//!
//! Which dict is the state dict: the top-level dict, unless it has a `'state_dict'` entry
//! (training wrappers such as `{'epoch', 'best_mIoU', 'state_dict', 'optimizer'}`), or
//! failing that a `'model'` entry that is a dict; the rest of a wrapper is never decoded.
//! Every value of the state dict must be a tensor (or `Parameter`): anything else is an
//! error naming the key, since silently dropping entries would hide a wrong file.
//!
//! Safety: every size read from a file is checked against the bytes actually present and
//! against [`MAX_TENSOR_BYTES`] before allocating; tensor views (offset, shape, stride) are
//! checked against their storage; storages may be shared; big-endian files are swapped.
//! Half-precision tensors keep their raw bits ([`TensorData::F16`], [`TensorData::BF16`]);
//! [`TensorData::f32_values`] and [`StateDict::f32`] convert them.

mod npy;
mod pickle;
mod tensor;
mod torch_zip;
mod zip;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{anyhow, bail, Result};

pub use npy::{parse_npy, read_npz};
pub use tensor::{bf16_to_f32, f16_to_f32, DType, TensorData, MAX_TENSOR_BYTES};
pub use torch_zip::read_torch;

/// A tensor of a state dict or an array of an `.npz`; data is row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

/// An unnamed array (one `.npy` file); data is row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl NamedTensor {
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Elements as f32 (see [`TensorData::f32_values`] for conversions).
    pub fn f32_values(&self) -> Vec<f32> {
        self.data.f32_values()
    }
}

impl Array {
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    pub fn f32_values(&self) -> Vec<f32> {
        self.data.f32_values()
    }
}

/// The tensors of a checkpoint, in on-disk (pickle) order; names are unique.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDict {
    pub tensors: Vec<NamedTensor>,
}

impl StateDict {
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|t| t.name.as_str())
    }

    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Shape and values of a floating-point tensor as f32 (f16/bf16 exactly, f64 rounded).
    /// Errors when the name is missing or the tensor is an integer/bool tensor, which would
    /// mean the wrong key is being loaded as a weight.
    pub fn f32(&self, name: &str) -> Result<(&[usize], Vec<f32>)> {
        let t = self.require(name)?;
        if !t.dtype().is_float() {
            bail!("tensor '{name}' is {}, not a floating-point tensor", t.dtype());
        }
        Ok((&t.shape, t.data.f32_values()))
    }

    /// Like [`StateDict::f32`] but borrows; only for `float32` tensors.
    pub fn f32_slice(&self, name: &str) -> Result<(&[usize], &[f32])> {
        let t = self.require(name)?;
        match t.data.as_f32() {
            Some(v) => Ok((&t.shape, v)),
            None => bail!("tensor '{name}' is {}, not float32", t.dtype()),
        }
    }

    fn require(&self, name: &str) -> Result<&NamedTensor> {
        self.get(name).ok_or_else(|| anyhow!("no tensor '{name}' in the state dict ({} tensors)", self.len()))
    }

    /// Removes `prefix` from the names that start with it (e.g. `module.` or `model.`);
    /// other names are kept as they are. If a stripped name collides with an unprefixed
    /// one, the stripped (prefixed) tensor is kept and the unprefixed one dropped.
    pub fn strip_prefix(self, prefix: &str) -> StateDict {
        let stripped: std::collections::HashSet<String> =
            self.tensors.iter().filter_map(|t| t.name.strip_prefix(prefix).map(str::to_string)).collect();
        let tensors = self
            .tensors
            .into_iter()
            .filter_map(|mut t| match t.name.strip_prefix(prefix) {
                Some(rest) => {
                    t.name = rest.to_string();
                    Some(t)
                }
                None if stripped.contains(&t.name) => None,
                None => Some(t),
            })
            .collect();
        StateDict { tensors }
    }
}

/// Loads the state dict of a `torch.save` zip checkpoint. Errors name the file.
pub fn load_torch(path: &Path) -> Result<StateDict> {
    let file = File::open(path).map_err(|e| anyhow!("checkpoint {}: cannot open: {e}", path.display()))?;
    read_torch(BufReader::new(file), &path.display().to_string())
}

/// Why `path`, a zip archive, is not a torch.save checkpoint (Ok when it is one).
pub fn check_torch_zip(path: &Path) -> Result<()> {
    let file = File::open(path).map_err(|e| anyhow!("cannot open {}: {e}", path.display()))?;
    torch_zip::check_torch_layout(BufReader::new(file))
}

/// Loads one `.npy` array. Errors name the file.
pub fn load_npy(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).map_err(|e| anyhow!("array {}: cannot read: {e}", path.display()))?;
    parse_npy(&bytes).map_err(|e| anyhow!("array {}: {e:#}", path.display()))
}

/// Loads every array of an `.npz` archive (names without `.npy`), in archive order.
pub fn load_npz(path: &Path) -> Result<Vec<NamedTensor>> {
    let file = File::open(path).map_err(|e| anyhow!("npz {}: cannot open: {e}", path.display()))?;
    read_npz(BufReader::new(file), &path.display().to_string())
}
