// Depthwise convolution (KH x KW, any stride, dilation, padding) and the pointwise (1 x 1)
// convolution reading it, in one pass: a workgroup covers 16 x 4 output pixels and 64 output
// channels. For each slice of TK input channels it loads the input tile (with its halo) into
// workgroup memory, computes the slice's depthwise values there (with the depthwise bias and
// `pre`, its activation), then multiplies them into 4 x 4 register blocks as `conv1x1_gemm` does. The
// depthwise output never goes to memory; each depthwise value is recomputed once per 64 output
// channels.
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wd: array<f32>;
@group(0) @binding(3) var<storage, read> bd: array<f32>;
@group(0) @binding(4) var<storage, read> wp: array<f32>;
@group(0) @binding(5) var<storage, read> bp: array<f32>;

const TPX: u32 = 16u;
const TPY: u32 = 4u;
const TP: u32 = 64u;
const TM: u32 = 64u;
const INW: u32 = (TPX - 1u) * SW + (KW - 1u) * DW + 1u;
const INH: u32 = (TPY - 1u) * SH + (KH - 1u) * DH + 1u;
const TILES_X: u32 = (PW + TPX - 1u) / TPX;

var<workgroup> halo: array<f32, TK * INW * INH>;
var<workgroup> dwv: array<f32, TK * TP>;
var<workgroup> wt: array<f32, TK * TM>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let n = wg.z;
    let m0 = wg.y * TM;
    let px0 = (wg.x % TILES_X) * TPX;
    let py0 = (wg.x / TILES_X) * TPY;
    let ix0 = i32(px0 * SW) - i32(PL);
    let iy0 = i32(py0 * SH) - i32(PT);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < IC; k0 += TK) {
        for (var e = li; e < TK * INW * INH; e += 256u) {
            let c = k0 + e / (INW * INH);
            let r = e % (INW * INH);
            let iy = iy0 + i32(r / INW);
            let ix = ix0 + i32(r % INW);
            var v = 0.0;
            if (c < IC && iy >= 0 && iy < i32(IH) && ix >= 0 && ix < i32(IW)) {
                v = x[((n * IC + c) * IH + u32(iy)) * IW + u32(ix)];
            }
            halo[e] = v;
        }
        for (var e = li; e < TK * TM; e += 256u) {
            let k = e / TM;
            let m = e % TM;
            let ok = m0 + m < OC && k0 + k < IC;
            wt[e] = select(0.0, wp[min((m0 + m) * IC + k0 + k, OC * IC - 1u)], ok);
        }
        workgroupBarrier();
        for (var e = li; e < TK * TP; e += 256u) {
            let k = e / TP;
            let q = e % TP;
            let qy = q / TPX;
            let qx = q % TPX;
            let c = k0 + k;
            var v = 0.0;
            if (c < IC) {
                var acc = bd[c];
                let hb = k * INW * INH;
                for (var ky = 0u; ky < KH; ky++) {
                    let row = hb + (qy * SH + ky * DH) * INW + qx * SW;
                    for (var kx = 0u; kx < KW; kx++) {
                        acc += halo[row + kx * DW] * wd[(c * KH + ky) * KW + kx];
                    }
                }
                v = pre(acc);
            }
            dwv[e] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < TK; k++) {
            let wr = k * TM + lid.y * 4u;
            let wv = vec4<f32>(wt[wr], wt[wr + 1u], wt[wr + 2u], wt[wr + 3u]);
            let xr = k * TP + lid.x;
            let xv = vec4<f32>(dwv[xr], dwv[xr + 16u], dwv[xr + 32u], dwv[xr + 48u]);
            a0 += wv.x * xv;
            a1 += wv.y * xv;
            a2 += wv.z * xv;
            a3 += wv.w * xv;
        }
        workgroupBarrier();
    }
    // Invocation (lid.x, lid.y) holds output channels m0 + 4 lid.y .. + 3 of pixels
    // (px0 + lid.x, py0 + j), j = 0..3.
    let px = px0 + lid.x;
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y * 4u + i;
        if (m >= OC || px >= PW) { break; }
        var acc = a0;
        if (i == 1u) { acc = a1; }
        if (i == 2u) { acc = a2; }
        if (i == 3u) { acc = a3; }
        let b = bp[m];
        for (var j = 0u; j < 4u; j++) {
            let py = py0 + j;
            if (py >= PH) { break; }
            var v = acc.x;
            if (j == 1u) { v = acc.y; }
            if (j == 2u) { v = acc.z; }
            if (j == 3u) { v = acc.w; }
            y[out_index(n, m, py, px)] = epilogue(v + b, n, m, py, px);
        }
    }
}
