// embed_tex: embed (common/embed_body.wgsl) with wte read from textures (common/texels.wgsl declares
// them), for the CPU tuning, whose linear kernels read every weight matrix from textures
// (Tuning::weights_in_textures). wte is both the embedding and the (tied) logits matrix: one copy, in
// textures, serves both. Its row chunks are what fits one texture (the adapter's
// max_texture_dimension_2d rows of 4096 texels).

@compute @workgroup_size(WG)
fn embed_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    embed_at(gid, nwg);
}
