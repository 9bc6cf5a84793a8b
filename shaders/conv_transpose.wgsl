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
    for (var ky = 0u; ky < KH; ky++) {
        let ty = i32(oy + PT) - i32(ky * DH);
        if (ty < 0 || ty % i32(SH) != 0) { continue; }
        let iy = u32(ty) / SH;
        if (iy >= IH) { continue; }
        for (var kx = 0u; kx < KW; kx++) {
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
    y[i] = activate(acc);
}
