//! Structure-aware generators: edge values, arbitrary JSON, and mutations of a valid
//! seed (a leaf replaced by an edge value, a field dropped, renamed or added under a
//! name the seed uses, a value wrapped or nested deeper), plus text-level damage
//! (truncation, raw tokens serde cannot represent, deep nesting) and raw bytes.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// A regex strategy, parsed once (a `&str` strategy re-parses its regex every case,
/// the largest cost of a case in a debug build).
pub fn re(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern)
        .expect("a valid regex")
        .boxed()
}

/// Strings a decoder should refuse or handle exactly: empty, whitespace, numbers as
/// text, control and bidi characters, path tricks, very long ones, and arbitrary text.
pub fn edge_string() -> BoxedStrategy<String> {
    prop_oneof![
        40 => prop::sample::select(vec![
            "", " ", "\t", "\n", "0", "-1", "1", "1.5", "-0", "NaN", "nan", "Infinity",
            "-Infinity", "1e309", "1e-400", "0x10", "+1", "01", "1_000", "null", "true",
            "c", "c0", "c-1", "c9223372036854775807", "c9223372036854775808", "4g", "4GiB",
            "999999t", "999p", "1000p", "1.5g", "-4g", "g", "ib", "b", "..", ".", "../etc",
            "a/b", "a b", "a\u{0}b", "a\u{7f}", "\u{85}", "\u{202e}rtl", "\u{feff}bom",
            "ÄÖÜ", "名前", "😀", "\u{10ffff}", "RUNNING", "running", "PENDING", "fifo",
            "drf", "batch", "interactive", "terminated", "failed", "rw", "ro", "model",
            "http://example.com/h", "https://[::1]:8080/x", "ftp://x", "http://", "bin",
            "2024-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "+275760-09-13T00:00:00Z",
            "9999-12-31T23:59:59.999999999+23:59", "1970-01-01T00:00:00-00:00",
            "5e55a0b1-0000-4000-8000-00000000000a", "{5e55a0b1-0000-4000-8000-00000000000a}",
        ])
        .prop_map(str::to_string),
        30 => re("[a-z0-9][a-z0-9._-]{0,70}"),
        20 => re("[A-Za-z0-9._@+:/-]{0,80}"),
        30 => re("\\PC{0,24}"),
        10 => any::<String>(),
        // Just past each length bound (64, 255, 1024, 2048, 16384). Long strings are
        // the costly cases (escaping in a debug build), so they are rarer.
        6 => (any::<char>(), prop::sample::select(vec![63usize, 64, 65, 255, 256, 1025, 2049]))
            .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
        1 => prop::sample::select(vec!['a', '\u{0}', 'é', '😀'])
            .prop_map(|c| std::iter::repeat_n(c, 16_385).collect()),
    ]
    .boxed()
}

/// Numbers at and around every bound a decoder checks, and arbitrary ones.
pub fn edge_number() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(vec![
            json!(0), json!(1), json!(-1), json!(2), json!(10), json!(100), json!(101),
            json!(128), json!(129), json!(255), json!(256), json!(10_000), json!(10_001),
            json!(1_000_000), json!(1_000_001), json!(315_360_000), json!(315_360_001),
            json!(i32::MAX), json!(i64::from(i32::MAX) + 1), json!(i32::MIN),
            json!(i64::from(i32::MIN) - 1), json!(u32::MAX), json!(i64::MAX), json!(i64::MIN),
            json!(u64::MAX), json!(1u64 << 60), json!((1u64 << 60) + 1), json!(1u64 << 63),
            json!(0.0), json!(-0.0), json!(0.5), json!(1.0), json!(1.5), json!(5.0),
            json!(-1.5), json!(1e-10), json!(1e-30), json!(5e-324), json!(1e15), json!(9.0e15),
            json!(9.1e15), json!(1e18), json!(1e19), json!(1e30), json!(1.2e30), json!(1e300),
            json!(f64::MAX), json!(f64::MIN), json!(1152921504606846976.0),
            json!(1152921504606846977.5),
        ]),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
    ]
    .boxed()
}

/// A JSON leaf: an edge number or string, a bool or null.
pub fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => edge_number(),
        3 => edge_string().prop_map(Value::String),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ]
    .boxed()
}

