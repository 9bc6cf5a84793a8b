// Element-wise a OP b with numpy broadcasting over up to 6 axes: the planner bakes the output
// extents D0..D5 and each operand's strides (0 on broadcast axes), then an optional activation.
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

fn apply(u: f32, v: f32) -> f32 {
    switch OP {
        case 0u: { return u + v; }
        case 1u: { return u - v; }
        case 2u: { return u * v; }
        case 3u: { return u / v; }
        case 4u: { return min(u, v); }
        case 5u: { return max(u, v); }
        case 6u: { return pow(u, v); }
        default: { return u; }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid, 256u);
    if (i >= TOTAL) { return; }
    var r = i;
    let i5 = r % D5; r = r / D5;
    let i4 = r % D4; r = r / D4;
    let i3 = r % D3; r = r / D3;
    let i2 = r % D2; r = r / D2;
    let i1 = r % D1; r = r / D1;
    let i0 = r;
    let ia = i0 * SA0 + i1 * SA1 + i2 * SA2 + i3 * SA3 + i4 * SA4 + i5 * SA5;
    let ib = i0 * SB0 + i1 * SB1 + i2 * SB2 + i3 * SB3 + i4 * SB4 + i5 * SB5;
    y[i] = activate(apply(a[ia], b[ib]));
}
