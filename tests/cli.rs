//! The native CLI end to end: the binary as a user runs it, on the fixture and on a random model with
//! the real distilgpt2 shapes (C = 768, 12 heads), checked against Hugging Face's and our CPU reference.

mod common;

use common::*;
use gpt2_webgpu::io::safetensors::SafeTensors;
use std::process::{Command, Output};

fn gpt2(args: &[&str]) -> Output {
    gpt2_env(args, &[])
}

/// `gpt2 args` with `envs` set (and no GPT2_TOKENS_PER_SUBMIT from outside, so the tuning's K holds).
fn gpt2_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpt2"));
    cmd.args(args).env("WGPU_BACKEND", "vulkan").env_remove("GPT2_TOKENS_PER_SUBMIT");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run gpt2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "gpt2 {args:?} panicked:\n{err}");
    out
}

fn ok(args: &[&str]) -> (String, String) {
    ok_env(args, &[])
}

fn ok_env(args: &[&str], envs: &[(&str, &str)]) -> (String, String) {
    let out = gpt2_env(args, envs);
    let (so, se) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "gpt2 {args:?} failed:\n{se}");
    (so, se)
}

fn fails(args: &[&str]) -> String {
    let out = gpt2(args);
    assert!(!out.status.success(), "gpt2 {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn logits_command_writes_every_position_matching_the_reference() {
    let r = load_reference();
    let case = r.case("case2");
    let tmp = TempDir::new("cli-logits");
    let out = tmp.path().join("l.safetensors");
    let ids: Vec<String> = case.ids.iter().map(|i| i.to_string()).collect();
    ok(&["logits", "--device", "gpu", "--model", s(&tiny_dir()), "--ids", &ids.join(","), "--out", s(&out)]);
    let bytes = read(&out);
    let st = SafeTensors::parse(&bytes, "l.safetensors").unwrap();
    let logits = st.get("logits").unwrap();
    assert_eq!(logits.shape, vec![case.ids.len(), r.vocab_size]);
    let l = logits.to_f32().unwrap();
    let got_ids: Vec<u32> = st.get("ids").unwrap().to_i32().unwrap().iter().map(|&i| i as u32).collect();
    assert_eq!(got_ids, case.ids);
    let v = r.vocab_size;
    assert_close("cli logits_last", &l[l.len() - v..], &case.logits_last, 1e-3, 0.0);
    for (i, &p) in case.logits_positions.iter().enumerate() {
        assert_close("cli logits_at", &l[p * v..(p + 1) * v], case.logits_at_row(i), 1e-3, 0.0);
    }
    // --prompt tokenizes the same text to the same ids.
    let out2 = tmp.path().join("p.safetensors");
    ok(&["logits", "--device", "gpu", "--model", s(&tiny_dir()), "--prompt", &case.text, "--out", s(&out2)]);
    let b2 = read(&out2);
    let st2 = SafeTensors::parse(&b2, "p").unwrap();
    assert_eq!(st2.get("ids").unwrap().to_i32().unwrap().len(), case.ids.len());
}

#[test]
fn inspect_command_writes_attention_and_lens_matching_hugging_face_on_either_engine() {
    let r = load_reference();
    let cases = load_attention(&r);
    let case = cases.iter().find(|c| c.name == "case1").unwrap();
    let tmp = TempDir::new("cli-inspect");
    let ids: Vec<String> = case.ids.iter().map(|i| i.to_string()).collect();
    for dev in ["cpu", "gpu"] {
        let out = tmp.path().join(format!("i-{dev}.safetensors"));
        let (_, stderr) = ok(&["inspect", "--device", dev, "--model", s(&tiny_dir()), "--ids", &ids.join(","), "--out", s(&out)]);
        assert!(stderr.contains("position 9"), "{stderr}");
        let bytes = read(&out);
        let st = SafeTensors::parse(&bytes, "i.safetensors").unwrap();
        let t = case.ids.len();
        for (l, want) in case.attn.iter().enumerate() {
            let a = st.get(&format!("attn.{l}")).unwrap();
            assert_eq!(a.shape, vec![2, t, t]);
            assert_close(&format!("cli {dev} attn.{l}"), &a.to_f32().unwrap(), want, 1e-4, 0.0);
        }
        let lens = st.get("lens").unwrap();
        assert_eq!(lens.shape, vec![r.n_layer, r.vocab_size]);
        assert_close(&format!("cli {dev} lens"), &lens.to_f32().unwrap(), &case.lens, 1e-3, 0.0);
        assert_eq!(st.metadata().unwrap()["position"], "9");
        // --prompt and --position: the lens at position 3 ends in the model's logits there.
        let c2 = r.case("case2");
        let p = c2.logits_positions[0];
        let out2 = tmp.path().join(format!("p-{dev}.safetensors"));
        ok(&["inspect", "--device", dev, "--model", s(&tiny_dir()), "--prompt", &c2.text, "--position", &p.to_string(), "--out", s(&out2)]);
        let b2 = read(&out2);
        let st2 = SafeTensors::parse(&b2, "p").unwrap();
        let lens2 = st2.get("lens").unwrap().to_f32().unwrap();
        assert_close(&format!("cli {dev} lens at a position"), &lens2[(r.n_layer - 1) * r.vocab_size..], c2.logits_at_row(0), 1e-3, 0.0);
        // Bad input: words, no file.
        let bad = tmp.path().join("bad.safetensors");
        let e = fails(&["inspect", "--device", dev, "--model", s(&tiny_dir()), "--ids", "1,2,3", "--position", "3", "--out", s(&bad)]);
        assert!(e.contains("position 3 is past the last of the 3 tokens"), "{e}");
        let e = fails(&["inspect", "--device", dev, "--model", s(&tiny_dir()), "--prompt", "", "--out", s(&bad)]);
        assert!(e.contains("at least one token"), "{e}");
        assert!(!bad.exists());
    }
}

#[test]
fn inspect_command_refuses_past_the_size_cap_in_words() {
    // The 256 MiB attention budget allows 724 of the 1024 tokens of a model with 2 x 64 heads.
    let tmp = TempDir::new("cli-inspect-cap");
    let cfg = many_heads_config();
    let dir = tmp.path().join("m");
    gpt2_webgpu::io::random::write_random_model(&cfg, gpt2_webgpu::io::safetensors::Dtype::F32, &dir, &read(&tiny_file("tokenizer.json")), 1).unwrap();
    let ids = |n: usize| (0..n).map(|i| (i % 64).to_string()).collect::<Vec<_>>().join(",");
    let bad = tmp.path().join("bad.safetensors");
    for dev in ["cpu", "gpu"] {
        let e = fails(&["inspect", "--device", dev, "--model", s(&dir), "--ids", &ids(725), "--out", s(&bad)]);
        assert!(e.contains("725 tokens") && e.contains("at most 724 tokens") && e.contains("shorter text"), "{dev}: {e}");
        assert!(!bad.exists());
    }
    let out = tmp.path().join("ok.safetensors");
    ok(&["inspect", "--device", "cpu", "--model", s(&dir), "--ids", &ids(724), "--out", s(&out)]);
    let st_bytes = read(&out);
    let st = SafeTensors::parse(&st_bytes, "ok").unwrap();
    assert_eq!(st.get("attn.1").unwrap().shape, vec![64, 724, 724]);
}

#[test]
fn generate_defaults_are_greedy_with_seed_0_as_in_the_js_api() {
    // No sampling flags: the greedy reference continuation, and the seed it used (0) is printed.
    let r = load_reference();
    let case = r.case("case1");
    let (stdout, stderr) = ok(&["generate", "--model", s(&tiny_dir()), "--prompt", &case.text, "--max-new-tokens", "3"]);
    let tok = gpt2_webgpu::text::tokenizer::Tokenizer::from_bytes(&read(&tiny_file("tokenizer.json"))).unwrap();
    assert_eq!(stdout, format!("{}{}\n", case.text, tok.decode(&case.greedy_next_ids[..3]).unwrap()));
    assert!(stderr.contains("[seed 0]"), "{stderr}");
}

#[test]
fn generate_streams_the_greedy_reference_and_reports_speed() {
    let r = load_reference();
    let case = r.case("case0");
    let (stdout, stderr) = ok(&["generate", "--device", "gpu", "--model", s(&tiny_dir()), "--prompt", &case.text, "--temperature", "0", "--max-new-tokens", "3"]);
    let tok = gpt2_webgpu::text::tokenizer::Tokenizer::from_bytes(&read(&tiny_file("tokenizer.json"))).unwrap();
    let want = format!("{}{}\n", case.text, tok.decode(&case.greedy_next_ids[..3]).unwrap());
    assert_eq!(stdout, want);
    assert!(stderr.contains("prefill:") && stderr.contains("tokens/s"), "{stderr}");
}

#[test]
fn convert_then_generate_from_the_package_and_refuse_a_mismatched_format() {
    let tmp = TempDir::new("cli-convert");
    let pkg = tmp.path().join("tiny-q8");
    let (_, err) = ok(&["convert", s(&tiny_dir()), "--quant", "q8", "--out", s(&pkg)]);
    assert!(err.contains("q8"), "{err}");
    assert!(pkg.join("manifest.json").exists());
    // Greedy from the q8 package: the reference's first tokens whose top-two margin is above q8's bound
    // (0.072, tests/quality.rs) must come out; the echoed prompt alone does not pass.
    let r = load_reference();
    let case = r.case("case0");
    let (stdout, _) = ok(&["generate", "--device", "gpu", "--model", s(&pkg), "--prompt", &case.text, "--temperature", "0", "--max-new-tokens", "4"]);
    let sure = case.greedy_margins.iter().take_while(|&&m| m > 0.072).count().min(4);
    assert!(sure >= 1, "the fixture has a sure first token");
    let tok = gpt2_webgpu::text::tokenizer::Tokenizer::from_bytes(&read(&tiny_file("tokenizer.json"))).unwrap();
    let generated = stdout.strip_prefix(case.text.as_str()).unwrap_or_else(|| panic!("the prompt is echoed first: {stdout:?}"));
    let want = tok.decode(&case.greedy_next_ids[..sure]).unwrap();
    assert!(generated.starts_with(&want), "q8 greedy: {generated:?} should start with the reference's {want:?}");
    assert!(generated.trim_end_matches('\n').len() > want.len() || sure == 4, "4 tokens generated: {generated:?}");
    let err = fails(&["generate", "--model", s(&pkg), "--weights", "q4", "--prompt", "x"]);
    assert!(err.contains("q8 package"), "{err}");
    let (table, _) = ok(&["compare", "--device", "gpu", "--model", s(&pkg), "--reference", s(&tiny_dir())]);
    assert!(table.contains("overall: top-1 agreement"), "{table}");
}

#[test]
fn bad_model_folders_and_arguments_give_clear_errors() {
    let tmp = TempDir::new("cli-bad");
    let err = fails(&["generate", "--model", s(&tmp.path().join("nowhere")), "--prompt", "x"]);
    assert!(err.contains("config.json"), "{err}");
    // A truncated model.safetensors.
    let bad = tmp.path().join("trunc");
    std::fs::create_dir_all(&bad).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(tiny_file(f), bad.join(f)).unwrap();
    }
    let full = read(&tiny_file("model.safetensors"));
    std::fs::write(bad.join("model.safetensors"), &full[..full.len() / 2]).unwrap();
    let err = fails(&["generate", "--model", s(&bad), "--prompt", "x"]);
    assert!(err.contains("truncated"), "{err}");
    let err = fails(&["logits", "--model", s(&tiny_dir()), "--ids", "1,50300", "--out", s(&tmp.path().join("x"))]);
    assert!(err.contains("50300") && err.contains("vocabulary"), "{err}");
    let err = fails(&["generate", "--model", s(&tiny_dir()), "--top-p", "0", "--prompt", "x"]);
    assert!(err.contains("top_p"), "{err}");
    let err = fails(&["random", "--size", "gpt5", "--out", s(&tmp.path().join("r"))]);
    assert!(err.contains("distilgpt2"), "{err}");
}

