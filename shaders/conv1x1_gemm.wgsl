// Pointwise (1x1, stride 1, unpadded, ungrouped) convolution as a tiled matrix product:
// Y[n][oc][p] = bias[oc] + sum_ic W[oc][ic] * X[n][ic][p]. A workgroup computes a TM x TN tile
// (TM output channels x TN pixels; the planner picks them by channel count and plane size,
// `kernels::gemm_tile`); both operands go through workgroup memory in slices of 16 input
// channels, and each invocation keeps a 4 x 4 block of outputs in vec4 registers, so every
// value loaded from global memory feeds TM (or TN) multiply-adds. Scalar loads and stores: the
// variant for any plane size (`conv1x1_vec4.wgsl` takes planes of a multiple of 4).
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

const TK: u32 = 16u;
const WGX: u32 = TN / 4u;
const WGY: u32 = TM / 4u;
const WGN: u32 = WGX * WGY;
const P: u32 = IH * IW;

var<workgroup> wt: array<f32, TK * TM>;  // [k][m]
var<workgroup> xt: array<f32, TK * TN>;  // [k][p]

@compute @workgroup_size(WGX, WGY, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let n = wg.z;
    let m0 = wg.y * TM;
    let p0 = wg.x * TN;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < IC; k0 += TK) {
        // Weights ([OC][IC] rows) with k fastest: neighbouring invocations read neighbouring
        // words of a row (coalesced). Outside the matrices: 0.
        for (var e = li; e < TK * TM; e += WGN) {
            let k = e % TK;
            let m = e / TK;
            var v = 0.0;
            if (m0 + m < OC && k0 + k < IC) { v = w[(m0 + m) * IC + k0 + k]; }
            wt[k * TM + m] = v;
        }
        // Inputs with the pixel fastest (rows of X are contiguous).
        for (var e = li; e < TK * TN; e += WGN) {
            let k = e / TN;
            let pp = e % TN;
            var v = 0.0;
            if (p0 + pp < P && k0 + k < IC) { v = x[(n * IC + k0 + k) * P + p0 + pp]; }
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
    // Pixels of an invocation are WGX apart, so neighbouring invocations store neighbouring words.
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y * 4u + i;
        if (m >= OC) { break; }
        var acc = a0;
        if (i == 1u) { acc = a1; }
        if (i == 2u) { acc = a2; }
        if (i == 3u) { acc = a3; }
        let b = bias[m];
        for (var j = 0u; j < 4u; j++) {
            let p = p0 + lid.x + j * WGX;
            if (p >= P) { break; }
            var v = acc.x;
            if (j == 1u) { v = acc.y; }
            if (j == 2u) { v = acc.z; }
            if (j == 3u) { v = acc.w; }
            let yy = p / IW;
            let xx = p % IW;
            y[out_index(n, m, yy, xx)] = epilogue(v + b, n, m, yy, xx);
        }
    }
}
