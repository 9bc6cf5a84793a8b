//! Squeeze-and-excitation as one kernel: a global average pool, a 1 x 1 convolution on the
//! pooled vector with its activation, and a second one, each read only by the next, become a
//! `Squeeze` kernel (one workgroup per image, the plane means by tree reduction).

use super::{stores_plainly, Readers};
use crate::engine::gpu::graph::{Binding, Planner};
use crate::engine::gpu::kernels::{self, Kernel, Shader};

/// A 1 x 1 convolution on 1 x 1 planes (a fully connected layer on a pooled vector).
fn is_fc(k: &Kernel) -> bool {
    matches!(k.shader, Shader::ConvDense | Shader::Conv1x1Gemm | Shader::Conv1x1Vec4 | Shader::ConvIgemm | Shader::ConvNaive)
        && ["KH", "KW", "IH", "IW", "OH", "OW", "G"].iter().all(|n| k.get_u(n) == 1)
        && stores_plainly(k)
}

/// The mean over whole NCHW planes: an average pool without padding, or a mean reduction of
/// the two last axes of a contiguous tensor; as [n, c, plane size].
fn global_mean(k: &Kernel) -> Option<[usize; 3]> {
    if !k.epilogue.is_identity() || k.pre.is_some() || !stores_plainly(k) {
        return None;
    }
    let u = |n: &str| k.get_u(n);
    match k.shader {
        Shader::Pool => (u("MODE") == 0
            && u("OH") == 1
            && u("OW") == 1
            && u("KH") == u("IH")
            && u("KW") == u("IW")
            && ["PT", "PL", "PB", "PR"].iter().all(|n| u(n) == 0))
        .then(|| [u("N"), u("IC"), u("IH") * u("IW")]),
        Shader::PlaneReduce => {
            let kd: Vec<usize> = ["KD0", "KD1", "KD2", "KD3", "KD4", "KD5"].iter().map(|n| u(n)).collect();
            (u("OP") == 1 && kd[0] == 1 && kd[1] == 1 && kd[4] == 1 && kd[5] == 1).then(|| [kd[2], kd[3], u("LEN")])
        }
        Shader::Reduce => {
            let kd: Vec<usize> = ["KD0", "KD1", "KD2", "KD3", "KD4", "KD5"].iter().map(|n| u(n)).collect();
            let rd: Vec<usize> = ["RD0", "RD1", "RD2", "RD3", "RD4", "RD5"].iter().map(|n| u(n)).collect();
            let (n, c, h, w) = (kd[2], kd[3], rd[4], rd[5]);
            let plain = u("OP") == 1
                && kd == [1, 1, n, c, 1, 1]
                && rd == [1, 1, 1, 1, h, w]
                && (n == 1 || u("KS2") == c * h * w)
                && (c == 1 || u("KS3") == h * w)
                && (h == 1 || u("RS4") == w)
                && (w == 1 || u("RS5") == 1);
            plain.then_some([n, c, h * w])
        }
        _ => None,
    }
}

pub(super) fn apply(p: &mut Planner<'_>, r: &Readers) -> bool {
    for f2 in 0..p.kernels.len() {
        if !is_fc(&p.kernels[f2]) {
            continue;
        }
        let Binding::Value(h) = p.kernels[f2].bindings[1] else { continue };
        // Pooled vectors are often reshaped on the way (views of the same data).
        let Some(f1) = r.producer_of_same(p, h) else { continue };
        if f1 >= f2 || !is_fc(&p.kernels[f1]) || !p.kernels[f1].epilogue.is_pure() || !r.only_reader(p, h, f2) {
            continue;
        }
        let Binding::Value(m) = p.kernels[f1].bindings[1] else { continue };
        let Some(pool) = r.producer_of_same(p, m) else { continue };
        let Some(dims) = global_mean(&p.kernels[pool]) else { continue };
        if pool >= f1 || !r.only_reader(p, m, f1) {
            continue;
        }
        let x = p.kernels[pool].bindings[1];
        let Some(k) = kernels::squeeze(x, dims, &p.kernels[f1], &p.kernels[f2], p.opts.workgroup_bytes.max(4096)) else { continue };
        p.kernels[f2] = k;
        // Remove the later one first so the earlier index stays valid.
        p.kernels.remove(f1);
        p.kernels.remove(pool);
        return true;
    }
    false
}
