//! The model package: what the web page downloads (and the CLI can run from). A folder of
//!
//!   manifest.json    format, version, model name, config, quantization, files with SHA-256, tensor table
//!   shard-000.bin    the tensor bytes, cut into shards of at most 64 MiB (static hosts refuse > 100 MB)
//!   shard-001.bin    ...
//!   tokenizer.json   the Hugging Face tokenizer, as shipped with the model
//!
//! See docs/format.md for the full description. In short: the shards, concatenated, are one byte stream
//! (the *package stream*). Every tensor occupies 256-byte-aligned regions of that stream, `data` (and for
//! q8/q4 `scales`), given as global `{offset, bytes}`, which may cross a shard boundary. Tensors come in
//! `weights::tensor_specs` order, the order `Model::load` pulls them, so a loader can read the shards one
//! after the other and upload each tensor as soon as its last byte has arrived.
//!
//! Tensor contents:
//!   * matrices (Role::Matrix): `quant::PackedMatrix` in the package's quantization, out-major [N, K]
//!     (the transpose of Hugging Face's Conv1D [K, N]): `data` = words, little-endian u32, `scales` =
//!     f16 pairs in u32 words (q8/q4 only);
//!   * `wte.weight` (Role::Embedding, [V, C]): the same, except that a q4 package stores it as q8 (it is
//!     both the embedding and the output projection; 4 bits cost too much accuracy there);
//!   * vectors (Role::Vector: wpe, biases, layer norms): f32 little-endian, Hugging Face shape.
//!
//! Rooms: `manifest` (the types and their checks), `layout` (where tensors go), `write`, `read`
//! (`Package`, shard stores) and `stream` (`PackageStream`). This room knows nothing of the GPU or the
//! model: it speaks `weights::TensorSource` / `TensorData` only.

mod layout;
mod manifest;
mod read;
mod stream;
mod write;

pub use layout::{layout, package_size_plan};
pub use manifest::{FileEntry, Manifest, Region, TensorEntry, ValidManifest};
pub use read::{DirStore, MemoryStore, Package, ShardStore};
pub use stream::PackageStream;
pub use write::{write_package, write_package_sharded};

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

/// The `format` field of every manifest.
pub const FORMAT: &str = "gpt2-webgpu-package";
/// The manifest version this build writes and reads.
pub const VERSION: u32 = 1;
/// Every tensor region starts at a multiple of this many bytes of the package stream.
pub const ALIGN: u64 = 256;
/// Default (and recommended) largest shard: 64 MiB, well under the 100 MB that static hosts accept.
pub const DEFAULT_SHARD_BYTES: u64 = 64 << 20;
pub const MANIFEST_FILE: &str = "manifest.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The name of shard `i`.
pub fn shard_file_name(i: usize) -> String {
    format!("shard-{i:03}.bin")
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(super) fn hex(digest: &[u8]) -> String {
    use std::fmt::Write;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Check `bytes` against a manifest file entry (size, then SHA-256). `label` names the file in errors.
pub fn verify_file(entry: &FileEntry, bytes: &[u8], label: &str) -> Result<()> {
    if bytes.len() as u64 != entry.bytes {
        return Err(Error::PackageFileSize {
            file: label.into(),
            expected: entry.bytes,
            actual: bytes.len() as u64,
        });
    }
    let actual = sha256_hex(bytes);
    if actual != entry.sha256 {
        return Err(Error::PackageChecksum {
            file: label.into(),
            expected: entry.sha256.clone(),
            actual,
        });
    }
    Ok(())
}
