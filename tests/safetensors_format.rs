//! Our safetensors reader and writer (src/io/safetensors.rs) against the format's reference
//! implementation, Hugging Face's `safetensors` crate: the same files read the same, what one writes the
//! other reads, and both refuse the same broken files. (We keep our own code for the error wording and
//! the piece-by-piece writer; see the module's doc comment. This file is what keeps it honest.)

mod common;

use common::{read, tiny_file};
use gpt2_webgpu::io::safetensors::{serialize_safetensors, Dtype, SafeTensors, SafetensorsWriter};
use gpt2_webgpu::Error;
use std::collections::BTreeMap;

/// Every tensor of `file` as (name, dtype, shape, bytes), sorted by name, read by the crate.
fn crate_tensors(file: &[u8]) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let st = safetensors::SafeTensors::deserialize(file).expect("the crate reads it");
    let mut out: Vec<_> = st
        .iter()
        .map(|(n, t)| (n.to_string(), t.dtype().to_string(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    out.sort();
    out
}

/// The same, read by our reader.
fn our_tensors(file: &[u8]) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let st = SafeTensors::parse(file, "test").expect("our reader reads it");
    let mut out: Vec<_> = st
        .names()
        .into_iter()
        .map(|n| {
            let t = st.get(n).unwrap();
            (n.to_string(), t.dtype.to_string(), t.shape.clone(), t.data.to_vec())
        })
        .collect();
    out.sort();
    out
}

fn crate_metadata(file: &[u8]) -> Option<BTreeMap<String, String>> {
    let (_, m) = safetensors::SafeTensors::read_metadata(file).unwrap();
    m.metadata().as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

#[test]
fn the_fixtures_read_the_same() {
    for name in ["model.safetensors", "reference.safetensors"] {
        let file = read(&tiny_file(name));
        let ours = our_tensors(&file);
        assert!(!ours.is_empty(), "{name}");
        assert_eq!(ours, crate_tensors(&file), "{name}");
        let st = SafeTensors::parse(&file, name).unwrap();
        assert_eq!(st.metadata().cloned(), crate_metadata(&file), "{name}");
    }
}

/// A small file with the awkward cases: several dtypes, a scalar, zero-size tensors, metadata.
fn sample() -> Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)> {
    let f32s: Vec<u8> = [1.5f32, -2.0, 3.25, 0.0, 7.0, -1e-3].iter().flat_map(|x| x.to_le_bytes()).collect();
    let i64s: Vec<u8> = [7i64, -8, i64::MAX].iter().flat_map(|x| x.to_le_bytes()).collect();
    let f16s: Vec<u8> = [1.0f32, 0.5].iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
    vec![
        ("w", Dtype::F32, vec![2, 3], f32s),
        ("ids", Dtype::I64, vec![3], i64s),
        ("empty", Dtype::F16, vec![0, 4], vec![]),
        ("h", Dtype::F16, vec![2], f16s),
        ("scalar", Dtype::U8, vec![], vec![9]),
        ("e2", Dtype::U8, vec![0], vec![]),
    ]
}

#[test]
fn what_we_write_the_crate_reads() {
    let tensors = sample();
    let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let refs: Vec<(&str, Dtype, &[usize], &[u8])> =
        tensors.iter().map(|(n, d, s, b)| (*n, d.clone(), &s[..], &b[..])).collect();
    let file = serialize_safetensors(&refs, Some(&meta)).unwrap();
    let mut want: Vec<_> =
        tensors.iter().map(|(n, d, s, b)| (n.to_string(), d.to_string(), s.clone(), b.clone())).collect();
    want.sort();
    assert_eq!(crate_tensors(&file), want);
    assert_eq!(crate_metadata(&file), Some(meta));
}

#[test]
fn what_the_crate_writes_we_read() {
    use safetensors::Dtype as D;
    let tensors = sample();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            let d = match d {
                Dtype::F32 => D::F32,
                Dtype::I64 => D::I64,
                Dtype::F16 => D::F16,
                Dtype::U8 => D::U8,
                other => panic!("sample has no {other}"),
            };
            (n.to_string(), safetensors::tensor::TensorView::new(d, s.clone(), b).unwrap())
        })
        .collect();
    let meta = Some([("format".to_string(), "pt".to_string())].into_iter().collect());
    let file = safetensors::serialize(views, meta).unwrap();
    assert_eq!(our_tensors(&file), crate_tensors(&file));
    let st = SafeTensors::parse(&file, "crate").unwrap();
    assert_eq!(st.metadata().unwrap()["format"], "pt");
}

