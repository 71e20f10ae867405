// common/kv_append.wgsl: the KV cache append that attention_rows, attention_rows_prompt (through
// common/attention_rows_body.wgsl) and kv_windows share: this step's key and value of one (head, query) from
// qkv to the cache, in either format (common/attention_params.wgsl). Uses the including kernel's `qkv`,
// `k_cache`, `v_cache` and HS4 (WGSL's module-scope declarations may come in any order).

// Append this step's key and value of head h, query t (its row row4 of qkv) to the cache: row pos0 + t,
// which no thread reads.
fn append(t: u32, h: u32, row4: u32, c4: u32, n4: u32) {
    let ho4 = h * n4;
    let n8 = n4 / 2u; // vec4s of f16-pair words per head and position
    let pos = p.pos0 + t;
    if (p.kv == 1u) {
        let dst = (pos * p.NH + h) * n8;
        for (var j = 0u; j < HS4 / 2u; j++) {
            if (j < n8) {
                let ka = qkv[row4 + c4 + ho4 + 2u * j];
                let kb = qkv[row4 + c4 + ho4 + 2u * j + 1u];
                let va = qkv[row4 + 2u * c4 + ho4 + 2u * j];
                let vb = qkv[row4 + 2u * c4 + ho4 + 2u * j + 1u];
                k_cache[dst + j] = vec4<u32>(kv_pack(ka.x, ka.y), kv_pack(ka.z, ka.w), kv_pack(kb.x, kb.y), kv_pack(kb.z, kb.w));
                v_cache[dst + j] = vec4<u32>(kv_pack(va.x, va.y), kv_pack(va.z, va.w), kv_pack(vb.x, vb.y), kv_pack(vb.z, vb.w));
            }
        }
    } else {
        let dst = pos * c4 + ho4;
        for (var i = 0u; i < HS4; i++) {
            if (i < n4) {
                k_cache[dst + i] = bitcast<vec4<u32>>(qkv[row4 + c4 + ho4 + i]);
                v_cache[dst + i] = bitcast<vec4<u32>>(qkv[row4 + 2u * c4 + ho4 + i]);
            }
        }
    }
}
