// common/reduce_best.wgsl: u32 sums and the best (value, index) pair over the workgroup, for the
// sampler. Needs common/reduce.wgsl (it shares `red_f`) and the kernel's `const WG: u32`. Same rules:
// uniform control flow, li = local_invocation_index, a barrier before returning.

var<workgroup> red_u: array<u32, WG>;

fn wg_sum_u32(li: u32, v: u32) -> u32 {
    red_u[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            red_u[li] = red_u[li] + red_u[li + s];
        }
        workgroupBarrier();
    }
    let r = red_u[0];
    workgroupBarrier();
    return r;
}

// The best (value, index) pair: larger value first, lower index on ties, returned as (value bits,
// index). Invalid candidates carry index 0xffffffff and value -3e38.
fn wg_best(li: u32, v: f32, i: u32) -> vec2<u32> {
    red_f[li] = v;
    red_u[li] = i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            let v2 = red_f[li + s];
            let i2 = red_u[li + s];
            if (v2 > red_f[li] || (v2 == red_f[li] && i2 < red_u[li])) {
                red_f[li] = v2;
                red_u[li] = i2;
            }
        }
        workgroupBarrier();
    }
    let r = vec2<u32>(bitcast<u32>(red_f[0]), red_u[0]);
    workgroupBarrier();
    return r;
}
