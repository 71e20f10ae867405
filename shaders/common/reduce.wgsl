// common/reduce.wgsl: sum and max of one f32 per thread over the whole workgroup (tree reduction in
// workgroup memory). The including kernel defines `const WG: u32`, its workgroup size (a power of two),
// and calls these from uniform control flow with li = local_invocation_index. Each call ends with a
// barrier, so `red_f` may be reused (or read as scratch) right after; the result is in every thread.

var<workgroup> red_f: array<f32, WG>;

const REDUCE_SUM: u32 = 0u;
const REDUCE_MAX: u32 = 1u;

fn wg_reduce(li: u32, v: f32, op: u32) -> f32 {
    red_f[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            let o = red_f[li + s];
            red_f[li] = select(red_f[li] + o, max(red_f[li], o), op == REDUCE_MAX);
        }
        workgroupBarrier();
    }
    let r = red_f[0];
    workgroupBarrier(); // everyone has read red_f[0] before it is reused
    return r;
}

fn wg_sum(li: u32, v: f32) -> f32 {
    return wg_reduce(li, v, REDUCE_SUM);
}

fn wg_max(li: u32, v: f32) -> f32 {
    return wg_reduce(li, v, REDUCE_MAX);
}