#[test]
fn a_random_model_with_real_distilgpt2_shapes_matches_the_cpu_reference() {
    let tmp = TempDir::new("cli-random");
    let dir = tmp.path().join("distil");
    ok(&["random", "--size", "distilgpt2", "--dtype", "f16", "--out", s(&dir)]);
    let ids = [464u32, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 50256];
    let out = tmp.path().join("l.safetensors");
    let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    ok(&["logits", "--device", "gpu", "--model", s(&dir), "--ids", &list.join(","), "--out", s(&out)]);
    let bytes = read(&out);
    let l = SafeTensors::parse(&bytes, "l").unwrap().get("logits").unwrap().to_f32().unwrap();
    let mut src = gpt2_webgpu::io::hf::HfModel::open(&dir).unwrap();
    let w = gpt2_webgpu::weights::Gpt2Weights::load(&mut src).unwrap();
    let want = gpt2_webgpu::reference::cpu::forward_logits_at(&w, &ids, &[0, 5, ids.len() - 1]).unwrap();
    let v = 50257;
    for (i, &p) in [0, 5, ids.len() - 1].iter().enumerate() {
        assert_close(&format!("distilgpt2-shaped logits at {p}"), &l[p * v..(p + 1) * v], want.logits_row(i), 1e-3, 0.0);
    }
    let (info, _) = ok(&["info", "--device", "gpu"]);
    assert!(info.contains("max_storage_buffer_binding_size"), "{info}");
}

