//! GPT-2's byte-level BPE tokenizer: a thin wrapper over Hugging Face `tokenizers`, plus a streaming
//! decoder for printing generated text one token at a time.
//!
//! # Token bytes
//!
//! GPT-2's vocabulary is over *bytes*, not characters. Each of the 256 byte values is written as one
//! printable Unicode character (the `bytes_to_unicode` table of OpenAI's `encoder.py`: `' '` becomes `'Ġ'`,
//! `'\n'` becomes `'Ċ'`, printable ASCII stays itself, ...), and a token's string in `tokenizer.json` is the
//! concatenation of those characters. [`Tokenizer::token_bytes`] inverts that table, so it gives the exact
//! bytes a token stands for. Added (special) tokens such as `<|endoftext|>` are literal text and give
//! their UTF-8 content. All token bytes are computed once, when the tokenizer is loaded, into one flat
//! buffer with offsets.
//!
//! # Why the streaming decoder buffers
//!
//! Because tokens are byte sequences, one character can be split across tokens: `🤖` (4 bytes of UTF-8) is
//! two GPT-2 tokens, and neither is valid UTF-8 on its own. Decoding each token by itself would print
//! replacement characters, and re-decoding the whole history at every step costs O(n) per token.
//!
//! [`StreamDecoder`] instead keeps at most one *incomplete* UTF-8 sequence (up to 3 bytes) between
//! pushes. Each push appends the new token's bytes: complete characters are emitted at once; a valid but
//! unfinished sequence at the end is held back until the following tokens complete it. Bytes that can
//! never become valid (a stray continuation byte, an invalid lead byte, a sequence interrupted by a new
//! lead byte or by ASCII) are emitted as U+FFFD immediately, one U+FFFD per "maximal invalid subpart",
//! which is exactly the rule [`String::from_utf8_lossy`] follows. So for any token ids,
//!
//! ```text
//! concat(push(id) for id in ids) + finish()  ==  String::from_utf8_lossy(concat(token_bytes(id) for id in ids))
//! ```
//!
//! and for GPT-2 that is also what [`Tokenizer::decode`] returns. Work per push is proportional to the
//! token's own length (a few bytes), independent of how much text came before.

use std::sync::Arc;

use crate::error::{Error, Result};

/// The text of GPT-2's end-of-text token, which also separates documents in its training data.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A GPT-2 tokenizer loaded from a Hugging Face `tokenizer.json`.
///
/// Cloning is cheap for the byte table (shared) but copies the underlying `tokenizers` vocabulary.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    table: Arc<ByteTable>,
    eos_id: u32,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The derived Debug of the inner tokenizer would print all 50k tokens and merges.
        f.debug_struct("Tokenizer").field("vocab_size", &self.vocab_size()).field("eos_id", &self.eos_id).finish()
    }
}

