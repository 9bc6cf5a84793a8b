// Reduction over any set of axes (up to 6): one output per invocation; the planner bakes the
// input strides of the kept axes (K*) and of the reduced axes (R*), extents of both.
// OP 0 sum, 1 mean, 2 max, 3 min, 4 sum of squares. The input is read through `read`: plainly,
// or through an element-wise program fused in front (`pre`, over the linear input index).
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid, 64u);
    if (i >= TOTAL) { return; }
    var r = i;
    let k5 = r % KD5; r = r / KD5;
    let k4 = r % KD4; r = r / KD4;
    let k3 = r % KD3; r = r / KD3;
    let k2 = r % KD2; r = r / KD2;
    let k1 = r % KD1; r = r / KD1;
    let base = r * KS0 + k1 * KS1 + k2 * KS2 + k3 * KS3 + k4 * KS4 + k5 * KS5;
    var acc = 0.0;
    if (OP == 2u) { acc = -3.402823e38; }
    if (OP == 3u) { acc = 3.402823e38; }
    for (var j = 0u; j < RTOTAL; j++) {
        var q = j;
        let r5 = q % RD5; q = q / RD5;
        let r4 = q % RD4; q = q / RD4;
        let r3 = q % RD3; q = q / RD3;
        let r2 = q % RD2; q = q / RD2;
        let r1 = q % RD1; q = q / RD1;
        let idx = base + q * RS0 + r1 * RS1 + r2 * RS2 + r3 * RS3 + r4 * RS4 + r5 * RS5;
        let v = read(idx);
        switch OP {
            case 2u: { acc = max(acc, v); }
            case 3u: { acc = min(acc, v); }
            case 4u: { acc += v * v; }
            default: { acc += v; }
        }
    }
    if (OP == 1u) { acc = acc / f32(RTOTAL); }
    y[out_index(r, k1, k2, k3, k4, k5)] = epilogue(acc, r, k1, k2, k3, k4, k5);
}
