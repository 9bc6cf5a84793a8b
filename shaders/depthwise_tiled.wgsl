// Depthwise convolution (one filter per channel) for large kernels, strips and dilation.
// A workgroup computes a TH x TW tile of one channel: it first loads the input tile plus its
// halo ((K-1) * dilation) into workgroup memory once, then every invocation computes PXT
// outputs of one row (interleaved by WGX so neighbouring invocations touch neighbouring words).
// Each input value is read from global memory once per tile instead of KH * KW times.
// Tile sizes are chosen per kernel by the planner so the tile fits workgroup memory.
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

const WGX: u32 = TW / PXT;
const INW: u32 = (TW - 1u) * SW + (KW - 1u) * DW + 1u;
const INH: u32 = (TH - 1u) * SH + (KH - 1u) * DH + 1u;
const TILES_X: u32 = (OW + TW - 1u) / TW;

var<workgroup> tile: array<f32, INW * INH>;

@compute @workgroup_size(WGX, TH, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let plane = wg.y + wg.z * 65535u;  // n * C + c
    let c = plane % C;
    let ox0 = (wg.x % TILES_X) * TW;
    let oy0 = (wg.x / TILES_X) * TH;
    let ix0 = i32(ox0 * SW) - i32(PL);
    let iy0 = i32(oy0 * SH) - i32(PT);
    let xbase = plane * IH * IW;
    for (var k = li; k < INW * INH; k += WGX * TH) {
        let iy = iy0 + i32(k / INW);
        let ix = ix0 + i32(k % INW);
        var v = 0.0;
        if (iy >= 0 && iy < i32(IH) && ix >= 0 && ix < i32(IW)) {
            v = x[xbase + u32(iy) * IW + u32(ix)];
        }
        tile[k] = v;
    }
    workgroupBarrier();
    let oy = oy0 + lid.y;
    if (plane >= PLANES || oy >= OH) { return; }
    var acc: array<f32, PXT>;
    let b = bias[c];
    for (var p = 0u; p < PXT; p++) { acc[p] = b; }
    let wbase = c * KH * KW;
    for (var ky = 0u; ky < KH; ky++) {
        let row = (lid.y * SH + ky * DH) * INW;
        for (var kx = 0u; kx < KW; kx++) {
            let wv = w[wbase + ky * KW + kx];
            for (var p = 0u; p < PXT; p++) {
                acc[p] += tile[row + (lid.x + p * WGX) * SW + kx * DW] * wv;
            }
        }
    }
    let n = plane / C;
    for (var p = 0u; p < PXT; p++) {
        let ox = ox0 + lid.x + p * WGX;
        if (ox < OW) { y[out_index(n, c, oy, ox)] = epilogue(acc[p], n, c, oy, ox); }
    }
}
