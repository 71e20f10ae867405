//! The fuzz targets. Seeds are built here with the crate's own writers (a tiny random GPT-2, its
//! safetensors file and its package), so they always match the current formats.

use std::path::PathBuf;

use gpt2_webgpu::config::Gpt2Config;
use gpt2_webgpu::io::hf::HfModel;
use gpt2_webgpu::package::{sha256_hex, write_package_sharded, FileEntry, Manifest, PackageStream, MANIFEST_FILE};
use gpt2_webgpu::quant::WeightFormat;
use gpt2_webgpu::io::random::write_random_model;
use gpt2_webgpu::io::safetensors::Dtype;
use gpt2_webgpu::text::tokenizer::Tokenizer;
use gpt2_webgpu::weights::{tensor_specs, TensorData, TensorSource};

use crate::mutate::{self, Rng};
use crate::Target;

pub const NAMES: [&str; 5] = ["safetensors", "config", "manifest", "package-stream", "stream-decoder"];

pub fn make(name: &str) -> Box<dyn Target> {
    match name {
        "safetensors" => Box::new(Safetensors::new()),
        "config" => Box::new(Config::new()),
        "manifest" => Box::new(ManifestTarget::new()),
        "package-stream" => Box::new(Stream::new()),
        "stream-decoder" => Box::new(Decoder::new()),
        _ => unreachable!("checked in main"),
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A GPT-2 small enough that one execution takes microseconds, with every tensor GPT-2 has.
fn tiny_config() -> Gpt2Config {
    Gpt2Config {
        vocab_size: 40,
        n_positions: 8,
        n_embd: 8,
        n_layer: 2,
        n_head: 2,
        n_inner: 32,
        layer_norm_epsilon: 1e-5,
        bos_token_id: 39,
        eos_token_id: 39,
    }
}

/// config.json, model.safetensors and a q8 package (shards of at most 700 bytes, so tensors cross
/// shards) of the tiny model, written once into target/fuzz-work.
struct Seeds {
    config_json: Vec<u8>,
    safetensors: Vec<u8>,
    manifest: Vec<u8>,
    shards: Vec<Vec<u8>>,
}

fn seeds() -> Seeds {
    let work = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target")).join("fuzz-work");
    let (model, pkg) = (work.join("tiny"), work.join("tiny-q8"));
    if !pkg.join(MANIFEST_FILE).is_file() {
        let cfg = tiny_config();
        write_random_model(&cfg, Dtype::F32, &model, b"{}", 7).expect("tiny random model");
        let mut hf = HfModel::open(&model).expect("tiny model opens");
        write_package_sharded(&mut hf, b"{}", WeightFormat::Q8, "fuzz-tiny", &pkg, 700).expect("tiny package");
    }
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let manifest = read(pkg.join(MANIFEST_FILE));
    let valid = Manifest::parse(&manifest, "seed").expect("seed manifest");
    Seeds {
        config_json: read(model.join("config.json")),
        safetensors: read(model.join("model.safetensors")),
        shards: valid.manifest.shards.iter().map(|s| read(pkg.join(&s.file))).collect(),
        manifest,
    }
}

// ---- safetensors: header, offsets, dtypes, then every tensor read against the config ---------------
struct Safetensors {
    seed: Vec<u8>,
    config_json: Vec<u8>,
    input: Vec<u8>,
}

impl Safetensors {
    fn new() -> Self {
        let s = seeds();
        Safetensors { seed: s.safetensors, config_json: s.config_json, input: Vec::new() }
    }
}

impl Target for Safetensors {
    fn name(&self) -> &'static str {
        "safetensors"
    }
    fn run(&mut self, rng: &mut Rng) -> bool {
        let mut data = self.seed.clone();
        // Mostly the header (the first few hundred bytes): that is where the parser works.
        if rng.chance(2) {
            let hlen = u64::from_le_bytes(data[..8].try_into().unwrap()) as usize;
            let mut header = data[8..8 + hlen].to_vec();
            if let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&header) {
                mutate::json(rng, &mut doc);
                header = serde_json::to_vec(&doc).unwrap();
                if rng.chance(2) {
                    while !(8 + header.len()).is_multiple_of(8) {
                        header.push(b' ');
                    }
                }
            }
            let mut out = (header.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(&header);
            out.extend_from_slice(&data[8 + hlen..]);
            data = out;
        } else {
            mutate::bytes(rng, &mut data, &self.seed);
        }
        self.input = data.clone();
        let Ok(st) = gpt2_webgpu::io::safetensors::SafeTensors::parse(&data, "fuzz.safetensors") else { return false };
        for name in st.names() {
            let v = st.get(name).expect("a listed tensor has a view");
            let _ = v.to_f32();
            let _ = v.to_f64();
            let _ = v.to_i32();
        }
        let Ok(mut hf) = HfModel::from_parts(&self.config_json, data, Vec::new()) else { return false };
        let cfg = hf.config().clone();
        tensor_specs(&cfg).iter().all(|spec| {
            let got = hf.read_f32(spec);
            // Accepted: every tensor has exactly the shape the config implies.
            got.map(|v| assert_eq!(v.len(), spec.numel(), "{}", spec.name)).is_ok()
        })
    }
    fn input(&self) -> Vec<u8> {
        self.input.clone()
    }
}

// ---- config.json -------------------------------------------------------------------------------
struct Config {
    seeds: Vec<serde_json::Value>,
    input: Vec<u8>,
}

impl Config {
    fn new() -> Self {
        let mut seeds: Vec<serde_json::Value> = Gpt2Config::PRESETS
            .iter()
            .map(|p| serde_json::from_str(&Gpt2Config::preset(p).unwrap().to_hf_json()).unwrap())
            .collect();
        seeds.push(serde_json::from_slice(&std::fs::read(root().join("tests/fixtures/tiny-gpt2/config.json")).unwrap()).unwrap());
        Config { seeds, input: Vec::new() }
    }
}

impl Target for Config {
    fn name(&self) -> &'static str {
        "config"
    }
    fn run(&mut self, rng: &mut Rng) -> bool {
        let mut doc = rng.pick(&self.seeds).clone();
        mutate::json(rng, &mut doc);
        let mut bytes = serde_json::to_vec(&doc).unwrap();
        if rng.chance(4) {
            mutate::bytes(rng, &mut bytes, b"{\"n_layer\": 1e999, -0, null, true}");
        }
        self.input = bytes.clone();
        match Gpt2Config::from_json(&bytes) {
            Ok(cfg) => {
                // Oracle: what the parser accepts is valid, and every size derived from it is computable.
                cfg.validate().expect("from_json accepted a config validate refuses");
                assert!(cfg.n_params() < usize::MAX, "n_params overflowed");
                let specs = tensor_specs(&cfg);
                assert_eq!(specs.len(), 4 + 12 * cfg.n_layer);
                let _ = gpt2_webgpu::package::package_size_plan(&cfg, WeightFormat::Q4);
                true
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                false
            }
        }
    }
    fn input(&self) -> Vec<u8> {
        self.input.clone()
    }
}