/// Arbitrary JSON, a few levels deep, with keys mostly from `names`.
pub fn arb_json(names: Vec<String>) -> BoxedStrategy<Value> {
    let key = key(names);
    leaf()
        .prop_recursive(4, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A key: one the seed uses (right name, wrong place or value) or any other.
fn key(names: Vec<String>) -> BoxedStrategy<String> {
    if names.is_empty() {
        return edge_string();
    }
    prop_oneof![3 => prop::sample::select(names), 1 => edge_string()].boxed()
}

/// Every object key in `v`, at any depth.
pub fn keys_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if !out.contains(k) {
                    out.push(k.clone());
                }
                keys_of(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys_of(x, out)),
        _ => {}
    }
}

/// One edit of a JSON tree. `at` picks the node (an index into a pre-order walk,
/// modulo its size).
#[derive(Debug, Clone)]
pub enum Edit {
    /// Replace the node.
    Replace(usize, Value),
    /// Remove one key of an object node (`k`-th, modulo).
    Remove(usize, usize),
    /// Insert (or overwrite) a key of an object node.
    Insert(usize, String, Value),
    /// Rename one key of an object node.
    Rename(usize, usize, String),
    /// Wrap the node in an array or an object.
    Wrap(usize, bool),
    /// Copy another node over this one (a value of the right shape in the wrong place).
    Copy(usize, usize),
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Object(m) => m.values().map(count).sum(),
        Value::Array(a) => a.iter().map(count).sum(),
        _ => 0,
    }
}

fn node_mut(v: &mut Value, i: usize) -> &mut Value {
    let mut cur = v;
    for step in path_to(cur, i) {
        cur = match (cur, step) {
            (Value::Object(m), Step::Key(k)) => m.get_mut(&k).expect("the path exists"),
            (Value::Array(a), Step::Index(n)) => &mut a[n],
            _ => unreachable!("the path follows the tree"),
        };
    }
    cur
}

enum Step {
    Key(String),
    Index(usize),
}

fn path_to(v: &Value, i: usize) -> Vec<Step> {
    fn go(v: &Value, i: &mut usize, path: &mut Vec<Step>) -> bool {
        if *i == 0 {
            return true;
        }
        *i -= 1;
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    path.push(Step::Key(k.clone()));
                    if go(x, i, path) {
                        return true;
                    }
                    path.pop();
                }
                false
            }
            Value::Array(a) => {
                for (n, x) in a.iter().enumerate() {
                    path.push(Step::Index(n));
                    if go(x, i, path) {
                        return true;
                    }
                    path.pop();
                }
                false
            }
            _ => false,
        }
    }
    let mut path = Vec::new();
    let mut i = i;
    go(v, &mut i, &mut path);
    path
}

fn node(v: &Value, i: usize) -> Value {
    let mut cur = v;
    for step in path_to(v, i) {
        cur = match (cur, step) {
            (Value::Object(m), Step::Key(k)) => &m[&k],
            (Value::Array(a), Step::Index(n)) => &a[n],
            _ => unreachable!("the path follows the tree"),
        };
    }
    cur.clone()
}

/// Applies `edits` to a copy of `seed`.
pub fn apply(seed: &Value, edits: &[Edit]) -> Value {
    let mut v = seed.clone();
    for e in edits {
        let n = count(&v);
        match e {
            Edit::Replace(at, x) => *node_mut(&mut v, at % n) = x.clone(),
            Edit::Remove(at, k) => {
                if let Value::Object(m) = node_mut(&mut v, at % n) {
                    if let Some(key) = m.keys().nth(k % m.len().max(1)).cloned() {
                        m.remove(&key);
                    }
                }
            }
            Edit::Insert(at, k, x) => {
                if let Value::Object(m) = node_mut(&mut v, at % n) {
                    m.insert(k.clone(), x.clone());
                }
            }
            Edit::Rename(at, k, to) => {
                if let Value::Object(m) = node_mut(&mut v, at % n) {
                    if let Some(key) = m.keys().nth(k % m.len().max(1)).cloned() {
                        if let Some(x) = m.remove(&key) {
                            m.insert(to.clone(), x);
                        }
                    }
                }
            }
            Edit::Wrap(at, array) => {
                let slot = node_mut(&mut v, at % n);
                let inner = slot.take();
                *slot = if *array {
                    Value::Array(vec![inner])
                } else {
                    let mut m = Map::new();
                    m.insert("value".into(), inner);
                    Value::Object(m)
                };
            }
            Edit::Copy(from, to) => {
                let x = node(&v, from % n);
                *node_mut(&mut v, to % n) = x;
            }
        }
    }
    v
}

