// Copies a strided view of x into a strided view of y (up to 6 axes): transpose, slice, split,
// concatenation (one dispatch per input), expand. Strides are signed (negative-step slices).
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid, 256u);
    if (i >= TOTAL) { return; }
    var r = i;
    let i5 = i32(r % D5); r = r / D5;
    let i4 = i32(r % D4); r = r / D4;
    let i3 = i32(r % D3); r = r / D3;
    let i2 = i32(r % D2); r = r / D2;
    let i1 = i32(r % D1); r = r / D1;
    let i0 = i32(r);
    let src = XBASE + i0 * SX0 + i1 * SX1 + i2 * SX2 + i3 * SX3 + i4 * SX4 + i5 * SX5;
    let dst = YBASE + i0 * SY0 + i1 * SY1 + i2 * SY2 + i3 * SY3 + i4 * SY4 + i5 * SY5;
    y[u32(dst)] = x[u32(src)];
}
