// layer_norm: y = (x - mean) / sqrt(var + eps) * g + b, over the C channels of each row.
//
//   for r < rows:  y[out_row0 + r, :] = LN(x[in_row0 + r, :])
//
// Shapes: x [*, C], g [C], b [C], y [*, C], all f32. eps comes from config.json.
// Two passes over the row (mean, then the centred variance) instead of E[x^2] - E[x]^2, which cancels
// catastrophically on GPT-2's activation outliers (residual channels of magnitude 1e3+).
// Dispatch: `rows` workgroups (x, with y for rows beyond 65535) of 256 threads; one workgroup per row,
// threads stride over C and reduce through workgroup memory. (CPU adapters run layer_norm_rows.wgsl.)

@group(0) @binding(1) var<storage, read> x: array<f32>;            // [*, C]
@group(0) @binding(2) var<storage, read> g: array<f32>;            // [C]
@group(0) @binding(3) var<storage, read> b: array<f32>;            // [C]
@group(0) @binding(4) var<storage, read_write> y: array<f32>;      // [*, C]

const WG: u32 = 256u;
@compute @workgroup_size(WG)
fn layer_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let r = wg.x + wg.y * nwg.x;
    // `r` is uniform across the workgroup, so this early exit keeps barriers in uniform control flow.
    if (r >= p.rows) {
        return;
    }
    let xo = (p.in_row0 + r) * p.C;
    let yo = (p.out_row0 + r) * p.C;

    var s = 0.0;
    for (var c = li; c < p.C; c += WG) {
        s += x[xo + c];
    }
    let mean = wg_sum(li, s) / f32(p.C);

    var v = 0.0;
    for (var c = li; c < p.C; c += WG) {
        let d = x[xo + c] - mean;
        v += d * d;
    }
    let rstd = inverseSqrt(wg_sum(li, v) / f32(p.C) + p.eps);

    for (var c = li; c < p.C; c += WG) {
        y[yo + c] = (x[xo + c] - mean) * rstd * g[c] + b[c];
    }
}