#[test]
fn gpu_bench_reports_the_q8_gemv_yardstick_of_the_same_run() {
    // Under the GPU tuning (8 tokens per submit), 16 decode tokens are two full batches.
    let (out, _) = ok_env(
        &["bench", "--device", "gpu", "--json", "--profile", "--model", s(&tiny_dir()), "--weights", "q8", "--prompt-tokens", "5", "--decode-tokens", "16"],
        &[("GPT2_TUNING", "gpu")],
    );
    let (json, profiles) = out.split_once('\n').expect("the JSON line, then the profile");
    let o: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    assert_eq!(o["engine"], "gpu", "{o}");
    // The decode step's profile, then the prompt step's (5 tokens: the matmul kernel, layer norms of
    // their own, the logits of the last row only).
    let (profile, prompt) = profiles.split_once("prompt step of 5 tokens").expect("the prompt step's profile after the decode step's");
    let prompt_labels: Vec<&str> = prompt.lines().filter_map(|l| l.split_whitespace().next()).collect();
    for want in ["layer_norm", "qkv", "attention", "fc+gelu", "logits", "sample_scan", "sample_best"] {
        assert!(prompt_labels.contains(&want), "{want} missing from the prompt's profile:\n{prompt}");
    }
    // q8 weights get the f16 KV cache (nothing forces another here).
    assert_eq!(o["kv_format"], "f16", "{o}");
    // The GPU tuning folds ln_1 into qkv, ln_2 into fc and ln_f into the logits on decode steps: the
    // profile names them so and has no layer_norm op of its own; the sampler is two passes (greedy: sample_scan, sample_best).
    let labels: Vec<&str> = profile.lines().filter_map(|l| l.split_whitespace().next()).collect();
    for want in ["qkv+ln_1", "fc+gelu+ln_2", "attention", "proj+residual", "logits+ln_f", "sample_scan", "sample_best"] {
        assert!(labels.contains(&want), "{want} missing from the profile:\n{profile}");
    }
    assert!(!labels.contains(&"layer_norm") && !labels.contains(&"qkv") && !labels.contains(&"fc+gelu"), "{profile}");
    assert!(!labels.contains(&"ln_f") && !labels.contains(&"logits"), "{profile}");
    assert_eq!(o["tuning"]["tokens_per_submit"], 8, "{o}");
    assert_eq!(o["tokens_per_submit"], 8, "{o}");
    // One submit and one readback (of 8 rows of 76 bytes) per 8 decode tokens.
    assert_eq!((o["submits_per_token"].as_f64(), o["readbacks_per_token"].as_f64()), (Some(0.125), Some(0.125)), "{o}");
    assert_eq!(o["readback_bytes_per_token"].as_f64(), Some(76.0), "{o}");
    let (reference, decode, ratio) = (o["ref_gemv_q8_gb_s"].as_f64().unwrap(), o["decode_weight_gb_s"].as_f64().unwrap(), o["decode_vs_ref_gemv"].as_f64().unwrap());
    assert!(reference > 0.0 && decode > 0.0, "{o}");
    // The plain yardstick (gemv_ref.wgsl) and, beside it, the tuning's own gemv kernel over the same matrix.
    assert!(o["tuning_gemv_q8_gb_s"].as_f64().unwrap() > 0.0, "{o}");
    let bytes = o["weight_bytes_per_token"].as_f64().unwrap();
    assert!((decode - bytes * o["decode_tok_s"].as_f64().unwrap() / 1e9).abs() <= 1e-9 * decode.max(1.0), "decode GB/s = weight bytes x tok/s: {o}");
    assert!((ratio - decode / reference).abs() <= 1e-9 * ratio.max(1.0), "{o}");
    assert!(o["tuning"]["gemv_kernel"].is_string() && o["tuning"]["matmul_kernel"].is_string(), "{o}");
    // Layer norms folded into qkv and fc, and decode attention split over blocks of 64 keys with the merge
    // in the attention projection: still 5 dispatches per layer.
    assert_eq!(o["tuning"]["attn_block"], 64, "{o}");
    assert_eq!(o["dispatches_per_layer"], 5, "{o}");
    // Outside the layers: embed, logits (+ln_f), sample_scan, the second pass (tiny-gpt2: 2 layers, one wte chunk).
    assert_eq!(o["dispatches_per_token"], 2 * 5 + 4, "{o}");
    assert_eq!(o["tuning"]["sample_groups"], 256, "{o}");
    // GPUs read the weights from storage buffers (gemv, matmul, embed).
    assert_eq!(o["tuning"]["weights_in_textures"], false, "{o}");
    assert!(labels.contains(&"embed") && !labels.contains(&"embed_tex"), "{profile}");
}

