// Pointwise convolution as `conv1x1_gemm.wgsl` (TM x TN tiles, 16 input channels per step,
// 4 x 4 outputs per invocation), for planes whose size is a multiple of 4: inputs are loaded
// and staged as vec4 (4 adjacent pixels, one 16-byte load), each invocation owns 4 adjacent
// pixels, and outputs are stored as vec4 where the output layout keeps them adjacent and
// aligned (OUTV, decided by the planner from where the output goes: its own buffer, or a
// channel slice of a concatenation); elsewhere (e.g. a concatenation along the width) one
// component at a time.
@group(0) @binding(0) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

const TK: u32 = 16u;
const WGX: u32 = TN / 4u;
const WGY: u32 = TM / 4u;
const WGN: u32 = WGX * WGY;
const P: u32 = IH * IW;
const P4: u32 = P / 4u;

var<workgroup> wt: array<f32, TK * TM>;         // [k][m]
var<workgroup> xt: array<vec4<f32>, TK * WGX>;  // [k][4 pixels]

@compute @workgroup_size(WGX, WGY, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let n = wg.z;
    let m0 = wg.y * TM;
    let q0 = wg.x * WGX;  // first pixel quad of the tile
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < IC; k0 += TK) {
        // Weights with k fastest (coalesced reads along rows of W), as in conv1x1_gemm.
        for (var e = li; e < TK * TM; e += WGN) {
            let k = e % TK;
            let m = e / TK;
            var v = 0.0;
            if (m0 + m < OC && k0 + k < IC) { v = w[(m0 + m) * IC + k0 + k]; }
            wt[k * TM + m] = v;
        }
        for (var e = li; e < TK * WGX; e += WGN) {
            let k = e / WGX;
            let q = e % WGX;
            var v = vec4<f32>(0.0);
            if (q0 + q < P4 && k0 + k < IC) { v = x[(n * IC + k0 + k) * P4 + q0 + q]; }
            xt[e] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < TK; k++) {
            let wr = k * TM + lid.y * 4u;
            let wv = vec4<f32>(wt[wr], wt[wr + 1u], wt[wr + 2u], wt[wr + 3u]);
            let xv = xt[k * WGX + lid.x];
            a0 += wv.x * xv;
            a1 += wv.y * xv;
            a2 += wv.z * xv;
            a3 += wv.w * xv;
        }
        workgroupBarrier();
    }
    let q = q0 + lid.x;
    if (q >= P4) { return; }
    let p = q * 4u;
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y * 4u + i;
        if (m >= OC) { break; }
        var acc = a0;
        if (i == 1u) { acc = a1; }
        if (i == 2u) { acc = a2; }
        if (i == 3u) { acc = a3; }
        acc += vec4<f32>(bias[m]);
        var v = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            let yy = (p + j) / IW;
            let xx = (p + j) % IW;
            let e = epilogue(acc[j], n, m, yy, xx);
            if (OUTV) {
                v[j] = e;
            } else {
                let o = out_index(n, m, yy, xx);
                y[o / 4u][o % 4u] = e;
            }
        }
        if (OUTV) { y[out_index(n, m, p / IW, p % IW) / 4u] = v; }
    }
}
