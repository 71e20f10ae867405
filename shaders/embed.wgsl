// embed: token + position embedding, the first op of the forward pass (common/embed_body.wgsl), with
// wte in storage buffers read through common/weights.wgsl. gpt2-xl's f32 wte (321 MB) exceeds
// max_storage_buffer_binding_size, hence the row chunks there.

@group(0) @binding(2) var<storage, read> w: array<u32>;           // wte [vocab_hi - vocab_lo, C] in wfmt
@group(0) @binding(3) var<storage, read> scales: array<u32>;      // q8/q4 group scales, f16 pairs

@compute @workgroup_size(WG)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    embed_at(gid, nwg);
}
