//! Python values as `json.load` reads them and `json.dumps` writes them
//! back: strings as UTF-16 code units (lone surrogates survive), integers
//! of any size, exact floats, `NaN` / `Infinity`, duplicate keys (the last
//! wins, the first's position kept). For files Python wrote (recon caches)
//! that must be served back byte for byte as Python would.

use std::collections::HashMap;

use super::pyjson::float_repr;

/// A Python `str` as UTF-16 code units: lone surrogates (from
/// `surrogateescape` file names or `\udXXX` escapes in a cache file)
/// survive and are written back as `json.dumps` writes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PyStr(pub Vec<u16>);

impl From<&str> for PyStr {
    fn from(s: &str) -> PyStr {
        PyStr(s.encode_utf16().collect())
    }
}

impl From<String> for PyStr {
    fn from(s: String) -> PyStr {
        PyStr::from(s.as_str())
    }
}

impl PyStr {
    /// `os.fsdecode(bytes)`: UTF-8 with `surrogateescape`.
    pub fn fsdecode(mut bytes: &[u8]) -> PyStr {
        let mut units = Vec::with_capacity(bytes.len());
        loop {
            match std::str::from_utf8(bytes) {
                Ok(s) => {
                    units.extend(s.encode_utf16());
                    return PyStr(units);
                }
                Err(e) => {
                    let (good, rest) = bytes.split_at(e.valid_up_to());
                    // valid_up_to() bytes are UTF-8 by contract.
                    units.extend(std::str::from_utf8(good).unwrap_or("").encode_utf16());
                    let bad = e.error_len().unwrap_or(rest.len()).max(1);
                    units.extend(rest[..bad].iter().map(|&b| 0xdc00 | u16::from(b)));
                    bytes = &rest[bad..];
                }
            }
        }
    }

    /// Python's `str.encode('utf-8')`; `None` for a lone surrogate.
    pub fn to_string_strict(&self) -> Option<String> {
        String::from_utf16(&self.0).ok()
    }
}

/// A value as Python's `json` module reads and writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum PyJson {
    Null,
    Bool(bool),
    /// A Python `int` (arbitrary size), as its decimal digits.
    Int(String),
    Float(f64),
    Str(PyStr),
    List(Vec<PyJson>),
    /// A Python `dict`, in insertion order.
    Dict(Vec<(PyStr, PyJson)>),
}

impl PyJson {
    pub fn int(n: impl Into<i128>) -> PyJson {
        PyJson::Int(n.into().to_string())
    }

    pub fn str(s: impl Into<PyStr>) -> PyJson {
        PyJson::Str(s.into())
    }

