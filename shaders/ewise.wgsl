// An element-wise program (the generated `epilogue`, reading its inputs through broadcast
// strides) over up to 6 axes D0..D5: one output per invocation.
@group(0) @binding(0) var<storage, read_write> y: array<f32>;

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
    y[out_index(i0, i1, i2, i3, i4, i5)] = epilogue(0.0, i0, i1, i2, i3, i4, i5);
}
