// Element-wise function (ACT code, see common.wgsl) over a tensor.
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid, 256u);
    if (i >= TOTAL) { return; }
    y[i] = activate(x[i]);
}
