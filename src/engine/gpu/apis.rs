//! Which graphics APIs wgpu searches for an adapter: the `WGPU_BACKEND` setting, read by the
//! program's entry point and passed down in `EngineOptions`, checked here so that a misspelt
//! value is an error naming the valid ones rather than "no GPU adapter found".

use anyhow::{bail, Result};

/// The graphics APIs to search; `None`: native APIs first (Vulkan, Metal, DX12), then GL/GLES.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GpuApis(pub Option<wgpu::Backends>);

/// What `GpuApis::parse` accepts (wgpu's names for `WGPU_BACKEND`).
pub const VALID_APIS: &str = "vulkan (vk), metal (mtl), dx12 (d3d12), gl (opengl, gles), webgpu; several separated by commas";

impl GpuApis {
    /// Parses a `WGPU_BACKEND` value ("vulkan", "gl", "vulkan,gl", ...). wgpu itself skips
    /// unknown names, which leaves nothing to search and reads as a missing GPU.
    pub fn parse(value: &str) -> Result<GpuApis> {
        let mut apis = wgpu::Backends::empty();
        for name in value.split(',') {
            let name = name.trim().to_ascii_lowercase();
            apis |= match name.as_str() {
                "vulkan" | "vk" => wgpu::Backends::VULKAN,
                "metal" | "mtl" => wgpu::Backends::METAL,
                "dx12" | "d3d12" => wgpu::Backends::DX12,
                "gl" | "opengl" | "gles" => wgpu::Backends::GL,
                "webgpu" => wgpu::Backends::BROWSER_WEBGPU,
                _ => bail!("WGPU_BACKEND={value:?}: unknown graphics API {name:?}; valid values: {VALID_APIS}"),
            };
        }
        Ok(GpuApis(Some(apis)))
    }

    /// The searches to make, in order.
    pub fn tries(self) -> Vec<wgpu::Backends> {
        match self.0 {
            Some(b) => vec![b],
            None => vec![wgpu::Backends::PRIMARY, wgpu::Backends::GL],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_parse_and_unknown_ones_are_refused_with_the_list() {
        assert_eq!(GpuApis::parse("Vulkan").unwrap(), GpuApis(Some(wgpu::Backends::VULKAN)));
        assert_eq!(GpuApis::parse("vk, gl").unwrap(), GpuApis(Some(wgpu::Backends::VULKAN | wgpu::Backends::GL)));
        let e = GpuApis::parse("vulkn").unwrap_err().to_string();
        assert!(e.contains("\"vulkn\"") && e.contains("valid values: vulkan"), "{e}");
        assert!(GpuApis::parse("").is_err());
    }
}
