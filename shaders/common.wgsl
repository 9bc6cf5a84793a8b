// Shared by every edgesight compute shader. The planner prepends `const` declarations for the
// shapes and parameters of one op (baked in: one pipeline per op instance), including NWX
// (workgroups along x, for 2-D dispatches of long 1-D index spaces), and appends the op's
// `epilogue` (what runs on each value before it is stored) and `out_index` (where it goes).

fn erf_approx(x: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26: absolute error below 1.5e-7, enough for exact-GELU graphs.
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    let y = 1.0 - poly * exp(-a * a);
    return select(-y, y, x >= 0.0);
}

// Element-wise functions by code (keep in sync with gpu::epilogue::Act).
fn unary(code: u32, x: f32, a: f32, b: f32) -> f32 {
    switch code {
        case 1u: { return max(x, 0.0); }
        case 2u: { return clamp(x, a, b); }
        case 3u: { return 1.0 / (1.0 + exp(-x)); }
        case 4u: { return erf_approx(x); }
        case 5u: { return sqrt(x); }
        case 6u: { return exp(x); }
        case 7u: { return abs(x); }
        case 8u: { return -x; }
        case 9u: { return 1.0 / x; }
        case 10u: { return tanh(x); }
        case 11u: { return clamp(a * x + b, 0.0, 1.0); }
        case 12u: { return x * clamp(x / 6.0 + 0.5, 0.0, 1.0); }
        case 13u: { return log(x); }
        case 14u: { return select(a * x, x, x >= 0.0); }
        case 15u: { return floor(x); }
        case 16u: { return ceil(x); }
        default: { return x; }
    }
}

// Linear invocation index of a 2-D dispatch of WG-sized workgroups.
fn linear_index(gid: vec3<u32>, wg: u32) -> u32 {
    return gid.x + gid.y * NWX * wg;
}