#[test]
fn gpu_bench_profile_under_the_cpu_tuning_keeps_the_layer_norms_apart() {
    // f32 weights: the f32 KV cache; no fold under the CPU tuning, so ln_1 and ln_2 run as layer norm ops of
    // their own (layer_norm_rows there).
    let (out, _) = ok_env(
        &["bench", "--device", "gpu", "--json", "--profile", "--model", s(&tiny_dir()), "--weights", "f32", "--prompt-tokens", "3", "--decode-tokens", "2"],
        &[("GPT2_TUNING", "cpu")],
    );
    let (json, profile) = out.split_once('\n').expect("the JSON line, then the profile");
    let o: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    assert_eq!((o["weights"].as_str(), o["kv_format"].as_str()), (Some("f32"), Some("f32")), "{o}");
    assert_eq!(o["tuning"]["kind"], "cpu", "{o}");
    let labels: Vec<&str> = profile.lines().filter_map(|l| l.split_whitespace().next()).collect();
    for want in ["layer_norm_rows", "qkv", "fc+gelu", "ln_f", "logits", "sample_scan", "sample_best"] {
        assert!(labels.contains(&want), "{want} missing from the profile:\n{profile}");
    }
    assert!(!labels.iter().any(|l| l.contains("+ln_")), "nothing is folded under the CPU tuning:\n{profile}");
    assert_eq!(o["tuning"]["layer_norm_kernel"], "layer_norm_rows", "{o}");
    // lavapipe has subgroups of 8: prompts through matmul_subgroup, the windows through attention_window_subgroup;
    // the overrides pick the kernels without subgroups.
    assert_eq!((o["tuning"]["matmul_kernel"].as_str(), o["tuning"]["attention_window_kernel"].as_str()), (Some("matmul_subgroup"), Some("attention_window_subgroup")), "{o}");
    let (info, _) = ok_env(&["info", "--device", "gpu"], &[("GPT2_TUNING", "cpu"), ("GPT2_MATMUL_KERNEL", "matmul_rows"), ("GPT2_ATTENTION_WINDOW_KERNEL", "attention_window")]);
    assert!(info.contains("longer: matmul_rows") && info.contains("attention_rows_prompt, attention_window where"), "{info}");
    // The weights (wte too: one copy for the embedding and the logits) live in textures there.
    assert_eq!(o["tuning"]["weights_in_textures"], true, "{o}");
    assert!(labels.contains(&"embed_tex") && !labels.contains(&"embed"), "{profile}");
}