    pub fn dict<K: Into<PyStr>>(items: impl IntoIterator<Item = (K, PyJson)>) -> PyJson {
        PyJson::Dict(items.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// `json.dumps(value)`: `", "` and `": "`, ASCII only.
    pub fn dumps(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    pub fn write(&self, out: &mut String) {
        match self {
            PyJson::Null => out.push_str("null"),
            PyJson::Bool(true) => out.push_str("true"),
            PyJson::Bool(false) => out.push_str("false"),
            PyJson::Int(digits) => out.push_str(digits),
            PyJson::Float(f) => out.push_str(&float_repr(*f)),
            PyJson::Str(s) => write_pystr(out, s),
            PyJson::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write(out);
                }
                out.push(']');
            }
            PyJson::Dict(items) => {
                out.push('{');
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_pystr(out, k);
                    out.push_str(": ");
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&PyJson> {
        let key = PyStr::from(key);
        match self {
            PyJson::Dict(items) => items.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// `json.dumps` of a string with `ensure_ascii`: every unit outside
/// `' '..='~'` as `\uXXXX` (surrogate pairs as two escapes).
fn write_pystr(out: &mut String, s: &PyStr) {
    out.push('"');
    for &u in &s.0 {
        match u {
            0x22 => out.push_str("\\\""),
            0x5c => out.push_str("\\\\"),
            0x0a => out.push_str("\\n"),
            0x0d => out.push_str("\\r"),
            0x09 => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            0x20..=0x7e => out.push(char::from(u as u8)),
            _ => out.push_str(&format!("\\u{u:04x}")),
        }
    }
    out.push('"');
}

/// Python's `json.loads(text)` (the default decoder, `strict=True`).
pub fn py_json_loads(text: &str) -> Result<PyJson, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("Extra data: char {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

/// Python's default limit on the digits of an `int` read from text.
const INT_MAX_STR_DIGITS: usize = 4300;

impl Parser<'_> {
    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what}: char {}", self.i))
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    pub fn value(&mut self) -> Result<PyJson, String> {
        match self.s.get(self.i) {
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => {
                self.i += 1;
                Ok(PyJson::Str(self.string()?))
            }
            Some(b'n') if self.eat("null") => Ok(PyJson::Null),
            Some(b't') if self.eat("true") => Ok(PyJson::Bool(true)),
            Some(b'f') if self.eat("false") => Ok(PyJson::Bool(false)),
            Some(b'N') if self.eat("NaN") => Ok(PyJson::Float(f64::NAN)),
            Some(b'I') if self.eat("Infinity") => Ok(PyJson::Float(f64::INFINITY)),
            Some(b'-') if self.eat("-Infinity") => Ok(PyJson::Float(f64::NEG_INFINITY)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.err("Expecting value"),
        }
    }

    pub fn nested(&mut self, f: fn(&mut Self) -> Result<PyJson, String>) -> Result<PyJson, String> {
        // Python raises RecursionError somewhere near here.
        if self.depth >= 900 {
            return self.err("maximum recursion depth exceeded");
        }
        self.depth += 1;
        self.i += 1;
        let v = f(self);
        self.depth -= 1;
        v
    }

    pub fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.s.get(self.i), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    /// `(-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?`
    pub fn number(&mut self) -> Result<PyJson, String> {
        let start = self.i;
        if self.s[self.i] == b'-' {
            self.i += 1;
        }
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => {
                self.i = start;
                return self.err("Expecting value");
            }
        }
        let int_end = self.i;
        let mut is_float = false;
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                self.i -= 1;
            } else {
                is_float = true;
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            let save = self.i;
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                self.i = save;
            } else {
                is_float = true;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("0");
        if is_float {
            return text
                .parse::<f64>()
                .map(PyJson::Float)
                .map_err(|e| format!("bad float {text:?}: {e}"));
        }
        let digits = &self.s[start..int_end];
        let (neg, digits) = match digits.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, digits),
        };
        if digits.len() > INT_MAX_STR_DIGITS {
            return self.err("Exceeds the limit for integer string conversion");
        }
        let digits = std::str::from_utf8(digits).unwrap_or("0");
        Ok(PyJson::Int(if neg && digits != "0" {
            format!("-{digits}")
        } else {
            digits.to_string()
        }))
    }

    fn hex4(&mut self) -> Result<u16, String> {
        let h = self.s.get(self.i..self.i + 4).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .filter(|t| t.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|t| u16::from_str_radix(t, 16).ok())
        });
        match h {
            Some(u) => {
                self.i += 4;
                Ok(u)
            }
            None => self.err("Invalid \\uXXXX escape"),
        }
    }

    /// After the opening quote; Python's `scanstring` (strict).
    pub fn string(&mut self) -> Result<PyStr, String> {
        let mut units: Vec<u16> = Vec::new();
        loop {
            let start = self.i;
            while let Some(&b) = self.s.get(self.i) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.i += 1;
            }
            // The input is a &str, so whole characters lie between ASCII bytes.
            let chunk = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            units.extend(chunk.encode_utf16());
            match self.s.get(self.i) {
                None => return self.err("Unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(PyStr(units));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let Some(&e) = self.s.get(self.i) else {
                        return self.err("Unterminated string");
                    };
                    self.i += 1;
                    match e {
                        b'"' => units.push(0x22),
                        b'\\' => units.push(0x5c),
                        b'/' => units.push(0x2f),
                        b'b' => units.push(0x08),
                        b'f' => units.push(0x0c),
                        b'n' => units.push(0x0a),
                        b'r' => units.push(0x0d),
                        b't' => units.push(0x09),
                        b'u' => {
                            let u = self.hex4()?;
                            units.push(u);
                            // A high surrogate followed by an escaped low
                            // one is one character (same units either way).
                        }
                        _ => {
                            self.i -= 1;
                            return self.err("Invalid \\escape");
                        }
                    }
                }
                Some(_) => return self.err("Invalid control character"),
            }
        }
    }

    pub fn object(&mut self) -> Result<PyJson, String> {
        let mut items: Vec<(PyStr, PyJson)> = Vec::new();
        let mut index: HashMap<PyStr, usize> = HashMap::new();
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(PyJson::Dict(items));
        }
        loop {
            if self.s.get(self.i) != Some(&b'"') {
                return self.err("Expecting property name enclosed in double quotes");
            }
            self.i += 1;
            let key = self.string()?;
            self.ws();
            if self.s.get(self.i) != Some(&b':') {
                return self.err("Expecting ':' delimiter");
            }
            self.i += 1;
            self.ws();
            let v = self.value()?;
            // dict assignment: the last value, at the first position
            match index.get(&key) {
                Some(&at) => items[at].1 = v,
                None => {
                    index.insert(key.clone(), items.len());
                    items.push((key, v));
                }
            }
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    return Ok(PyJson::Dict(items));
                }
                _ => return self.err("Expecting ',' delimiter"),
            }
        }
    }

    pub fn array(&mut self) -> Result<PyJson, String> {
        let mut items = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(PyJson::List(items));
        }
        loop {
            self.ws();
            items.push(self.value()?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(PyJson::List(items));
                }
                _ => return self.err("Expecting ',' delimiter"),
            }
        }
    }
}