// ---- manifest.json, then the stream of the original shards under it -----------------------------------
struct ManifestTarget {
    doc: serde_json::Value,
    raw: Vec<u8>,
    shards: Vec<Vec<u8>>,
    input: Vec<u8>,
}

impl ManifestTarget {
    fn new() -> Self {
        let s = seeds();
        ManifestTarget { doc: serde_json::from_slice(&s.manifest).unwrap(), raw: s.manifest, shards: s.shards, input: Vec::new() }
    }
}

/// Push every shard and take every tensor; the first error ends it. Returns the tensors on success.
fn stream_all(valid: gpt2_webgpu::package::ValidManifest, shards: &[Vec<u8>]) -> gpt2_webgpu::error::Result<Vec<TensorData>> {
    let mut s = PackageStream::new(valid);
    let mut out = Vec::new();
    for (i, b) in shards.iter().enumerate() {
        s.push_shard(i, b)?;
        while let Some((_, d)) = s.next_tensor()? {
            out.push(d);
        }
    }
    s.finish()?;
    Ok(out)
}

impl Target for ManifestTarget {
    fn name(&self) -> &'static str {
        "manifest"
    }
    fn run(&mut self, rng: &mut Rng) -> bool {
        let bytes = if rng.chance(4) {
            let mut b = self.raw.clone();
            mutate::bytes(rng, &mut b, &self.raw);
            b
        } else {
            let mut doc = self.doc.clone();
            mutate::json(rng, &mut doc);
            serde_json::to_vec(&doc).unwrap()
        };
        self.input = bytes.clone();
        match Manifest::parse(&bytes, "fuzz/manifest.json") {
            Ok(valid) => stream_all(valid, &self.shards).is_ok(),
            Err(_) => false,
        }
    }
    fn input(&self) -> Vec<u8> {
        self.input.clone()
    }
}

// ---- PackageStream: random shard splits (must stream the same tensors), truncation and bit flips
// (must be refused), shards out of order (refused) ----------------------------------------------------
struct Stream {
    manifest: Manifest,
    stream: Vec<u8>,
    want: Vec<TensorData>,
    input: Vec<u8>,
}

impl Stream {
    fn new() -> Self {
        let s = seeds();
        let valid = Manifest::parse(&s.manifest, "seed").unwrap();
        let want = stream_all(valid.clone(), &s.shards).expect("the seed package streams");
        Stream { manifest: valid.manifest, stream: s.shards.concat(), want, input: Vec::new() }
    }
}