#[test]
fn gpu_bench_samples_with_the_settings_given_and_profiles_the_pass_they_pick() {
    // The page's default settings: top-k and top-p run the cut-off pass (sample_pick); temperature alone
    // the two-level draw (sample_draw). The JSON says what was measured.
    let dir = tiny_dir();
    for (args, pass, other) in [
        (&["--temperature", "0.8", "--top-k", "40", "--top-p", "0.95", "--repetition-penalty", "1.1", "--seed", "7"][..], "sample_pick", "sample_best"),
        (&["--temperature", "1"][..], "sample_draw", "sample_pick"),
    ] {
        let mut all = vec!["bench", "--device", "gpu", "--json", "--profile", "--model", s(&dir), "--weights", "f32", "--prompt-tokens", "3", "--decode-tokens", "2"];
        all.extend_from_slice(args);
        let (out, _) = ok_env(&all, &[("GPT2_TUNING", "cpu")]);
        let (json, profile) = out.split_once('\n').expect("the JSON line, then the profile");
        let o: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
        let temperature = args[1].parse::<f64>().unwrap();
        assert!((o["sampling"]["temperature"].as_f64().unwrap() - temperature).abs() < 1e-6, "{o}");
        if pass == "sample_pick" {
            assert_eq!((o["sampling"]["top_k"].as_u64(), o["sampling"]["seed"].as_u64()), (Some(40), Some(7)), "{o}");
        }
        assert!(o["decode_tok_s"].as_f64().unwrap() > 0.0, "{o}");
        let labels: Vec<&str> = profile.lines().filter_map(|l| l.split_whitespace().next()).collect();
        assert!(labels.contains(&pass) && !labels.contains(&other), "{pass} expected in the profile:\n{profile}");
    }
    // Settings the generator refuses are refused before anything loads, in words.
    let err = fails(&["bench", "--device", "gpu", "--model", s(&dir), "--temperature", "0.8", "--top-p", "0"]);
    assert!(err.contains("top_p"), "{err}");
}

