// Pointwise (1x1, stride 1, unpadded, ungrouped) convolution as a tiled matrix product:
// Y[n][oc][p] = bias[oc] + sum_ic W[oc][ic] * X[n][ic][p]. A workgroup computes a 64 x 64 tile
// (64 output channels x 64 pixels); both operands go through workgroup memory in slices of 16
// input channels, and each invocation keeps a 4 x 4 block of outputs in vec4 registers, so
// every value loaded from global memory feeds 64 multiply-adds.
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;
const P: u32 = IH * IW;

var<workgroup> wt: array<f32, TK * TM>;  // [k][m]
var<workgroup> xt: array<f32, TK * TN>;  // [k][n]

@compute @workgroup_size(16, 16, 1)
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
        // 256 invocations load 1024 weights and 1024 inputs, 4 each; outside the matrices: 0.
        for (var e = li; e < TK * TM; e += 256u) {
            let k = e / TM;
            let m = e % TM;
            let ok = m0 + m < OC && k0 + k < IC;
            wt[e] = select(0.0, w[min((m0 + m) * IC + k0 + k, OC * IC - 1u)], ok);
            let kk = e / TN;
            let pp = e % TN;
            let okx = p0 + pp < P && k0 + kk < IC;
            xt[e] = select(0.0, x[min((n * IC + k0 + kk) * P + p0 + pp, N * IC * P - 1u)], okx);
        }
        workgroupBarrier();
        for (var k = 0u; k < TK; k++) {
            let wr = k * TM + lid.y * 4u;
            let wv = vec4<f32>(wt[wr], wt[wr + 1u], wt[wr + 2u], wt[wr + 3u]);
            let xr = k * TN + lid.x;
            let xv = vec4<f32>(xt[xr], xt[xr + 16u], xt[xr + 32u], xt[xr + 48u]);
            a0 += wv.x * xv;
            a1 += wv.y * xv;
            a2 += wv.z * xv;
            a3 += wv.w * xv;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y * 4u + i;
        if (m >= OC) { break; }
        var acc = a0;
        if (i == 1u) { acc = a1; }
        if (i == 2u) { acc = a2; }
        if (i == 3u) { acc = a3; }
        let b = bias[m];
        for (var j = 0u; j < 4u; j++) {
            let p = p0 + lid.x + j * 16u;
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
