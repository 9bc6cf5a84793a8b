//! Which of edgesight's CPU kernels a plan may use: a value the caller passes down with the
//! session options, so no kernel reads the process environment. `from_env` is for the top level
//! only (the CLI, examples, tests), where the developer switches below are documented.

use super::spec::Isa;
use anyhow::{bail, Result};

/// Overrides of the kernel chooser, for comparisons; the default lets it choose by measurement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelChoice {
    /// tract's own kernels only (`EDGESIGHT_TRACT_ONLY`): comparisons against plain tract.
    pub tract_only: bool,
    /// One depthwise kernel for every depthwise convolution (`EDGESIGHT_DW`: blocked, direct, rows).
    pub depthwise: Option<DepthwiseForce>,
    /// `direct` turns Winograd off (`EDGESIGHT_DENSE`).
    pub dense: Option<DenseForce>,
    /// Names every convolution left to tract on stderr (`EDGESIGHT_DEBUG_PATCH`).
    pub debug_patch: bool,
    /// `EDGESIGHT_ISA=avx2`: the AVX2 kernels on an AVX-512 CPU, to measure what CPUs with
    /// AVX2 only run.
    pub avx2_only: bool,
}

/// The depthwise kernel `EDGESIGHT_DW` forces, where that kernel can run the convolution
/// (AVX-512; see `strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DepthwiseForce {
    /// Channels in the vector lanes (`dw_blocked`).
    Blocked,
    /// Read straight from the unpadded input (`dw_direct`).
    Direct,
    /// Row tiles over the padded copy (`dw_rows`), or the generic tiles.
    Rows,
}

/// The dense kernel `EDGESIGHT_DENSE` forces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenseForce {
    /// The direct kernel everywhere: no Winograd.
    Direct,
}

impl DepthwiseForce {
    pub fn parse(s: &str) -> Option<DepthwiseForce> {
        match s {
            "blocked" => Some(DepthwiseForce::Blocked),
            "direct" => Some(DepthwiseForce::Direct),
            "rows" => Some(DepthwiseForce::Rows),
            _ => None,
        }
    }
}

impl DenseForce {
    pub fn parse(s: &str) -> Option<DenseForce> {
        (s == "direct").then_some(DenseForce::Direct)
    }
}

impl KernelChoice {
    /// The developer switches from the environment; call it at the top level only. An empty
    /// variable counts as unset; a value no kernel answers to is an error.
    pub fn from_env() -> Result<KernelChoice> {
        let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
        let value = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
        let depthwise = match value("EDGESIGHT_DW") {
            None => None,
            Some(s) => match DepthwiseForce::parse(&s) {
                Some(f) => Some(f),
                None => bail!("EDGESIGHT_DW={s:?}: expected blocked, direct or rows"),
            },
        };
        let dense = match value("EDGESIGHT_DENSE") {
            None => None,
            Some(s) => match DenseForce::parse(&s) {
                Some(f) => Some(f),
                None => bail!("EDGESIGHT_DENSE={s:?}: expected direct"),
            },
        };
        let avx2_only = match value("EDGESIGHT_ISA").as_deref() {
            None => false,
            Some("avx2") => true,
            Some(s) => bail!("EDGESIGHT_ISA={s:?}: expected avx2 (the best the CPU has is the default)"),
        };
        Ok(KernelChoice { tract_only: set("EDGESIGHT_TRACT_ONLY"), depthwise, dense, debug_patch: set("EDGESIGHT_DEBUG_PATCH"), avx2_only })
    }

    /// The kernel set plans use: the best this CPU runs (`Isa::fast`), AVX2 when `avx2_only`
    /// and the CPU has it, none for tract only.
    pub fn isa(&self) -> Option<Isa> {
        if self.tract_only {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        if self.avx2_only {
            return Isa::fast().map(|_| Isa::Avx2);
        }
        Isa::fast()
    }
}

/// Whether a kernel test that needs AVX-512 can run here (the tests' switch, read here with
/// the other switches). Without AVX-512 it says so on
/// the real stderr (`skipped: needs AVX-512`) and the test returns, so a skip never reads as a pass;
/// with `EDGESIGHT_REQUIRE_AVX512=1` (CI on an AVX-512 machine) a missing AVX-512 fails it.
#[cfg(test)]
pub(crate) fn avx512_or_skip(test: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return true;
    }
    if std::env::var("EDGESIGHT_REQUIRE_AVX512").is_ok_and(|v| v == "1") {
        panic!("{test}: EDGESIGHT_REQUIRE_AVX512=1 but this CPU has no AVX-512");
    }
    // Written to the process's stderr, past the test harness's capture, so the skip shows in
    // every run's output and not only when a test fails.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{test}: skipped: needs AVX-512");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_parse() {
        assert_eq!(DepthwiseForce::parse("rows"), Some(DepthwiseForce::Rows));
        assert_eq!(DepthwiseForce::parse("blocked"), Some(DepthwiseForce::Blocked));
        assert_eq!(DepthwiseForce::parse("direct"), Some(DepthwiseForce::Direct));
        assert_eq!(DepthwiseForce::parse("row"), None);
        assert_eq!(DenseForce::parse("direct"), Some(DenseForce::Direct));
        assert_eq!(DenseForce::parse("winograd"), None);
    }

    #[test]
    fn the_kernel_set_follows_the_choice() {
        let best = KernelChoice::default();
        assert_eq!(best.isa(), Isa::fast());
        let tract = KernelChoice { tract_only: true, avx2_only: true, ..KernelChoice::default() };
        assert_eq!(tract.isa(), None);
        let avx2 = KernelChoice { avx2_only: true, ..KernelChoice::default() };
        #[cfg(target_arch = "x86_64")]
        assert_eq!(avx2.isa(), Isa::fast().map(|_| Isa::Avx2));
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!(avx2.isa(), None);
    }
}
