// Dense (or grouped) convolution, NCHW: each invocation computes OCB output channels of
// PXB horizontally adjacent pixels, so every input value loaded feeds OCB * PXB products
// (register blocking); weights are read once per OCB block. Channels and widths need not be
// multiples of the blocks (edges are masked).
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

const OCB: u32 = 4u;
const PXB: u32 = 4u;
const OWB: u32 = (OW + PXB - 1u) / PXB;
const OCBLK: u32 = (OCG + OCB - 1u) / OCB;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid, 64u);
    // Layout of the work: [n][group][oc block][oy][ox block], ox fastest for coalesced reads.
    if (i >= N * G * OCBLK * OH * OWB) { return; }
    let oxb = i % OWB;
    let oy = (i / OWB) % OH;
    let ocb = (i / (OWB * OH)) % OCBLK;
    let g = (i / (OWB * OH * OCBLK)) % G;
    let n = i / (OWB * OH * OCBLK * G);
    let ox0 = oxb * PXB;
    let oc0 = g * OCG + ocb * OCB;
    var acc: array<array<f32, PXB>, OCB>;
    for (var o = 0u; o < OCB; o++) {
        let b = bias[min(oc0 + o, OC - 1u)];
        for (var p = 0u; p < PXB; p++) { acc[o][p] = b; }
    }
    let ocn = min(OCB, OCG - ocb * OCB);
    for (var ic = 0u; ic < ICG; ic++) {
        let xbase = (n * IC + g * ICG + ic) * IH * IW;
        for (var ky = 0u; ky < KH; ky++) {
            let iy = i32(oy * SH + ky * DH) - i32(PT);
            if (iy < 0 || iy >= i32(IH)) { continue; }
            let xrow = xbase + u32(iy) * IW;
            for (var kx = 0u; kx < KW; kx++) {
                var xv: array<f32, PXB>;
                for (var p = 0u; p < PXB; p++) {
                    let ix = i32((ox0 + p) * SW + kx * DW) - i32(PL);
                    xv[p] = select(0.0, x[xrow + u32(clamp(ix, 0, i32(IW) - 1))], ix >= 0 && ix < i32(IW));
                }
                for (var o = 0u; o < OCB; o++) {
                    let wv = w[((min(oc0 + o, OC - 1u)) * ICG + ic) * KH * KW + ky * KW + kx];
                    for (var p = 0u; p < PXB; p++) { acc[o][p] += xv[p] * wv; }
                }
            }
        }
    }
    for (var o = 0u; o < ocn; o++) {
        let ybase = ((n * OC + oc0 + o) * OH + oy) * OW;
        for (var p = 0u; p < PXB; p++) {
            if (ox0 + p < OW) { y[ybase + ox0 + p] = activate(acc[o][p]); }
        }
    }
}