impl Tokenizer {
    /// Loads a tokenizer from the bytes of a `tokenizer.json`.
    ///
    /// Fails with [`Error::Tokenizer`] when the bytes are not a tokenizer in Hugging Face's JSON format,
    /// when its decoder is not byte-level (GPT-2 style), when its token ids do not cover `0..vocab_size`
    /// without gaps, or when it has no `<|endoftext|>` token.
    pub fn from_bytes(bytes: &[u8]) -> Result<Tokenizer> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::Tokenizer("the file is empty".into())); // or only whitespace
        }
        let inner = tokenizers::Tokenizer::from_bytes(bytes)
            .map_err(|e| Error::Tokenizer(format!("it is not a valid Hugging Face tokenizer file ({e})")))?;

        if !matches!(inner.get_decoder(), Some(tokenizers::DecoderWrapper::ByteLevel(_))) {
            return Err(Error::Tokenizer(
                "its decoder is not \"ByteLevel\", so it is not a GPT-2 style byte-level BPE tokenizer".into(),
            ));
        }
        let eos_id =
            inner.token_to_id(END_OF_TEXT).ok_or_else(|| Error::Tokenizer(format!("it has no {END_OF_TEXT} token")))?;
        let table = ByteTable::build(&inner)?;
        Ok(Tokenizer { inner, table: Arc::new(table), eos_id })
    }

    /// Text to token ids. Adds no special tokens (GPT-2 has no BOS/EOS template); `<|endoftext|>`
    /// written in the text is recognised and becomes its single id.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| Error::Tokenizer(format!("encoding the text failed ({e})")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids to text, keeping special tokens (`<|endoftext|>` decodes to itself). Byte sequences that
    /// are not valid UTF-8 become U+FFFD, as in [`String::from_utf8_lossy`].
    ///
    /// Fails with [`Error::TokenOutOfRange`] for an id outside `0..vocab_size()` (the underlying library
    /// would silently drop it).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        if let Some(&id) = ids.iter().find(|&&id| self.table.get(id).is_none()) {
            return Err(Error::TokenOutOfRange { id, vocab: self.vocab_size() });
        }
        self.inner.decode(ids, false).map_err(|e| Error::Tokenizer(format!("decoding token ids failed ({e})")))
    }

    /// Number of token ids, including added tokens: every id in `0..vocab_size()` is a token
    /// (50257 for GPT-2).
    pub fn vocab_size(&self) -> usize {
        self.table.len()
    }

    /// The id of `<|endoftext|>` (50256 for GPT-2), as found in the tokenizer file.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// The raw bytes token `id` stands for, or `None` if `id` is outside the vocabulary.
    /// These may be an incomplete piece of a UTF-8 character.
    pub fn token_bytes(&self, id: u32) -> Option<Vec<u8>> {
        self.table.get(id).map(<[u8]>::to_vec)
    }

    /// A decoder that turns generated token ids into text incrementally. It shares this tokenizer's byte
    /// table (reference-counted), so it has no lifetime and can outlive or move away from the tokenizer.
    pub fn stream(&self) -> StreamDecoder {
        StreamDecoder::new(Arc::clone(&self.table))
    }

    /// The underlying Hugging Face tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// Every token's bytes, in one buffer: token `id` is `bytes[offsets[id]..offsets[id + 1]]`.
#[derive(Debug)]
struct ByteTable {
    bytes: Vec<u8>,
    offsets: Vec<u32>,
}

impl ByteTable {
    fn build(tok: &tokenizers::Tokenizer) -> Result<ByteTable> {
        let vocab_size = tok.get_vocab_size(true);
        let vocab_size_u32 = u32::try_from(vocab_size)
            .map_err(|_| Error::Tokenizer(format!("its vocabulary has {vocab_size} tokens, too many")))?;
        let added = tok.get_added_vocabulary().get_added_tokens_decoder();
        let unicode_to_byte = unicode_to_byte_table();

        let mut bytes = Vec::with_capacity(vocab_size * 8);
        let mut offsets = Vec::with_capacity(vocab_size + 1);
        offsets.push(0u32);
        for id in 0..vocab_size_u32 {
            if let Some(token) = added.get(&id) {
                // Added tokens are matched against raw text, so their content is the text itself. (The
                // library's ByteLevel decoder would instead map them through the byte alphabet when all their
                // characters are in it; for `<|endoftext|>`, GPT-2's only one, both give the same bytes.)
                bytes.extend_from_slice(token.content.as_bytes());
            } else {
                let token = tok.id_to_token(id).ok_or_else(|| {
                    Error::Tokenizer(format!(
                        "its token ids are not contiguous: id {id} has no token, but there are {vocab_size} tokens"
                    ))
                })?;
                push_byte_level(&token, &unicode_to_byte, &mut bytes);
            }
            let end = u32::try_from(bytes.len())
                .map_err(|_| Error::Tokenizer("its tokens are too long in total (over 4 GiB)".into()))?;
            offsets.push(end);
        }
        bytes.shrink_to_fit();
        Ok(ByteTable { bytes, offsets })
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn get(&self, id: u32) -> Option<&[u8]> {
        let id = usize::try_from(id).ok()?;
        let start = *self.offsets.get(id)? as usize;
        let end = *self.offsets.get(id + 1)? as usize;
        self.bytes.get(start..end)
    }
}

/// Appends the bytes a byte-level token string stands for. Like the `ByteLevel` decoder of `tokenizers`,
/// a token containing a character outside the byte alphabet is taken as literal UTF-8 text instead.
fn push_byte_level(token: &str, unicode_to_byte: &[Option<u8>], out: &mut Vec<u8>) {
    let start = out.len();
    for c in token.chars() {
        match unicode_to_byte.get(c as usize).copied().flatten() {
            Some(b) => out.push(b),
            None => {
                out.truncate(start);
                out.extend_from_slice(token.as_bytes());
                return;
            }
        }
    }
}

/// GPT-2's `bytes_to_unicode`: the printable character standing for each byte value.
/// Bytes that are printable in Latin-1 (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves; the other
/// 68 (control characters, space, DEL, NBSP, soft hyphen) are mapped in order to U+0100, U+0101, ...
fn bytes_to_unicode() -> [char; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table = ['\0'; 256];
    let mut next_shifted = 0x100u32;
    for b in 0..=255u8 {
        table[b as usize] = if printable(b) {
            char::from(b)
        } else {
            let c = char::from_u32(next_shifted).unwrap_or(char::REPLACEMENT_CHARACTER); // always Some: < 0x144
            next_shifted += 1;
            c
        };
    }
    table
}

/// The inverse of [`bytes_to_unicode`], indexed by character code (all codes are below 0x144).
fn unicode_to_byte_table() -> Vec<Option<u8>> {
    let forward = bytes_to_unicode();
    let len = forward.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
    let mut inverse = vec![None; len];
    for (b, &c) in (0..=255u8).zip(forward.iter()) {
        inverse[c as usize] = Some(b);
    }
    inverse
}

/// Decodes token ids to text one at a time, never splitting a UTF-8 character (see the module docs).
///
/// ```no_run
/// # fn demo(tokenizer: &gpt2_webgpu::text::tokenizer::Tokenizer, ids: &[u32]) {
/// let mut stream = tokenizer.stream();
/// for &id in ids {
///     if let Some(text) = stream.push(id) {
///         print!("{text}");
///     }
/// }
/// print!("{}", stream.finish());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct StreamDecoder {
    table: Arc<ByteTable>,
    utf8: Utf8Buffer,
}

