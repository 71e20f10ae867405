//! A small, deterministic mutator: a xorshift PRNG, byte-level mutations (bit flips, interesting
//! values, inserts, deletes, splices, truncation) and structure-aware JSON mutations (a random node of
//! the document replaced with an extreme or malformed value, deleted or duplicated), so JSON inputs get
//! past the parser into the checks behind it.

use serde_json::Value;

/// xorshift64*: fast, seedable, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const INTERESTING: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'}', b'0', b'9'];

/// Mutate `data` in place, 1 to 4 byte-level changes.
pub fn bytes(rng: &mut Rng, data: &mut Vec<u8>, splice_from: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        let n = data.len();
        match rng.below(8) {
            0 if n > 0 => {
                let i = rng.below(n);
                data[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                data[i] = *rng.pick(&INTERESTING);
            }
            2 if n > 0 => {
                let i = rng.below(n);
                data[i] = rng.next() as u8;
            }
            3 => {
                let i = rng.below(n + 1);
                let k = 1 + rng.below(16);
                let fill: Vec<u8> = (0..k).map(|_| rng.next() as u8).collect();
                data.splice(i..i, fill);
            }
            4 if n > 0 => {
                let i = rng.below(n);
                let k = (1 + rng.below(32)).min(n - i);
                data.drain(i..i + k);
            }
            5 if n > 0 => data.truncate(rng.below(n)),
            6 if !splice_from.is_empty() => {
                let a = rng.below(splice_from.len());
                let b = (a + 1 + rng.below(64)).min(splice_from.len());
                let i = rng.below(n + 1);
                data.splice(i..i, splice_from[a..b].iter().copied());
            }
            7 if n >= 8 => {
                // A little-endian u64 somewhere set to an extreme (safetensors' header length, offsets).
                let i = rng.below(n - 7);
                let v: u64 = *rng.pick(&[0, 1, u32::MAX as u64, u64::MAX, 1 << 40, (n as u64).wrapping_sub(1)]);
                data[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => data.push(rng.next() as u8),
        }
    }
}

fn extreme(rng: &mut Rng) -> Value {
    use serde_json::json;
    let choices = [
        json!(0),
        json!(1),
        json!(-1),
        json!(2.5),
        json!(u32::MAX),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(9_007_199_254_740_993u64),
        json!(1e308),
        json!(-0.0),
        json!(""),
        json!("../x"),
        json!("%2e%2e"),
        json!("f32"),
        json!("q4"),
        json!("a".repeat(300)),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!([0, 0]),
        json!([u64::MAX, 1]),
    ];
    rng.pick(&choices).clone()
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// The `k`th node in pre-order.
fn nth<'a>(v: &'a mut Value, k: &mut usize) -> Option<&'a mut Value> {
    if *k == 0 {
        return Some(v);
    }
    *k -= 1;
    match v {
        Value::Array(a) => a.iter_mut().find_map(|c| nth(c, k)),
        Value::Object(o) => o.values_mut().find_map(|c| nth(c, k)),
        _ => None,
    }
}

/// 1 to 3 structural changes to a JSON document.
pub fn json(rng: &mut Rng, doc: &mut Value) {
    for _ in 0..1 + rng.below(3) {
        let n = count(doc);
        let mut k = rng.below(n);
        let node = nth(doc, &mut k).expect("k < count");
        match rng.below(6) {
            0 | 1 => *node = extreme(rng),
            2 => match node {
                Value::Number(x) => {
                    let f = x.as_f64().unwrap_or(0.0);
                    *node = serde_json::json!(*rng.pick(&[f + 1.0, f - 1.0, f * 2.0, f * 1e6, -f, f / 3.0]));
                }
                Value::String(s) => {
                    let mut b = s.clone().into_bytes();
                    bytes(rng, &mut b, &[]);
                    *s = String::from_utf8_lossy(&b).into_owned();
                }
                _ => *node = extreme(rng),
            },
            3 => {
                if let Value::Object(o) = node {
                    if !o.is_empty() {
                        let key = o.keys().nth(rng.below(o.len())).unwrap().clone();
                        o.remove(&key);
                    }
                }
            }
            4 => {
                if let Value::Array(a) = node {
                    if !a.is_empty() {
                        let i = rng.below(a.len());
                        if rng.chance(2) {
                            let c = a[i].clone();
                            a.insert(rng.below(a.len() + 1), c);
                        } else {
                            a.remove(i);
                        }
                    }
                }
            }
            _ => {
                if let Value::Object(o) = node {
                    o.insert(format!("extra{}", rng.below(4)), extreme(rng));
                }
            }
        }
    }
}
