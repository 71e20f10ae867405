//! The tokenizer against the Hugging Face (Python) oracle in tests/fixtures/tokenizer-cases.json, and the
//! streaming decoder against `String::from_utf8_lossy`.

use std::collections::HashMap;
use std::sync::OnceLock;

use gpt2_webgpu::text::tokenizer::*;
use gpt2_webgpu::Error;

const TOKENIZER_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-gpt2/tokenizer.json");
const CASES_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tokenizer-cases.json");

fn tokenizer_json() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(TOKENIZER_JSON).expect("read tokenizer.json fixture"))
}

fn tok() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| Tokenizer::from_bytes(tokenizer_json()).expect("load tokenizer.json fixture"))
}

struct Case {
    text: String,
    ids: Vec<u32>,
    decoded: String,
}

fn cases() -> Vec<Case> {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(CASES_JSON).expect("read tokenizer-cases.json")).expect("parse cases");
    let cases = json["cases"].as_array().expect("`cases` array");
    assert!(cases.len() >= 20, "expected the full fixture, got {} cases", cases.len());
    cases
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().expect("text").to_owned(),
            ids: c["ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id") as u32).collect(),
            decoded: c["decoded"].as_str().expect("decoded").to_owned(),
        })
        .collect()
}

/// Decodes `ids` with a fresh stream decoder; returns the pieces `push` produced and what `finish` gave.
fn stream_pieces(ids: &[u32]) -> (Vec<Option<String>>, String) {
    let mut stream = tok().stream();
    let pieces = ids.iter().map(|&id| stream.push(id)).collect();
    (pieces, stream.finish())
}

fn stream_text(ids: &[u32]) -> String {
    let (pieces, tail) = stream_pieces(ids);
    pieces.into_iter().flatten().collect::<String>() + &tail
}

fn all_bytes(ids: &[u32]) -> Vec<u8> {
    ids.iter().flat_map(|&id| tok().token_bytes(id).expect("id in vocabulary")).collect()
}

/// The id of the token that stands for the single byte `b` (GPT-2 has one for each of the 256 bytes).
fn byte_token(b: u8) -> u32 {
    static MAP: OnceLock<HashMap<u8, u32>> = OnceLock::new();
    let map = MAP.get_or_init(|| {
        let t = tok();
        (0..t.vocab_size() as u32)
            .filter_map(|id| match t.token_bytes(id)?.as_slice() {
                [b] => Some((*b, id)),
                _ => None,
            })
            .collect()
    });
    map[&b]
}

// ---- the oracle -------------------------------------------------------------------------------------

#[test]
fn vocabulary_and_special_token() {
    let t = tok();
    assert_eq!(t.vocab_size(), 50257);
    assert_eq!(t.eos_id(), 50256);
    assert_eq!(t.token_bytes(t.eos_id()).as_deref(), Some(END_OF_TEXT.as_bytes()));
    assert_eq!(t.token_bytes(50257), None);
    assert_eq!(t.token_bytes(u32::MAX), None);
    assert_eq!(t.token_bytes(220).as_deref(), Some(&b" "[..]));
    assert_eq!(t.token_bytes(198).as_deref(), Some(&b"\n"[..]));
    assert_eq!(t.token_bytes(15496).as_deref(), Some(&b"Hello"[..]));
    assert_eq!(t.token_bytes(995).as_deref(), Some(&b" world"[..]));
}

#[test]
fn fixture_cases_encode_and_decode_like_python() {
    let t = tok();
    for case in cases() {
        let ids = t.encode(&case.text).expect("encode");
        assert_eq!(ids, case.ids, "encode({:?})", case.text);
        assert_eq!(t.decode(&case.ids).expect("decode"), case.decoded, "decode of {:?}", case.text);
        assert_eq!(t.decode(&ids).expect("decode"), case.text, "round trip of {:?}", case.text);
        assert_eq!(stream_text(&case.ids), case.decoded, "stream decode of {:?}", case.text);
    }
}

