// Batched matrix product y[b] = a[b] (M x K) * b[b] (K x N), batch axes broadcast (strides baked,
// 0 on broadcast axes, up to 3 batch axes): one output per invocation, optional activation.
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid, 64u);
    if (i >= TOTAL) { return; }
    let col = i % N;
    let row = (i / N) % M;
    var r = i / (N * M);
    let b2 = r % BD2; r = r / BD2;
    let b1 = r % BD1; r = r / BD1;
    let b0 = r;
    let abase = b0 * AS0 + b1 * AS1 + b2 * AS2 + row * K;
    let bbase = b0 * BS0 + b1 * BS1 + b2 * BS2 + col;
    var acc = 0.0;
    for (var k = 0u; k < K; k++) {
        acc += a[abase + k] * b[bbase + k * N];
    }
    y[i] = epilogue(acc);
}
