// Resize of two adjacent axes (H, W) of a tensor seen as [OUTER, H, W, INNER] (NCHW: INNER = 1;
// NHWC: OUTER = N, INNER = C). MODE 0 nearest, 1 linear. COORD: 0 half_pixel, 1 align_corners,
// 2 asymmetric, 3 pytorch_half_pixel, 4 tf_half_pixel_for_nn. NEAREST: 0 round_prefer_floor,
// 1 round_prefer_ceil, 2 floor, 3 ceil (ONNX Resize semantics).
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;

fn source(o: u32, scale: f32, in_len: u32, out_len: u32) -> f32 {
    let pos = f32(o);
    switch COORD {
        case 1u: {
            if (out_len <= 1u) { return 0.0; }
            return pos * f32(in_len - 1u) / f32(out_len - 1u);
        }
        case 2u: { return pos / scale; }
        case 3u: {
            if (out_len <= 1u) { return 0.0; }
            return (pos + 0.5) / scale - 0.5;
        }
        case 4u: { return (pos + 0.5) / scale; }
        default: { return (pos + 0.5) / scale - 0.5; }
    }
}

fn nearest(s: f32, in_len: u32) -> u32 {
    var v: f32;
    switch NEAREST {
        case 1u: { v = select(round(s), ceil(s), fract(s) == 0.5); }
        case 2u: { v = floor(s); }
        case 3u: { v = ceil(s); }
        default: { v = select(round(s), floor(s), fract(s) == 0.5); }
    }
    return u32(clamp(v, 0.0, f32(in_len - 1u)));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid, 256u);
    if (i >= TOTAL) { return; }
    let inner = i % INNER;
    let ox = (i / INNER) % OW;
    let oy = (i / (INNER * OW)) % OH;
    let outer = i / (INNER * OW * OH);
    let base = outer * IH * IW * INNER + inner;
    let sy = source(oy, SCALE_H, IH, OH);
    let sx = source(ox, SCALE_W, IW, OW);
    if (MODE == 0u) {
        let iy = nearest(sy, IH);
        let ix = nearest(sx, IW);
        y[i] = x[base + (iy * IW + ix) * INNER];
        return;
    }
    let cy = clamp(sy, 0.0, f32(IH - 1u));
    let cx = clamp(sx, 0.0, f32(IW - 1u));
    let y0 = u32(floor(cy));
    let x0 = u32(floor(cx));
    let y1 = min(y0 + 1u, IH - 1u);
    let x1 = min(x0 + 1u, IW - 1u);
    let fy = cy - f32(y0);
    let fx = cx - f32(x0);
    let v00 = x[base + (y0 * IW + x0) * INNER];
    let v01 = x[base + (y0 * IW + x1) * INNER];
    let v10 = x[base + (y1 * IW + x0) * INNER];
    let v11 = x[base + (y1 * IW + x1) * INNER];
    let top = v00 + (v01 - v00) * fx;
    let bottom = v10 + (v11 - v10) * fx;
    y[i] = top + (bottom - top) * fy;
}
