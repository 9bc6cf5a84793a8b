// Dense or grouped convolution (any kernel, stride, dilation, padding) as an implicit matrix
// product per group: Y[oc][q] = bias[oc] + sum_k W[oc][k] * X~[k][q] with k = (ic, ky, kx) over
// ICG * KH * KW and q the output pixel; X~ (the im2col matrix) is never stored: each step
// gathers 16 of its rows for the tile's TN pixels straight into workgroup memory, 0 where the
// window is in the padding. A workgroup computes a TM x TN tile (output channels of one group
// x output pixels, `kernels::gemm_tile`), each invocation a 4 x 4 block in vec4 registers.
// Weights [OC][ICG][KH][KW] are rows of W already: read with k fastest (coalesced).
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

const TK: u32 = 16u;
const WGX: u32 = TN / 4u;
const WGY: u32 = TM / 4u;
const WGN: u32 = WGX * WGY;
const KHW: u32 = KH * KW;
const KK: u32 = ICG * KHW;
const Q: u32 = OH * OW;

var<workgroup> wt: array<f32, TK * TM>;  // [k][m]
var<workgroup> xt: array<f32, TK * TN>;  // [k][q]

@compute @workgroup_size(WGX, WGY, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let n = wg.z / G;
    let g = wg.z % G;
    let m0 = wg.y * TM;  // within the group
    let q0 = wg.x * TN;
    let wbase = g * OCG * KK;
    let xbase = (n * IC + g * ICG) * IH * IW;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < KK; k0 += TK) {
        for (var e = li; e < TK * TM; e += WGN) {
            let k = e % TK;
            let m = e / TK;
            var v = 0.0;
            if (m0 + m < OCG && k0 + k < KK) { v = w[wbase + (m0 + m) * KK + k0 + k]; }
            wt[k * TM + m] = v;
        }
        // The gather: pixel fastest, so neighbouring invocations read along an input row.
        for (var e = li; e < TK * TN; e += WGN) {
            let k = k0 + e / TN;
            let q = q0 + e % TN;
            var v = 0.0;
            if (k < KK && q < Q) {
                let ic = k / KHW;
                let r = k % KHW;
                let iy = i32((q / OW) * SH + (r / KW) * DH) - i32(PT);
                let ix = i32((q % OW) * SW + (r % KW) * DW) - i32(PL);
                if (iy >= 0 && iy < i32(IH) && ix >= 0 && ix < i32(IW)) {
                    v = x[xbase + ic * IH * IW + u32(iy) * IW + u32(ix)];
                }
            }
            xt[e] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < TK; k++) {
            let wr = k * TM + lid.y * 4u;
            let wv = vec4<f32>(wt[wr], wt[wr + 1u], wt[wr + 2u], wt[wr + 3u]);
            let xr = k * TN + lid.x;
            let xv = vec4<f32>(xt[xr], xt[xr + WGX], xt[xr + 2u * WGX], xt[xr + 3u * WGX]);
            a0 += wv.x * xv;
            a1 += wv.y * xv;
            a2 += wv.z * xv;
            a3 += wv.w * xv;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y * 4u + i;
        if (m >= OCG) { break; }
        var acc = a0;
        if (i == 1u) { acc = a1; }
        if (i == 2u) { acc = a2; }
        if (i == 3u) { acc = a3; }
        let c = g * OCG + m;
        let b = bias[c];
        for (var j = 0u; j < 4u; j++) {
            let q = q0 + lid.x + j * WGX;
            if (q >= Q) { break; }
            let oy = q / OW;
            let ox = q % OW;
            y[out_index(n, c, oy, ox)] = epilogue(acc[j] + b, n, c, oy, ox);
        }
    }
}