#[test]
fn plan_lists_every_size_and_everything_fits_128_mib() {
    let (out, _) = ok(&["plan"]);
    for name in ["gpt2 ", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2"] {
        assert_eq!(out.lines().filter(|l| l.starts_with(name)).count(), 4, "{name}: f32, f16, q8, q4\n{out}");
    }
    assert!(!out.contains("does not fit"), "{out}");
    let (tight, _) = ok(&["plan", "--max-binding", "8388608"]);
    assert!(tight.contains("does not fit"), "an 8 MiB binding limit is refused in words\n{tight}");
}

#[test]
fn the_cpu_engine_runs_logits_generate_bench_and_info_from_the_command_line() {
    let r = load_reference();
    let case = r.case("case2");
    let tmp = TempDir::new("cli-cpu");
    let out = tmp.path().join("l.safetensors");
    let ids: Vec<String> = case.ids.iter().map(|i| i.to_string()).collect();
    let (_, err) = ok(&["logits", "--device", "cpu", "--model", s(&tiny_dir()), "--ids", &ids.join(","), "--out", s(&out)]);
    assert!(err.contains("on cpu ("), "the load line names the CPU engine: {err}");
    let bytes = read(&out);
    let l = SafeTensors::parse(&bytes, "l").unwrap().get("logits").unwrap().to_f32().unwrap();
    let v = r.vocab_size;
    assert_close("cpu cli logits_last", &l[l.len() - v..], &case.logits_last, 1e-3, 0.0);

    let c0 = r.case("case0");
    let (stdout, _) = ok(&["generate", "--device", "cpu", "--model", s(&tiny_dir()), "--prompt", &c0.text, "--temperature", "0", "--max-new-tokens", "3"]);
    let tok = gpt2_webgpu::text::tokenizer::Tokenizer::from_bytes(&read(&tiny_file("tokenizer.json"))).unwrap();
    assert_eq!(stdout, format!("{}{}\n", c0.text, tok.decode(&c0.greedy_next_ids[..3]).unwrap()));

    let (json, _) = ok(&["bench", "--device", "cpu", "--json", "--model", s(&tiny_dir()), "--weights", "f32,q8", "--prompt-tokens", "9", "--decode-tokens", "3"]);
    let lines: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    assert_eq!(lines.len(), 2, "{json}");
    for (o, w) in lines.iter().zip(["f32", "q8"]) {
        assert_eq!(o["weights"], w);
        assert_eq!(o["engine"], "cpu");
        assert_eq!(o["kv_format"], "f32", "the CPU engine's cache is f32: {o}");
        assert_eq!(o["prompt_tokens"], 9);
        assert!(o["device"].as_str().unwrap().starts_with("cpu ("), "{o}");
        for k in ["prefill_tok_s", "decode_tok_s"] {
            assert!(o[k].as_f64().unwrap() > 0.0, "{k}: {o}");
        }
        for k in ["tuning", "dispatches_per_layer", "dispatches_per_token", "submits_per_token", "readback_bytes_per_token"] {
            assert!(!o[k].is_null(), "{k}: {o}");
        }
        assert!(o["weight_bytes_per_token"].as_u64().unwrap() > 0);
        // The yardstick is a GPU kernel: present, and null on the CPU engine.
        assert!(o.get("ref_gemv_q8_gb_s").is_some_and(|v| v.is_null()) && o["decode_vs_ref_gemv"].is_null(), "{o}");
        assert!(o.get("tuning_gemv_q8_gb_s").is_some_and(|v| v.is_null()), "{o}");
    }
    assert!(lines[0]["weight_bytes_per_token"].as_u64() > lines[1]["weight_bytes_per_token"].as_u64(), "q8 reads fewer bytes than f32");

    let (info, _) = ok(&["info", "--device", "cpu"]);
    assert!(info.contains("engine: cpu") && info.contains("simd:"), "{info}");
    let err = fails(&["info", "--device", "tpu"]);
    assert!(err.contains("--device must be auto, gpu or cpu"), "{err}");
}
