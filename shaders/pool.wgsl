// 2-D average or max pooling over NCHW planes. MODE 0 average (COUNT_PAD 1: divide by the full
// kernel area, as count_include_pad), 1 max. Padding never contributes to max.
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid, 64u);
    if (i >= TOTAL) { return; }
    let ox = i % OW;
    let oy = (i / OW) % OH;
    let plane = i / (OW * OH);
    let base = plane * IH * IW;
    var acc = select(0.0, -3.402823e38, MODE == 1u);
    var count = 0u;
    var padded = 0u;
    for (var ky = 0u; ky < KH; ky++) {
        let iy = i32(oy * SH + ky * DH) - i32(PT);
        for (var kx = 0u; kx < KW; kx++) {
            let ix = i32(ox * SW + kx * DW) - i32(PL);
            // Positions in the explicit padding count for count_include_pad; beyond it (ceil_mode) never.
            if (iy < i32(IH + PB) && ix < i32(IW + PR)) { padded += 1u; }
            if (iy < 0 || iy >= i32(IH) || ix < 0 || ix >= i32(IW)) { continue; }
            let v = x[base + u32(iy) * IW + u32(ix)];
            if (MODE == 1u) { acc = max(acc, v); } else { acc += v; }
            count += 1u;
        }
    }
    if (MODE == 0u) {
        acc = acc / f32(select(count, padded, COUNT_PAD == 1u));
    }
    let n = plane / IC;
    let c = plane % IC;
    y[out_index(n, c, oy, ox)] = epilogue(acc, n, c, oy, ox);
}