impl StreamDecoder {
    fn new(table: Arc<ByteTable>) -> StreamDecoder {
        StreamDecoder { table, utf8: Utf8Buffer::default() }
    }

    /// Adds one token and returns the text it completes, or `None` if it completes none yet (its bytes
    /// are the start of a character that later tokens finish).
    ///
    /// An id outside the vocabulary decodes as U+FFFD, like an invalid byte: generation should not
    /// produce one, and a visible replacement character is more useful than an error mid-stream.
    pub fn push(&mut self, id: u32) -> Option<String> {
        let mut text = String::new();
        self.push_into(id, &mut text);
        (!text.is_empty()).then_some(text)
    }

    /// Like [`push`](Self::push), but appends the completed text to `out`, so a caller that reuses one
    /// `String` allocates nothing per token.
    pub fn push_into(&mut self, id: u32, out: &mut String) {
        match self.table.get(id) {
            Some(bytes) => self.utf8.feed(bytes, out),
            None => {
                self.utf8.flush(out);
                out.push(char::REPLACEMENT_CHARACTER);
            }
        }
    }

    /// Ends the stream: returns U+FFFD if an unfinished character is still buffered (as
    /// [`String::from_utf8_lossy`] does for a truncated sequence at the end), otherwise an empty string.
    /// The decoder is then empty and can be reused for a new stream.
    pub fn finish(&mut self) -> String {
        let mut text = String::new();
        self.utf8.flush(&mut text);
        text
    }

    /// Whether bytes of an unfinished character are buffered.
    pub fn has_pending(&self) -> bool {
        self.utf8.len > 0
    }
}

/// Incremental UTF-8 decoding with the replacement rules of [`String::from_utf8_lossy`].
#[derive(Clone, Debug, Default)]
struct Utf8Buffer {
    /// The bytes of a valid but unfinished UTF-8 sequence (at most 3; a 4th slot holds the byte being
    /// checked).
    bytes: [u8; 4],
    len: usize,
}

impl Utf8Buffer {
    /// Decodes `input` after what is buffered, appending complete characters to `out`.
    fn feed(&mut self, mut input: &[u8], out: &mut String) {
        // 1. Finish the character left over from earlier input, one byte at a time (at most 3 bytes).
        while self.len > 0 {
            let Some((&b, rest)) = input.split_first() else { return };
            self.bytes[self.len] = b;
            match std::str::from_utf8(&self.bytes[..=self.len]) {
                Ok(c) => {
                    out.push_str(c);
                    self.len = 0;
                    input = rest;
                }
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix: keep the byte and wait for more.
                    self.len += 1;
                    input = rest;
                }
                Err(_) => {
                    // `b` cannot continue the sequence: the buffered bytes are one invalid subpart, and
                    // `b` is looked at afresh below (it may start a new character).
                    self.len = 0;
                    out.push(char::REPLACEMENT_CHARACTER);
                }
            }
        }

