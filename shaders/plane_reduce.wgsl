// Reduction of whole contiguous planes (a global pool, a mean over the last axes): one
// workgroup per plane, 256 invocations summing strided parts, then a tree reduction in
// workgroup memory. OP 0 sum, 1 mean, 2 max, 3 min, 4 sum of squares. The input is read through
// `read` (plainly, or through a fused element-wise program); the plane's coordinates in the
// output (KD0..KD5, the planes' extents) go to `out_index` and `epilogue`.
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;

var<workgroup> part: array<f32, 256>;

fn combine(a: f32, b: f32) -> f32 {
    switch OP {
        case 2u: { return max(a, b); }
        case 3u: { return min(a, b); }
        default: { return a + b; }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let plane = wg.x + wg.y * NWX;
    // Every invocation of a workgroup takes the same branch: the barriers stay uniform.
    if (plane >= PLANES) { return; }
    var acc = 0.0;
    if (OP == 2u) { acc = -3.402823e38; }
    if (OP == 3u) { acc = 3.402823e38; }
    let base = plane * LEN;
    for (var j = li; j < LEN; j += 256u) {
        let v = read(base + j);
        if (OP == 4u) { acc += v * v; } else { acc = combine(acc, v); }
    }
    part[li] = acc;
    workgroupBarrier();
    for (var st = 128u; st > 0u; st = st / 2u) {
        if (li < st) {
            part[li] = combine(part[li], part[li + st]);
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        var r = part[0];
        if (OP == 1u) { r = r / f32(LEN); }
        var q = plane;
        let k5 = q % KD5; q = q / KD5;
        let k4 = q % KD4; q = q / KD4;
        let k3 = q % KD3; q = q / KD3;
        let k2 = q % KD2; q = q / KD2;
        let k1 = q % KD1; q = q / KD1;
        y[out_index(q, k1, k2, k3, k4, k5)] = epilogue(r, q, k1, k2, k3, k4, k5);
    }
}