fn edit(names: Vec<String>) -> BoxedStrategy<Edit> {
    let k = key(names.clone());
    prop_oneof![
        6 => (any::<usize>(), leaf()).prop_map(|(a, x)| Edit::Replace(a, x)),
        1 => (any::<usize>(), arb_json(names)).prop_map(|(a, x)| Edit::Replace(a, x)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, k)| Edit::Remove(a, k)),
        2 => (any::<usize>(), k.clone(), leaf()).prop_map(|(a, k, x)| Edit::Insert(a, k, x)),
        1 => (any::<usize>(), any::<usize>(), k).prop_map(|(a, i, k)| Edit::Rename(a, i, k)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(a, b)| Edit::Wrap(a, b)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Copy(a, b)),
    ]
    .boxed()
}

/// A mostly valid value: one of `seeds` (unchanged now and then) with 0-4 edits.
pub fn mutated(seeds: Vec<Value>) -> BoxedStrategy<Value> {
    let mut names = Vec::new();
    seeds.iter().for_each(|s| keys_of(s, &mut names));
    (
        prop::sample::select(seeds),
        prop::collection::vec(edit(names), 0..5),
    )
        .prop_map(|(seed, edits)| apply(&seed, &edits))
        .boxed()
}

/// Text-level damage to a valid document: raw tokens JSON values cannot hold (big
/// numbers, `NaN`, duplicate keys, lone surrogates), truncation, deep nesting.
#[derive(Debug, Clone)]
pub enum TextEdit {
    /// Insert a raw token at a byte offset (modulo, on a char boundary).
    Insert(usize, &'static str),
    /// Cut the text at an offset.
    Truncate(usize),
    /// Nest the whole text `n` levels deep in arrays.
    Nest(usize),
    /// Duplicate the first key of the object.
    DuplicateFirstKey,
}

const TOKENS: &[&str] = &[
    "1e400",
    "-1e400",
    "123456789012345678901234567890",
    "-0",
    "NaN",
    "Infinity",
    "\"\\ud800\"",
    "\"\\u0000\"",
    ",",
    ":",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    "null",
    "\u{feff}",
    "/*x*/",
    ",\"name\":\"dup\"",
    ",\"resources\":{\"cpu\":1,\"cpu\":1000}",
    "\u{0}",
    "\"a\":1,",
];

fn text_edit() -> BoxedStrategy<TextEdit> {
    prop_oneof![
        4 => (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(a, t)| TextEdit::Insert(a, t)),
        2 => any::<usize>().prop_map(TextEdit::Truncate),
        1 => prop::sample::select(vec![1usize, 64, 127, 128, 129, 5000]).prop_map(TextEdit::Nest),
        1 => Just(TextEdit::DuplicateFirstKey),
    ]
    .boxed()
}

fn boundary(s: &str, at: usize) -> usize {
    let mut at = at % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Applies text edits to `text`.
pub fn apply_text(text: &str, edits: &[TextEdit]) -> Vec<u8> {
    let mut s = text.to_string();
    for e in edits {
        match e {
            TextEdit::Insert(at, t) => {
                let at = boundary(&s, *at);
                s.insert_str(at, t);
            }
            TextEdit::Truncate(at) => {
                let at = boundary(&s, *at);
                s.truncate(at);
            }
            TextEdit::Nest(n) => {
                s = format!("{}{s}{}", "[".repeat(*n), "]".repeat(*n));
            }
            TextEdit::DuplicateFirstKey => {
                if let Some(end) = s.find(',') {
                    if s.starts_with('{') && end > 1 {
                        let first = s[1..end].to_string();
                        s.insert_str(end, &format!(",{first}"));
                    }
                }
            }
        }
    }
    s.into_bytes()
}

/// Bytes shown as (lossy) text in a failure report.
#[derive(Clone)]
pub struct Text(pub Vec<u8>);

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl std::ops::Deref for Text {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A request body: mostly a mutated seed as JSON text; sometimes text-level damage,
/// arbitrary JSON or arbitrary bytes.
pub fn body(seeds: Vec<Value>) -> BoxedStrategy<Text> {
    let mut names = Vec::new();
    seeds.iter().for_each(|s| keys_of(s, &mut names));
    let m = mutated(seeds);
    prop_oneof![
        12 => m.clone().prop_map(|v| v.to_string().into_bytes()),
        3 => (m, prop::collection::vec(text_edit(), 1..3))
            .prop_map(|(v, e)| apply_text(&v.to_string(), &e)),
        1 => arb_json(names).prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
    .prop_map(Text)
    .boxed()
}
