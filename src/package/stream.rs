//! Reading a package as its shards arrive (the browser), without holding the whole of it.

use super::manifest::{Region, ValidManifest};
use super::verify_file;
use crate::error::{Error, Result};
use crate::quant::PackedMatrix;
use crate::weights::{tensor_specs, Role, TensorData, TensorSpec};

// streaming

/// A package read as its shards arrive, in order (the browser: fetch one shard, push it, drop it). Each
/// shard is checked (size, SHA-256) when pushed; only the bytes from the start of the next tensor not yet
/// handed out are kept, so at most one shard plus the part of one tensor that began in earlier shards is
/// buffered. Tensors come out in `tensor_specs` order, exactly as [`Package`] reads them: vectors as f32,
/// matrices (and wte) as stored.
pub struct PackageStream {
    valid: ValidManifest,
    specs: Vec<TensorSpec>,
    /// Shards pushed so far (= the index of the next one).
    shards: usize,
    /// Tensors handed out so far (= the index of the next one).
    tensors: usize,
    /// Bytes `[buf_start + head, buf_start + buf.len())` of the package stream are live; the `head` bytes
    /// before them are spent and dropped in bulk (so handing out small tensors does not move the rest).
    buf: Vec<u8>,
    buf_start: u64,
    head: usize,
    /// The most bytes ever held in `buf` (its capacity).
    peak: usize,
}

impl PackageStream {
    /// Start reading the package `valid` describes (a manifest that passed [`Manifest::parse`]).
    pub fn new(valid: ValidManifest) -> PackageStream {
        let specs = tensor_specs(&valid.config);
        PackageStream { valid, specs, shards: 0, tensors: 0, buf: Vec::new(), buf_start: 0, head: 0, peak: 0 }
    }

    pub fn manifest(&self) -> &ValidManifest {
        &self.valid
    }

    /// How many shards have been pushed (the index the next one must have).
    pub fn shards_pushed(&self) -> usize {
        self.shards
    }

    /// The most bytes this stream has held at once.
    pub fn peak_buffered_bytes(&self) -> usize {
        self.peak
    }

    /// Where the package stream has been received up to.
    fn received(&self) -> u64 {
        self.valid.shard_starts.get(self.shards).copied().unwrap_or(self.valid.manifest.total_bytes)
    }

    /// Where the next tensor's first region starts (the end of the stream when all are out).
    fn keep_from(&self) -> u64 {
        self.valid.manifest.tensors.get(self.tensors).map_or(self.valid.manifest.total_bytes, |t| t.data.offset)
    }

    /// Drop the spent bytes at the front of `buf`.
    fn compact(&mut self) {
        self.buf.drain(..self.head);
        self.buf_start += self.head as u64;
        self.head = 0;
    }

    /// Shard `index` (which must be the next one) of the package, checked against its manifest entry.
    pub fn push_shard(&mut self, index: usize, bytes: &[u8]) -> Result<()> {
        self.push_shard_from(index, bytes.len(), None, |dst| dst.copy_from_slice(bytes))
    }

