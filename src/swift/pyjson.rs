//! JSON text exactly as Python's `json.dumps` writes it by default:
//! `", "` and `": "` separators and ASCII-only output (`\uXXXX` escapes,
//! surrogate pairs beyond the BMP). Swift stores DB metadata this way.

use serde_json::Value;

/// Python's `json.dumps(value)` (keys in the map's order).
pub fn dumps(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, false);
    out
}

/// Python's `json.dumps(value, sort_keys=True)`.
pub fn dumps_sorted(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, true);
    out
}

fn write_value(out: &mut String, value: &Value, sorted: bool) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
            Some(f) => out.push_str(&float_repr(f)),
            None => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, v, sorted);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if sorted {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k);
                out.push_str(": ");
                write_value(out, v, sorted);
            }
            out.push('}');
        }
    }
}

/// Appends `s` as a Python-`json.dumps` string literal.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)` (what `json.dumps` writes for a finite float):
/// shortest round-trip digits (the closest such, as Python and `ryu` pick;
/// Rust's own `{:e}` occasionally picks another 17-digit neighbour), fixed
/// notation when the decimal exponent is in `-4..16` (always with a
/// fractional part, e.g. `12.0`), otherwise `1.5e-07` / `1e+16` style.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    // serde_json formats finite floats with ryu (shortest, closest digits),
    // in one of several layouts: `12.0`, `0.000125`, `1e16`, `1.5e-7`.
    let text = serde_json::Number::from_f64(x.abs())
        .map(|n| n.to_string())
        .unwrap_or_else(|| format!("{:e}", x.abs()));
    let (mantissa, exp) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text.as_str(), 0),
    };
    let int_len = mantissa.find('.').unwrap_or(mantissa.len()) as i32;
    let all: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    // value = 0.<digits> * 10^point
    let trimmed = all.trim_start_matches('0');
    let mut point = int_len + exp - (all.len() - trimmed.len()) as i32;
    let mut digits = trimmed.trim_end_matches('0').to_string();
    if digits.is_empty() {
        digits.push('0');
        point = 1;
    }
    let ndigits = digits.len() as i32;
    let exp10 = point - 1;
    if !(-4..16).contains(&exp10) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp10 < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp10.abs());
    }
    let body = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if point >= ndigits {
        format!("{}{}.0", digits, "0".repeat((point - ndigits) as usize))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_formatting() {
        let v: Value = serde_json::from_str(
            r#"{"X-Container-Meta-A": ["d\u00e9j\u00e0 \ud83d\ude00", "1.0"], "b": [1, null]}"#,
        )
        .unwrap();
        assert_eq!(
            dumps(&v),
            r#"{"X-Container-Meta-A": ["d\u00e9j\u00e0 \ud83d\ude00", "1.0"], "b": [1, null]}"#
        );
    }
}
