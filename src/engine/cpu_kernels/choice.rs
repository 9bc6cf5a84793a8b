//! Which of edgesight's CPU kernels a plan may use: a value the caller passes down with the
//! session options, so no kernel reads the process environment. `from_env` is for the top level
//! only (the CLI, examples, tests), where the developer switches below are documented.

/// Overrides of the kernel chooser, for comparisons; the default lets it choose by measurement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelChoice {
    /// tract's own kernels only (`EDGESIGHT_TRACT_ONLY`): comparisons against plain tract.
    pub tract_only: bool,
    /// One depthwise kernel for every depthwise convolution (`EDGESIGHT_DW`: blocked, direct, rows).
    pub depthwise: Option<String>,
    /// `direct` turns Winograd off (`EDGESIGHT_DENSE`).
    pub dense: Option<String>,
    /// Names every convolution left to tract on stderr (`EDGESIGHT_DEBUG_PATCH`).
    pub debug_patch: bool,
}

impl KernelChoice {
    /// The developer switches from the environment; call it at the top level only.
    pub fn from_env() -> KernelChoice {
        let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
        KernelChoice {
            tract_only: set("EDGESIGHT_TRACT_ONLY"),
            depthwise: std::env::var("EDGESIGHT_DW").ok().filter(|s| !s.is_empty()),
            dense: std::env::var("EDGESIGHT_DENSE").ok().filter(|s| !s.is_empty()),
            debug_patch: set("EDGESIGHT_DEBUG_PATCH"),
        }
    }
}