    /// Like [`push_shard`](Self::push_shard), for a shard of `len` bytes that `fill` writes straight into
    /// the stream's buffer (the browser copies it there from a JS array: no copy in between, so a load
    /// holds one shard, not two). A shard that fails its check leaves the stream as it was.
    /// `digest`: the hex SHA-256 the caller has already computed over exactly the bytes `fill` writes (the
    /// browser's worker hashes every file with WebCrypto before it uses or caches it, about 7x faster than
    /// hashing again in wasm: ~1.3 s per gpt2 q8 load); it is compared with the manifest's instead of
    /// hashing the bytes again. None: the bytes are hashed here.
    pub fn push_shard_from(&mut self, index: usize, len: usize, digest: Option<&str>, fill: impl FnOnce(&mut [u8])) -> Result<()> {
        let Some(entry) = self.valid.manifest.shards.get(index).cloned() else {
            return Err(Error::InvalidArgument(format!(
                "shard {index} pushed, but the package has {} shards",
                self.valid.manifest.shards.len()
            )));
        };
        if index != self.shards {
            return Err(Error::InvalidArgument(format!(
                "{} pushed where {} comes next: shards go in order",
                entry.file,
                self.valid.manifest.shards.get(self.shards).map_or("no shard", |e| e.file.as_str())
            )));
        }
        if len as u64 != entry.bytes {
            return Err(Error::PackageFileSize { file: entry.file.clone(), expected: entry.bytes, actual: len as u64 });
        }
        if let Some(d) = digest {
            if !d.eq_ignore_ascii_case(&entry.sha256) {
                return Err(Error::PackageChecksum { file: entry.file.clone(), expected: entry.sha256.clone(), actual: d.to_string() });
            }
        }
        self.compact();
        // The buffer is empty when the next tensor starts in this shard, or holds exactly the earlier part
        // of that tensor when it started before; the shard goes after it, whole, and is checked in place.
        let start = self.valid.shard_starts[index];
        let at = self.buf.len();
        self.buf.reserve_exact(len);
        self.buf.resize(at + len, 0);
        fill(&mut self.buf[at..]);
        if let Err(e) = if digest.is_some() { Ok(()) } else { verify_file(&entry, &self.buf[at..], &entry.file) } {
            self.buf.truncate(at);
            return Err(e);
        }
        // Bytes before the next tensor's start (padding at the shard's front) are spent at once.
        let skip = self.keep_from().saturating_sub(start).min(len as u64) as usize;
        if at == 0 {
            self.buf_start = start;
            self.head = skip;
        }
        debug_assert!(at == 0 || skip == 0);
        debug_assert_eq!(self.buf_start + self.buf.len() as u64, start + len as u64);
        self.peak = self.peak.max(self.buf.capacity());
        self.shards += 1;
        Ok(())
    }

    /// The next tensor, if all its bytes have arrived; None when it needs more shards (or all are out).
    pub fn next_tensor(&mut self) -> Result<Option<(TensorSpec, TensorData)>> {
        let Some(entry) = self.valid.manifest.tensors.get(self.tensors) else { return Ok(None) };
        let end = entry.scales.map_or(entry.data.end(), |s| s.end());
        if end > self.received() {
            return Ok(None);
        }
        let u32s = |r: Region| -> Vec<u32> {
            let lo = (r.offset - self.buf_start) as usize;
            self.buf[lo..lo + r.bytes as usize]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let spec = self.specs[self.tensors].clone();
        let data = match spec.role {
            Role::Vector => TensorData::Vector(u32s(entry.data).into_iter().map(f32::from_bits).collect()),
            Role::Matrix | Role::Embedding => TensorData::Matrix(PackedMatrix {
                format: self.valid.formats[self.tensors],
                n: entry.shape[0],
                k: entry.shape[1],
                words: u32s(entry.data),
                scales: entry.scales.map(u32s).unwrap_or_default(),
            }),
        };
        self.tensors += 1;
        self.head = ((self.keep_from().min(self.received()) - self.buf_start) as usize).min(self.buf.len());
        if self.head * 2 >= self.buf.len() {
            self.compact();
        }
        Ok(Some((spec, data)))
    }

    /// Free the buffer (once every tensor is out), so what is allocated next can use its memory: in the
    /// browser wasm memory never shrinks, and the CPU engine's KV cache comes right after the last shard.
    pub fn release_buffer(&mut self) {
        self.buf_start += self.buf.len() as u64;
        self.head = 0;
        self.buf = Vec::new();
    }

    /// Check that every shard was pushed and every tensor handed out.
    pub fn finish(&self) -> Result<()> {
        if let Some(missing) = self.valid.manifest.shards.get(self.shards) {
            return Err(Error::Package {
                file: missing.file.clone(),
                reason: "was not supplied: the package is incomplete".into(),
            });
        }
        if let Some(t) = self.specs.get(self.tensors) {
            return Err(Error::InvalidArgument(format!("tensor `{}` was not taken from the package stream", t.name)));
        }
        Ok(())
    }
}