#[test]
fn both_refuse_the_same_broken_files() {
    let good = read(&tiny_file("model.safetensors"));
    let with_header = |hdr: &[u8], data: &[u8]| {
        let mut f = (hdr.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(hdr);
        f.extend_from_slice(data);
        f
    };
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut junk = good.clone();
    junk[8..8 + n].fill(b'#');
    let mut longer = good.clone();
    longer.push(0);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("5 bytes", good[..5].to_vec()),
        ("cut in the header", good[..100].to_vec()),
        ("cut in the data", good[..good.len() - 1000].to_vec()),
        ("a byte after the data", longer),
        ("junk header", junk),
        ("html", b"<html><body>404 Not Found</body></html>".to_vec()),
        ("entry not an object", with_header(br#"{"a": [1, 2, 3]}"#, &[])),
        (
            "overlap",
            with_header(
                br#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
                &[0; 6],
            ),
        ),
        ("hole", with_header(br#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#, &[0; 6])),
        ("size vs shape", with_header(br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, &[0; 4])),
        ("backwards", with_header(br#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#, &[0; 4])),
    ];
    for (what, file) in &bad {
        assert!(SafeTensors::parse(file, what).is_err(), "ours accepts: {what}");
        assert!(safetensors::SafeTensors::deserialize(file).is_err(), "the crate accepts: {what}");
    }
    assert!(SafeTensors::parse(&good, "good").is_ok() && safetensors::SafeTensors::deserialize(&good).is_ok());
}

// ---- our reader and writer on their own (moved here from the module to keep it under 600 lines)

#[test]
fn round_trip_and_alignment() {
    let a: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let b: Vec<u8> = [7i64, -8].iter().flat_map(|x| x.to_le_bytes()).collect();
    let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let file = serialize_safetensors(
        &[
            ("a", Dtype::F32, &[3], &a),
            ("empty", Dtype::F16, &[0, 4], &[]),
            ("b", Dtype::I64, &[2], &b),
            ("e2", Dtype::U8, &[0], &[]),
        ],
        Some(&meta),
    )
    .unwrap();
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    assert_eq!((8 + n) % 8, 0);
    let st = SafeTensors::parse(&file, "mem").unwrap();
    assert_eq!(st.get("a").unwrap().to_f32().unwrap(), vec![1.0, 2.0, 3.0]);
    assert_eq!(st.get("b").unwrap().to_i32().unwrap(), vec![7, -8]);
    assert_eq!(st.get("empty").unwrap().numel(), 0);
    assert_eq!(st.metadata().unwrap()["format"], "pt");
    assert!(st.get("c").is_none());
}

#[test]
fn rejects_bad_files() {
    let a = 1.0f32.to_le_bytes();
    let file = serialize_safetensors(&[("a", Dtype::F32, &[1], &a)], None).unwrap();
    for cut in [0, 4, 9, file.len() - 1] {
        assert!(matches!(SafeTensors::parse(&file[..cut], "f"), Err(Error::Truncated { .. })), "cut {cut}");
    }
    let mut longer = file.clone();
    longer.push(0);
    assert!(matches!(SafeTensors::parse(&longer, "f"), Err(Error::BadSafetensors { .. })));
    let mut garbage = file.clone();
    garbage[8] = b'[';
    assert!(matches!(SafeTensors::parse(&garbage, "f"), Err(Error::BadSafetensors { .. })));
    assert!(matches!(SafeTensors::parse(b"not a safetensors file", "f"), Err(Error::BadSafetensors { .. })));
    // byte length disagreeing with the shape
    let hdr = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#;
    let mut f = (hdr.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(hdr);
    f.extend_from_slice(&a);
    assert!(matches!(SafeTensors::parse(&f, "f"), Err(Error::BadSafetensors { .. })));
}

#[test]
fn writer_checks_order_and_sizes() {
    let decl = [("a", Dtype::F32, &[2][..]), ("b", Dtype::U8, &[3][..])];
    let mut w = SafetensorsWriter::new(Vec::new(), "mem", &decl, None).unwrap();
    assert!(w.write_tensor("b", &[1, 2, 3]).is_err());
    assert!(w.write_tensor("a", &[0; 4]).is_err());
    w.write_tensor_part("a", &[0; 5]).unwrap();
    w.write_tensor_part("a", &[0; 3]).unwrap();
    w.write_tensor_part("b", &[1]).unwrap();
    let w_err = SafetensorsWriter::new(Vec::new(), "mem", &decl, None).unwrap();
    assert!(w_err.finish().is_err());
    w.write_tensor_part("b", &[2, 3]).unwrap();
    let bytes = w.finish().unwrap();
    let st = SafeTensors::parse(&bytes, "mem").unwrap();
    assert_eq!(st.get("b").unwrap().data, &[1, 2, 3]);
    assert_eq!(st.names(), vec!["a", "b"]);
}
