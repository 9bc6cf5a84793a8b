// Squeeze-and-excitation in one pass, one workgroup per image: the mean of every channel's
// plane (16 invocations per channel, then a tree reduction in workgroup memory), then the two
// small fully connected layers of the block (1 x 1 convolutions on the pooled vector), the
// first through `pre` (its activation), the second through the epilogue.
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w1: array<f32>;
@group(0) @binding(3) var<storage, read> b1: array<f32>;
@group(0) @binding(4) var<storage, read> w2: array<f32>;
@group(0) @binding(5) var<storage, read> b2: array<f32>;

var<workgroup> part: array<f32, 256>;
var<workgroup> mean: array<f32, C>;
var<workgroup> hid: array<f32, M>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n = wg.z;
    let lane = li % 16u;
    let slot = li / 16u;
    for (var c0 = 0u; c0 < C; c0 += 16u) {
        let c = c0 + slot;
        var s = 0.0;
        if (c < C) {
            let base = (n * C + c) * HW;
            for (var i = lane; i < HW; i += 16u) {
                s += x[base + i];
            }
        }
        part[li] = s;
        workgroupBarrier();
        for (var st = 8u; st > 0u; st = st / 2u) {
            if (lane < st) {
                part[li] += part[li + st];
            }
            workgroupBarrier();
        }
        if (lane == 0u && c < C) {
            mean[c] = part[li] / f32(HW);
        }
        workgroupBarrier();
    }
    for (var m = li; m < M; m += 256u) {
        var a = b1[m];
        for (var c = 0u; c < C; c++) {
            a += w1[m * C + c] * mean[c];
        }
        hid[m] = pre(a);
    }
    workgroupBarrier();
    for (var o = li; o < OC; o += 256u) {
        var a = b2[o];
        for (var m = 0u; m < M; m++) {
            a += w2[o * M + m] * hid[m];
        }
        y[out_index(n, o, 0u, 0u)] = epilogue(a, n, o, 0u, 0u);
    }
}
