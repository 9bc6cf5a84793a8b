// Transposed convolution, NCHW, weights [IC, OC/G, KH, KW]: one output per invocation, as a
// gather over the inputs that scatter into it (no atomics).
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid, 64u);
    if (i >= TOTAL) { return; }
    let ox = i % OW;
    let oy = (i / OW) % OH;
    let oc = (i / (OW * OH)) % OC;
    let n = i / (OW * OH * OC);
    let g = oc / OCG;
    let ocg = oc % OCG;
    var acc = bias[oc];
    // Without dilation only every SH-th kernel row (and SW-th column) lands on an input
    // position: start at the first one instead of testing all KH * KW taps.
    let ky0 = select(0u, (oy + PT) % SH, DH == 1u);
    let kys = select(1u, SH, DH == 1u);
    let kx0 = select(0u, (ox + PL) % SW, DW == 1u);
    let kxs = select(1u, SW, DW == 1u);
    for (var ky = ky0; ky < KH; ky += kys) {
        let ty = i32(oy + PT) - i32(ky * DH);
        if (ty < 0 || ty % i32(SH) != 0) { continue; }
        let iy = u32(ty) / SH;
        if (iy >= IH) { continue; }
        for (var kx = kx0; kx < KW; kx += kxs) {
            let tx = i32(ox + PL) - i32(kx * DW);
            if (tx < 0 || tx % i32(SW) != 0) { continue; }
            let ix = u32(tx) / SW;
            if (ix >= IW) { continue; }
            for (var ic = 0u; ic < ICG; ic++) {
                let c = g * ICG + ic;
                acc += x[((n * IC + c) * IH + iy) * IW + ix] * w[((c * OCG + ocg) * KH + ky) * KW + kx];
            }
        }
    }
    y[out_index(n, oc, oy, ox)] = epilogue(acc, n, oc, oy, ox);
}
