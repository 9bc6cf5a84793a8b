// Direct convolution, NCHW, any groups / stride / dilation / padding: one output per invocation.
// The reference every faster convolution shader is tested against, and the fallback.
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
    var acc = bias[oc];
    for (var ic = 0u; ic < ICG; ic++) {
        let xbase = (n * IC + g * ICG + ic) * IH * IW;
        let wbase = (oc * ICG + ic) * KH * KW;
        for (var ky = 0u; ky < KH; ky++) {
            let iy = i32(oy * SH + ky * DH) - i32(PT);
            if (iy < 0 || iy >= i32(IH)) { continue; }
            for (var kx = 0u; kx < KW; kx++) {
                let ix = i32(ox * SW + kx * DW) - i32(PL);
                if (ix < 0 || ix >= i32(IW)) { continue; }
                acc += x[xbase + u32(iy) * IW + u32(ix)] * w[wbase + ky * KW + kx];
            }
        }
    }
    y[out_index(n, oc, oy, ox)] = epilogue(acc, n, oc, oy, ox);
}
