// Dense (or grouped) convolution, NCHW: each invocation computes 4 output channels of 4
// horizontally adjacent pixels, so every input value loaded feeds 4 products and every weight
// 4 (register blocking, in vec4 registers: no dynamically indexed arrays, which some compilers
// spill to memory). Channels and widths need not be multiples of 4 (edges are masked).
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
    // Output channels past the group's end reuse the last valid one (results discarded).
    let last = g * OCG + OCG - 1u;
    let c0 = min(oc0, last);
    let c1 = min(oc0 + 1u, last);
    let c2 = min(oc0 + 2u, last);
    let c3 = min(oc0 + 3u, last);
    var a0 = vec4<f32>(bias[c0]);
    var a1 = vec4<f32>(bias[c1]);
    var a2 = vec4<f32>(bias[c2]);
    var a3 = vec4<f32>(bias[c3]);
    let ix0 = i32(ox0 * SW) - i32(PL);
    for (var ic = 0u; ic < ICG; ic++) {
        let xbase = (n * IC + g * ICG + ic) * IH * IW;
        let wk = ic * KH * KW;
        for (var ky = 0u; ky < KH; ky++) {
            let iy = i32(oy * SH + ky * DH) - i32(PT);
            if (iy < 0 || iy >= i32(IH)) { continue; }
            let xrow = xbase + u32(iy) * IW;
            for (var kx = 0u; kx < KW; kx++) {
                let ix = ix0 + i32(kx * DW);
                let p = vec4<i32>(ix, ix + i32(SW), ix + 2 * i32(SW), ix + 3 * i32(SW));
                let inside = p >= vec4<i32>(0) & p < vec4<i32>(i32(IW));
                let q = vec4<u32>(clamp(p, vec4<i32>(0), vec4<i32>(i32(IW) - 1)));
                let xv = select(vec4<f32>(0.0), vec4<f32>(x[xrow + q.x], x[xrow + q.y], x[xrow + q.z], x[xrow + q.w]), inside);
                let wo = wk + ky * KW + kx;
                a0 += xv * w[c0 * ICG * KH * KW + wo];
                a1 += xv * w[c1 * ICG * KH * KW + wo];
                a2 += xv * w[c2 * ICG * KH * KW + wo];
                a3 += xv * w[c3 * ICG * KH * KW + wo];
            }
        }
    }
    let ocn = min(OCB, OCG - ocb * OCB);
    let pxn = min(PXB, OW - ox0);
    for (var o = 0u; o < ocn; o++) {
        var acc = a0;
        if (o == 1u) { acc = a1; }
        if (o == 2u) { acc = a2; }
        if (o == 3u) { acc = a3; }
        let c = oc0 + o;
        y[out_index(n, c, oy, ox0)] = epilogue(acc.x, n, c, oy, ox0);
        if (pxn > 1u) { y[out_index(n, c, oy, ox0 + 1u)] = epilogue(acc.y, n, c, oy, ox0 + 1u); }
        if (pxn > 2u) { y[out_index(n, c, oy, ox0 + 2u)] = epilogue(acc.z, n, c, oy, ox0 + 2u); }
        if (pxn > 3u) { y[out_index(n, c, oy, ox0 + 3u)] = epilogue(acc.w, n, c, oy, ox0 + 3u); }
    }
}
