//! Helpers shared by the integration tests (`mod common;` in each tests/*.rs): paths in the
//! repository and in the project's shared folder, scratch folders, the GPU check, and plain
//! tract as the reference engine.
//!
//! Switches (environment variables, all set by .ci/run):
//! - EDGESIGHT_REQUIRE_FIXTURES=1: a test whose files in ../shared are missing fails, naming
//!   them, instead of printing `skipped: ... missing` and passing.
//! - EDGESIGHT_REQUIRE_GPU=1: a missing GPU adapter fails the GPU tests instead of skipping them.
//! - EDGESIGHT_REQUIRE_GUI=1 (tests/live.rs): Xvfb that cannot be started is a failure.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use edgesight::engine::{Tensor, TensorData};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tract_onnx::prelude::*;

/// The edgesight binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_edgesight");

/// Runs the binary with `args`.
pub fn edgesight(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("binary runs")
}

/// The run failed cleanly: non-zero exit, one `edgesight: error:` line naming `needle`, no panic.
pub fn assert_clean_failure(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {stderr}");
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("edgesight: error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error message: {stderr}");
    // The message may go on over indented lines (e.g. lists of checkpoint keys).
    let message = &stderr[stderr.find("edgesight: error:").unwrap()..];
    for n in needles {
        assert!(message.contains(n), "error message lacks '{n}': {message}");
    }
}

/// A path inside the repository.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A path under tests/data.
pub fn data(p: &str) -> PathBuf {
    repo("tests/data").join(p)
}

/// The bundled clip (assets/vtest-4s.mp4: 40 frames, 768x576, 10 fps).
pub fn clip() -> PathBuf {
    repo("assets/vtest-4s.mp4")
}

/// A fresh, empty scratch folder per test.
pub fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `p` as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Whether the switch `name` (an environment variable) is set to 1.
pub fn switch(name: &str) -> bool {
    std::env::var(name).as_deref() == Ok("1")
}

/// EDGESIGHT_REQUIRE_FIXTURES=1: missing files in ../shared are failures.
pub fn fixtures_required() -> bool {
    switch("EDGESIGHT_REQUIRE_FIXTURES")
}

/// The project's shared folder next to the repository (models, reference fixtures, data).
pub fn shared_dir() -> PathBuf {
    repo("../shared")
}

/// Files `rel` (paths relative to ../shared, e.g. "reference/fixtures/BEVANet-S.pth") when they
/// are all present. When one is missing, `test` is skipped (a `skipped:` line and `None`), or,
/// with EDGESIGHT_REQUIRE_FIXTURES=1, fails with every missing path named.
pub fn shared_or_skip<const N: usize>(test: &str, rel: [&str; N]) -> Option<[PathBuf; N]> {
    files_or_skip(&shared_dir(), test, rel, fixtures_required())
}

/// `shared_or_skip` on any folder and with the switch given (tests of the helper itself).
pub fn files_or_skip<const N: usize>(dir: &Path, test: &str, rel: [&str; N], required: bool) -> Option<[PathBuf; N]> {
    let paths = rel.map(|r| dir.join(r));
    let missing: Vec<String> = paths.iter().filter(|p| !p.is_file()).map(|p| p.display().to_string()).collect();
    if missing.is_empty() {
        return Some(paths);
    }
    if required {
        panic!("{test}: EDGESIGHT_REQUIRE_FIXTURES=1 but the shared folder lacks: {}", missing.join(", "));
    }
    println!("skipped: {test}: {} missing", missing.join(", "));
    None
}

/// Optional extra files of a test that also runs without them: `Some` when present; when
/// missing, a `skipped:` line for that part and `None`, or a failure under
/// EDGESIGHT_REQUIRE_FIXTURES=1.
pub fn shared_file(test: &str, rel: &str) -> Option<PathBuf> {
    shared_or_skip(test, [rel]).map(|[p]| p)
}

/// Whether a GPU adapter exists. Without one the GPU tests skip with a note, unless
/// EDGESIGHT_REQUIRE_GPU=1, where this panics with wgpu's reason.
pub fn gpu_available() -> bool {
    match edgesight::engine::gpu::context() {
        Ok(_) => true,
        Err(e) => {
            if switch("EDGESIGHT_REQUIRE_GPU") {
                panic!("EDGESIGHT_REQUIRE_GPU=1 but {e:#}");
            }
            eprintln!("skipping GPU test: {e:#}");
            false
        }
    }
}

/// edgesight's tensor as tract's.
pub fn to_tract(x: &Tensor) -> tract_onnx::prelude::Tensor {
    match &x.data {
        TensorData::F32(v) => tract_onnx::prelude::Tensor::from_shape(&x.shape, v).unwrap(),
        TensorData::I32(v) => tract_onnx::prelude::Tensor::from_shape(&x.shape, v).unwrap(),
    }
}

fn input_fact(x: &Tensor) -> InferenceFact {
    let dt = match x.data {
        TensorData::F32(_) => f32::datum_type(),
        TensorData::I32(_) => i32::datum_type(),
    };
    InferenceFact::dt_shape(dt, &x.shape)
}

fn outputs_f32(outputs: TVec<TValue>) -> Vec<(Vec<usize>, Vec<f32>)> {
    outputs
        .into_iter()
        .map(|o| {
            let o = o.cast_to::<f32>().unwrap();
            (o.shape().to_vec(), o.to_plain_array_view::<f32>().unwrap().iter().copied().collect())
        })
        .collect()
}

/// Runs `onnx` on plain tract (the reference: tract's own optimiser, none of edgesight's
/// kernels) and returns every output as (shape, float32 values).
pub fn tract_outputs(onnx: &[u8], x: &Tensor) -> Vec<(Vec<usize>, Vec<f32>)> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .unwrap()
        .with_input_fact(0, input_fact(x))
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    outputs_f32(model.run(tvec!(to_tract(x).into())).unwrap())
}

/// Runs `onnx` planned as edgesight's CPU engine plans it (edgesight's kernels and fusions
/// swapped into tract, default options) and returns every output as (shape, float32 values).
pub fn edgesight_cpu_outputs(onnx: &[u8], x: &Tensor) -> Vec<(Vec<usize>, Vec<f32>)> {
    let model = tract_onnx::onnx().model_for_read(&mut &onnx[..]).unwrap().with_input_fact(0, input_fact(x)).unwrap();
    let model = edgesight::engine::tract_cpu::optimize(model, &Default::default()).unwrap().into_runnable().unwrap();
    outputs_f32(model.run(tvec!(to_tract(x).into())).unwrap())
}