impl Target for Stream {
    fn name(&self) -> &'static str {
        "package-stream"
    }
    fn run(&mut self, rng: &mut Rng) -> bool {
        // Cut the package stream into 1..=12 shards at random points (empty shards are not allowed).
        let n = self.stream.len();
        let mut cuts: Vec<usize> = (0..rng.below(12)).map(|_| 1 + rng.below(n - 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut shards = Vec::new();
        let mut at = 0;
        for c in cuts.into_iter().chain([n]) {
            shards.push(self.stream[at..c].to_vec());
            at = c;
        }
        let mut m = self.manifest.clone();
        m.shards = shards
            .iter()
            .enumerate()
            .map(|(i, b)| FileEntry { file: format!("part-{i}.bin"), bytes: b.len() as u64, sha256: sha256_hex(b) })
            .collect();
        let json = m.to_json();
        self.input = json.clone().into_bytes();
        let valid = Manifest::parse(json.as_bytes(), "fuzz").expect("a re-sharded manifest is valid");
        // Then damage it (or not): a bit flip, a truncated or extended shard, two shards swapped.
        let damage = rng.below(5);
        let i = rng.below(shards.len());
        match damage {
            0 => {
                let b = &mut shards[i];
                let j = rng.below(b.len());
                b[j] ^= 1 << rng.below(8);
            }
            1 => {
                let len = shards[i].len();
                shards[i].truncate(rng.below(len));
            }
            2 => shards[i].push(rng.next() as u8),
            3 if shards.len() > 1 => {
                let j = (i + 1 + rng.below(shards.len() - 1)) % shards.len();
                shards.swap(i, j);
            }
            _ => {}
        }
        let intact = damage == 4 || (damage == 3 && shards.len() == 1);
        self.input.extend(shards.concat());
        match stream_all(valid, &shards) {
            Ok(got) => {
                assert!(intact, "a damaged package streamed without an error (damage {damage})");
                assert!(got == self.want, "re-sharded into {} shards, the tensors differ", shards.len());
                true
            }
            Err(e) => {
                assert!(!intact, "an intact re-sharded package was refused: {e}");
                false
            }
        }
    }
    fn input(&self) -> Vec<u8> {
        self.input.clone()
    }
}

// ---- the tokenizer's streaming decoder: random ids, characters split across tokens ----------------
struct Decoder {
    tok: Tokenizer,
    /// Ids whose token is one byte of a multi-byte character (so sequences split characters).
    byte_ids: Vec<u32>,
    input: Vec<u8>,
}

impl Decoder {
    fn new() -> Self {
        let json = std::fs::read(root().join("tests/fixtures/tiny-gpt2/tokenizer.json")).expect("fixture tokenizer");
        let tok = Tokenizer::from_bytes(&json).expect("tokenizer");
        let byte_ids = (0..tok.vocab_size() as u32)
            .filter(|&id| tok.token_bytes(id).is_some_and(|b| b.len() == 1 && b[0] >= 0x80))
            .collect();
        Decoder { tok, byte_ids, input: Vec::new() }
    }
}

impl Target for Decoder {
    fn name(&self) -> &'static str {
        "stream-decoder"
    }
    fn run(&mut self, rng: &mut Rng) -> bool {
        let v = self.tok.vocab_size() as u32;
        let ids: Vec<u32> = (0..1 + rng.below(24))
            .map(|_| match rng.below(10) {
                0..=5 => *rng.pick(&self.byte_ids),
                6..=8 => rng.below(v as usize) as u32,
                _ => {
                    let any = rng.next() as u32;
                    *rng.pick(&[v, v + 1, u32::MAX, any])
                }
            })
            .collect();
        self.input = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        let mut d = self.tok.stream();
        let mut got = String::new();
        for &id in &ids {
            if let Some(t) = d.push(id) {
                got.push_str(&t);
            }
        }
        got.push_str(&d.finish());
        assert!(!d.has_pending(), "finish() left bytes pending");
        // Oracle: out-of-vocabulary ids are U+FFFD between runs that decode as from_utf8_lossy does.
        let mut want = String::new();
        let mut run = Vec::new();
        for &id in &ids {
            match self.tok.token_bytes(id) {
                Some(b) => run.extend_from_slice(&b),
                None => {
                    want.push_str(&String::from_utf8_lossy(&run));
                    run.clear();
                    want.push(char::REPLACEMENT_CHARACTER);
                }
            }
        }
        want.push_str(&String::from_utf8_lossy(&run));
        assert_eq!(got, want, "ids {ids:?}");
        true
    }
    fn input(&self) -> Vec<u8> {
        self.input.clone()
    }
}