        // 2. Nothing is buffered now: decode the rest as from_utf8_lossy would, except that a valid
        //    prefix cut off by the end of the input is buffered rather than replaced.
        let mut chunks = input.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            out.push_str(chunk.valid());
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            let at_end = chunks.peek().is_none();
            if at_end && is_incomplete_utf8(invalid) {
                self.bytes[..invalid.len()].copy_from_slice(invalid);
                self.len = invalid.len();
            } else {
                out.push(char::REPLACEMENT_CHARACTER);
            }
        }
    }

    /// Ends the input: an unfinished character becomes one U+FFFD.
    fn flush(&mut self, out: &mut String) {
        if self.len > 0 {
            self.len = 0;
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

/// Whether `bytes` is the start of a valid UTF-8 character that more bytes could complete.
fn is_incomplete_utf8(bytes: &[u8]) -> bool {
    bytes.len() < 4 && matches!(std::str::from_utf8(bytes), Err(e) if e.valid_up_to() == 0 && e.error_len().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_to_unicode_matches_gpt2() {
        let t = bytes_to_unicode();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[0xE9], 'é');
        assert_eq!(t[0xAD], 'Ń'); // the soft hyphen is the 68th and last shifted byte
        let inverse = unicode_to_byte_table();
        for b in 0..=255u8 {
            assert_eq!(inverse[t[b as usize] as usize], Some(b));
        }
        assert_eq!(inverse.iter().flatten().count(), 256);
    }

    /// Feeds `bytes` in the pieces given by `cuts` and checks the result against from_utf8_lossy.
    fn check_pieces(bytes: &[u8], cuts: &[usize]) {
        let mut buf = Utf8Buffer::default();
        let mut out = String::new();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
            let before = out.len();
            buf.feed(&bytes[start..end], &mut out);
            // Each piece is whole characters: the invariant that lets a caller print it at once.
            assert!(out.is_char_boundary(before));
            start = end;
        }
        buf.flush(&mut out);
        assert_eq!(out, String::from_utf8_lossy(bytes), "bytes {bytes:02x?} cut at {cuts:?}");
    }

    #[test]
    fn utf8_buffer_matches_from_utf8_lossy_for_every_cut() {
        let cases: &[&[u8]] = &[
            "héllo 🤖 中文 ✔️".as_bytes(),
            &[0x80],
            &[0xE2, 0x82, b'A'],
            &[0xE2, 0x82],
            &[0xF0, 0x9F, 0xE2, 0x82, 0xAC],
            &[0xC0, 0xAF, 0xC1],
            &[0xED, 0xA0, 0x80, 0xED, 0x9F, 0xBF],
            &[0xE0, 0x80, 0xE0, 0xA0, 0x80],
            &[0xF4, 0x90, 0x80, 0x80, 0xF4, 0x8F, 0xBF, 0xBF],
            &[0xF0, 0x9F, 0xA4, b'x', 0xFF, 0xFE, 0xF5],
            &[0xF0, 0x9F, 0xA4, 0xF0, 0x9F, 0xA4, 0x96],
        ];
        for bytes in cases {
            // Every way of cutting the bytes into at most three pieces.
            for i in 0..=bytes.len() {
                for j in i..=bytes.len() {
                    check_pieces(bytes, &[i, j]);
                }
            }
        }
    }

    #[test]
    fn utf8_buffer_matches_from_utf8_lossy_on_random_bytes() {
        // xorshift: deterministic and dependency-free.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Bytes that make interesting UTF-8: ASCII, continuation bytes, every kind of lead byte.
        const ALPHABET: [u8; 16] =
            [b'a', 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC3, 0xE0, 0xE2, 0xED, 0xF0, 0xF4, 0xF5, 0xFF];
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| ALPHABET[(next() % 16) as usize]).collect();
            let mut cuts: Vec<usize> = (0..(next() % 4)).map(|_| (next() as usize) % (len + 1)).collect();
            cuts.sort_unstable();
            check_pieces(&bytes, &cuts);
        }
    }
}
