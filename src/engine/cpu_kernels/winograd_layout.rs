//! Where Winograd F(4x4, 3x3)'s tiles lie in the transformed input V and the products M, shared
//! by the AVX-512 transforms (`winograd`) and the AVX2 ones (`winograd_avx2`).

use super::spec::{unaliased, ConvSpec};

/// Tiles of 4x4 outputs need 6x6 inputs.
pub(super) const T: usize = 6;

/// Where the tiles of one convolution run lie.
pub(super) struct Layout {
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
    pub(super) pt: usize,
    pub(super) pl: usize,
    /// Tile rows and columns (4 outputs each way).
    pub(super) nty: usize,
    pub(super) ntx: usize,
    /// Vectors of 16 tiles per tile row.
    pub(super) nxv: usize,
    /// Length of one column phase of a padded row.
    pub(super) lq: usize,
}

impl Layout {
    pub(super) fn new(spec: &ConvSpec, h: usize, w: usize) -> Option<Layout> {
        let (oh, ow) = spec.output_hw(h, w)?;
        let (nty, ntx) = (oh.div_ceil(4), ow.div_ceil(4));
        let nxv = ntx.div_ceil(16);
        Some(Layout { h, w, oh, ow, pt: spec.pad_before[0], pl: spec.pad_before[1], nty, ntx, nxv, lq: 16 * nxv + 16 })
    }

    /// All tiles in whole vectors: the positions the products run over.
    pub(super) fn npos(&self) -> usize {
        (self.nty * self.ntx).div_ceil(16) * 16
    }

    /// Floats from one channel's tiles to the next in M (one vector of slack for the last
    /// row's full-vector reads, unaliased).
    pub(super) fn m_stride(&self) -> usize {
        unaliased(self.npos() + 16)
    }
}