#[test]
fn every_single_byte_has_exactly_one_token() {
    let t = tok();
    let mut seen = [0u32; 256];
    for id in 0..t.vocab_size() as u32 {
        if let Some([b]) = t.token_bytes(id).as_deref() {
            seen[*b as usize] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "single-byte token counts: {seen:?}");
}

/// The byte table agrees with the library's own ByteLevel decoder on every token.
#[test]
fn token_bytes_agree_with_library_decode_for_every_token() {
    let t = tok();
    for id in 0..t.vocab_size() as u32 {
        let bytes = t.token_bytes(id).expect("every id below vocab_size has bytes");
        assert!(!bytes.is_empty(), "token {id} has no bytes");
        assert_eq!(t.decode(&[id]).expect("decode"), String::from_utf8_lossy(&bytes), "token {id}");
    }
}

// ---- round trips ------------------------------------------------------------------------------------

const ADVERSARIAL: &[&str] = &[
    // Emoji: ZWJ families, flags, skin tones, keycaps, variation selectors.
    "👨‍👩‍👧‍👦 👩🏽‍💻 🧑🏿‍🤝‍🧑🏻 🏴‍☠️ 🇯🇵🇫🇷 #️⃣ 1️⃣ ❤️‍🔥",
    // CJK, including a supplementary-plane ideograph (4-byte UTF-8).
    "漢字かなカナ한국어 𠀋𩸽 中华人民共和国",
    // Combining marks stacked on letters, decomposed and precomposed forms.
    "e\u{301} é Z\u{351}\u{34b}\u{34f}a\u{344}\u{325}l\u{33e}g\u{32b}o\u{307} ṩ\u{323}",
    // Right-to-left text with bidi controls.
    "مرحبا بالعالم שָׁלוֹם \u{202e}txet desrever\u{202c} \u{200f}",
    // The special token in the middle of text, touching words and spaces.
    "one<|endoftext|>two <|endoftext|> three<|endoftext|><|endoftext|>",
    "<|endoftext",
    // Long whitespace runs of every kind.
    "a                                                                b",
    "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n",
    " \t \t\t   \r\n\r\n   \u{3000}\u{3000} \u{a0}\u{a0}  end   ",
    "                                                                ",
    // Odd code points: BOM, noncharacters, private use, the maximum scalar value, NUL and controls.
    "\u{feff}x\u{fffe}\u{ffff}\u{e000}\u{10ffff}\u{0}\u{1}\u{7f}",
    // Contractions and punctuation the GPT-2 regex treats specially.
    "'s'S 'll'LL ''' --- ... !!! ???",
];

#[test]
fn decode_encode_round_trips_adversarial_text() {
    let t = tok();
    for text in ADVERSARIAL {
        let ids = t.encode(text).expect("encode");
        assert_eq!(t.decode(&ids).expect("decode"), *text, "decode(encode({text:?})), ids {ids:?}");
        assert_eq!(stream_text(&ids), *text, "stream decode of {text:?}");
    }
}

#[test]
fn special_token_inside_text_is_one_id() {
    let t = tok();
    let ids = t.encode("one<|endoftext|>two").expect("encode");
    assert_eq!(ids.iter().filter(|&&id| id == t.eos_id()).count(), 1, "ids {ids:?}");
    assert_eq!(t.decode(&[t.eos_id()]).expect("decode"), END_OF_TEXT);
}

// ---- streaming --------------------------------------------------------------------------------------

#[test]
fn stream_decoder_emits_whole_characters_only() {
    let t = tok();
    let text = "Grüße aus Köln! 日本語のテキスト 🤖🚀 👩‍👩‍👧‍👦 Ελληνικά Русский 中文 𠀋 naïve café ✔️";
    let ids = t.encode(text).expect("encode");

    // The test is only meaningful if some token really holds part of a character.
    let split_tokens =
        ids.iter().filter(|&&id| std::str::from_utf8(&t.token_bytes(id).unwrap_or_default()).is_err()).count();
    assert!(split_tokens >= 5, "expected tokens that split characters, found {split_tokens} in {ids:?}");

    let mut stream = t.stream();
    let mut joined = String::new();
    let mut held_back = 0;
    for &id in &ids {
        match stream.push(id) {
            Some(piece) => {
                assert!(!piece.contains('\u{FFFD}'), "piece {piece:?} for token {id} has a replacement character");
                assert!(text.contains(&piece), "piece {piece:?} is not a substring of the text");
                joined.push_str(&piece);
            }
            None => held_back += 1,
        }
        // Whatever has been emitted so far is a prefix of the text, ending on a character boundary.
        assert!(text.starts_with(&joined), "emitted {joined:?} is not a prefix of the text");
    }
    assert!(held_back > 0, "no token was held back, so no character was split across tokens");
    assert!(!stream.has_pending());
    assert_eq!(stream.finish(), "");
    assert_eq!(joined, text);
}

#[test]
fn push_into_appends_the_same_text() {
    let t = tok();
    let text = "🤖 says: 你好, wörld <|endoftext|>";
    let ids = t.encode(text).expect("encode");
    let mut stream = t.stream();
    let mut out = String::new();
    for &id in &ids {
        stream.push_into(id, &mut out);
    }
    assert_eq!(out, text);
}

#[test]
fn stream_decoder_matches_from_utf8_lossy_on_invalid_bytes() {
    let t = tok();
    let a = byte_token(b'A');
    let robot = t.encode("🤖").expect("encode"); // F0 9F A4 96, in more than one token
    assert!(robot.len() >= 2, "🤖 should take several tokens: {robot:?}");

    let sequences: Vec<(&str, Vec<u32>)> = vec![
        ("lone continuation byte", vec![byte_token(0x80)]),
        ("continuation byte between ASCII", vec![a, byte_token(0x80), a]),
        ("truncated 3-byte sequence then ASCII", vec![byte_token(0xE2), byte_token(0x82), a]),
        ("truncated 3-byte sequence at the end", vec![a, byte_token(0xE2), byte_token(0x82)]),
        (
            "sequence interrupted by a new lead byte",
            vec![byte_token(0xE2), byte_token(0xE2), byte_token(0x82), byte_token(0xAC)],
        ),
        ("overlong encoding", vec![byte_token(0xC0), byte_token(0xAF)]),
        ("surrogate", vec![byte_token(0xED), byte_token(0xA0), byte_token(0x80)]),
        ("above U+10FFFF", vec![byte_token(0xF4), byte_token(0x90), byte_token(0x80), byte_token(0x80)]),
        ("bytes that never occur", vec![byte_token(0xFF), byte_token(0xFE), byte_token(0xF5), a]),
        ("emoji missing its last token", robot[..robot.len() - 1].to_vec()),
        ("emoji missing its first token", robot[1..].to_vec()),
        ("emoji tokens interrupted by text", [&robot[..1], &[a], &robot[1..]].concat()),
        ("emoji tokens interrupted by <|endoftext|>", [&robot[..1], &[t.eos_id()], &robot[1..]].concat()),
        ("complete emoji after a broken one", [&robot[..1], &robot[..]].concat()),
    ];
    for (what, ids) in sequences {
        let expected = String::from_utf8_lossy(&all_bytes(&ids)).into_owned();
        assert!(expected.contains('\u{FFFD}'), "{what}: the bytes should be invalid UTF-8");
        assert_eq!(stream_text(&ids), expected, "{what}: ids {ids:?}");
        assert_eq!(t.decode(&ids).expect("decode"), expected, "{what}: library decode, ids {ids:?}");
    }
}

#[test]
fn finish_flushes_a_truncated_character_and_resets() {
    let t = tok();
    let robot = t.encode("🤖").expect("encode");
    let mut stream = t.stream();
    assert_eq!(stream.push(robot[0]), None);
    assert!(stream.has_pending());
    assert_eq!(stream.finish(), "\u{FFFD}");
    assert!(!stream.has_pending());
    // The decoder starts over cleanly.
    let pieces: String = robot.iter().filter_map(|&id| stream.push(id)).collect();
    assert_eq!(pieces + &stream.finish(), "🤖");
}

/// Random mixtures of single-byte tokens (valid and invalid UTF-8) and ordinary tokens: the stream
/// decoder, from_utf8_lossy and the library's decode must all agree.
#[test]
fn stream_decoder_matches_from_utf8_lossy_on_random_token_sequences() {
    let t = tok();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let interesting = [b'a', b' ', 0x80, 0x9F, 0xA4, 0xBF, 0xC3, 0xE2, 0xE4, 0xED, 0xF0, 0xF4, 0xFF];
    for round in 0..2000 {
        let len = (next() % 10) as usize;
        let ids: Vec<u32> = (0..len)
            .map(|_| match next() % 3 {
                0 => (next() % t.vocab_size() as u64) as u32,
                _ => byte_token(interesting[(next() % interesting.len() as u64) as usize]),
            })
            .collect();
        let expected = String::from_utf8_lossy(&all_bytes(&ids)).into_owned();
        assert_eq!(stream_text(&ids), expected, "round {round}: ids {ids:?}");
        assert_eq!(t.decode(&ids).expect("decode"), expected, "round {round}: library decode of {ids:?}");
    }
}

#[test]
fn out_of_range_ids() {
    let t = tok();
    let v = t.vocab_size() as u32;
    match t.decode(&[15496, v]) {
        Err(Error::TokenOutOfRange { id, vocab }) => assert_eq!((id, vocab), (v, 50257)),
        other => panic!("expected TokenOutOfRange, got {other:?}"),
    }
    // Mid-stream, an unknown id is visible as U+FFFD instead of failing the whole generation.
    let robot = t.encode("🤖").expect("encode");
    let mut stream = t.stream();
    let mut out = String::new();
    for id in [15496, robot[0], v, 995] {
        stream.push_into(id, &mut out);
    }
    out += &stream.finish();
    assert_eq!(out, "Hello\u{FFFD}\u{FFFD} world");
}

// ---- errors -----------------------------------------------------------------------------------------

fn expect_tokenizer_error(what: &str, bytes: &[u8]) -> String {
    match Tokenizer::from_bytes(bytes) {
        Err(Error::Tokenizer(msg)) => {
            assert!(!msg.is_empty(), "{what}: empty message");
            msg
        }
        Err(other) => panic!("{what}: expected Error::Tokenizer, got {other:?}"),
        Ok(_) => panic!("{what}: loaded without error"),
    }
}

#[test]
fn garbage_input_is_an_error() {
    let full = tokenizer_json();
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("whitespace", b" \n\t ".to_vec()),
        ("not JSON", b"this is not a tokenizer".to_vec()),
        ("binary", vec![0xFF, 0x00, 0xFE, 0x80, 0x7B]),
        ("JSON null", b"null".to_vec()),
        ("JSON array", b"[1, 2, 3]".to_vec()),
        ("empty object", b"{}".to_vec()),
        ("truncated tokenizer.json", full[..full.len() / 2].to_vec()),
    ];
    for (what, bytes) in inputs {
        let msg = expect_tokenizer_error(what, &bytes);
        // The user-facing message names the file and says what to do.
        let shown = Error::Tokenizer(msg).to_string();
        assert!(shown.contains("tokenizer.json"), "{what}: {shown}");
    }
    assert!(expect_tokenizer_error("empty", b"").contains("empty"));
}

#[test]
fn non_gpt2_tokenizers_are_rejected() {
    let original: serde_json::Value = serde_json::from_slice(tokenizer_json()).expect("parse fixture");

    let mut no_decoder = original.clone();
    no_decoder["decoder"] = serde_json::Value::Null;
    let msg = expect_tokenizer_error("no decoder", &serde_json::to_vec(&no_decoder).expect("serialize"));
    assert!(msg.contains("ByteLevel"), "{msg}");

    let mut no_eos = original.clone();
    no_eos["added_tokens"] = serde_json::json!([]);
    if let Some(vocab) = no_eos["model"]["vocab"].as_object_mut() {
        vocab.remove(END_OF_TEXT);
    }
    let msg = expect_tokenizer_error("no <|endoftext|>", &serde_json::to_vec(&no_eos).expect("serialize"));
    assert!(msg.contains(END_OF_TEXT), "{msg}");
}
