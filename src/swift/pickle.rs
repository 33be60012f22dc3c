//! The small subset of Python's pickle format that Swift's pending files use:
//! tuples of strings, integers, booleans, floats and `None`.
//!
//! The writer emits exactly what Python 3's `pickle.dumps(t, protocol=2)`
//! emits for such a tuple. The reader is a restricted unpickler: it accepts
//! the opcodes Python 2 and 3 produce for these values (including memo
//! references) and refuses everything else (no globals, no objects).

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickleError {
    #[error("pickle data ends early")]
    Truncated,
    #[error("unsupported pickle opcode 0x{0:02x} at byte {1}")]
    Opcode(u8, usize),
    #[error("bad pickle data: {0}")]
    Bad(&'static str),
}

/// Pickles a tuple as Python 3 does with protocol 2.
pub fn dumps_tuple(items: &[Value]) -> Vec<u8> {
    let mut w = Writer {
        out: vec![0x80, 2],
        memo: 0,
    };
    w.value(&Value::Tuple(items.to_vec()));
    w.out.push(b'.');
    w.out
}

struct Writer {
    out: Vec<u8>,
    memo: u32,
}

impl Writer {
    fn memoize(&mut self) {
        if self.memo < 256 {
            self.out.push(b'q');
            self.out.push(self.memo as u8);
        } else {
            self.out.push(b'r');
            self.out.extend_from_slice(&self.memo.to_le_bytes());
        }
        self.memo += 1;
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::None => self.out.push(b'N'),
            Value::Bool(true) => self.out.push(0x88),
            Value::Bool(false) => self.out.push(0x89),
            Value::Int(i) => self.int(*i),
            Value::Float(f) => {
                self.out.push(b'G');
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            Value::Str(s) => {
                self.out.push(b'X');
                self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                self.out.extend_from_slice(s.as_bytes());
                self.memoize();
            }
            Value::Tuple(items) => {
                match items.len() {
                    0 => {
                        self.out.push(b')');
                        return;
                    }
                    1..=3 => {
                        for it in items {
                            self.value(it);
                        }
                        self.out.push(0x84 + items.len() as u8);
                    }
                    _ => {
                        self.out.push(b'(');
                        for it in items {
                            self.value(it);
                        }
                        self.out.push(b't');
                    }
                }
                self.memoize();
            }
        }
    }

    fn int(&mut self, i: i64) {
        if (0..=0xff).contains(&i) {
            self.out.push(b'K');
            self.out.push(i as u8);
        } else if (0..=0xffff).contains(&i) {
            self.out.push(b'M');
            self.out.extend_from_slice(&(i as u16).to_le_bytes());
        } else if (-0x8000_0000..=0x7fff_ffff).contains(&i) {
            self.out.push(b'J');
            self.out.extend_from_slice(&(i as i32).to_le_bytes());
        } else {
            // LONG1: minimal little-endian two's complement.
            let bytes = i.to_le_bytes();
            let mut n = 8;
            while n > 1 {
                let top = bytes[n - 1];
                let next_sign = bytes[n - 2] & 0x80;
                if (top == 0 && next_sign == 0) || (top == 0xff && next_sign != 0) {
                    n -= 1;
                } else {
                    break;
                }
            }
            self.out.push(0x8a);
            self.out.push(n as u8);
            self.out.extend_from_slice(&bytes[..n]);
        }
    }
}

enum Item {
    Mark,
    V(Value),
}

/// Unpickles one value. Byte strings are decoded as UTF-8 (as Swift's
/// `encoding='utf8'`).
pub fn loads(data: &[u8]) -> Result<Value, PickleError> {
    let mut stack: Vec<Item> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> Result<&[u8], PickleError> {
        let end = pos.checked_add(n).ok_or(PickleError::Truncated)?;
        let s = data.get(*pos..end).ok_or(PickleError::Truncated)?;
        *pos = end;
        Ok(s)
    };
    let utf8 = |b: &[u8]| -> Result<Value, PickleError> {
        String::from_utf8(b.to_vec())
            .map(Value::Str)
            .map_err(|_| PickleError::Bad("string is not UTF-8"))
    };
    let top = |stack: &Vec<Item>| -> Result<Value, PickleError> {
        match stack.last() {
            Some(Item::V(v)) => Ok(v.clone()),
            _ => Err(PickleError::Bad("empty stack")),
        }
    };
    let pop_n = |stack: &mut Vec<Item>, n: usize| -> Result<Vec<Value>, PickleError> {
        if stack.len() < n {
            return Err(PickleError::Bad("stack underflow"));
        }
        stack
            .split_off(stack.len() - n)
            .into_iter()
            .map(|i| match i {
                Item::V(v) => Ok(v),
                Item::Mark => Err(PickleError::Bad("unexpected mark")),
            })
            .collect()
    };
    loop {
        let at = pos;
        let op = *take(&mut pos, 1)?.first().ok_or(PickleError::Truncated)?;
        match op {
            0x80 => {
                take(&mut pos, 1)?;
            }
            0x95 => {
                take(&mut pos, 8)?;
            }
            b'.' => {
                return match stack.pop() {
                    Some(Item::V(v)) if stack.is_empty() => Ok(v),
                    _ => Err(PickleError::Bad("bad stack at STOP")),
                };
            }
            b'(' => stack.push(Item::Mark),
            b'N' => stack.push(Item::V(Value::None)),
            0x88 => stack.push(Item::V(Value::Bool(true))),
            0x89 => stack.push(Item::V(Value::Bool(false))),
            b'K' => {
                let b = take(&mut pos, 1)?;
                stack.push(Item::V(Value::Int(b[0] as i64)));
            }
            b'M' => {
                let b = take(&mut pos, 2)?;
                stack.push(Item::V(Value::Int(u16::from_le_bytes([b[0], b[1]]) as i64)));
            }
            b'J' => {
                let b = take(&mut pos, 4)?;
                let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                stack.push(Item::V(Value::Int(v as i64)));
            }
            0x8a => {
                let n = take(&mut pos, 1)?[0] as usize;
                let b = take(&mut pos, n)?;
                if n > 8 {
                    return Err(PickleError::Bad("integer too large"));
                }
                let mut buf = if b.last().is_some_and(|x| x & 0x80 != 0) {
                    [0xffu8; 8]
                } else {
                    [0u8; 8]
                };
                buf[..n].copy_from_slice(b);
                stack.push(Item::V(Value::Int(i64::from_le_bytes(buf))));
            }
            b'G' => {
                let b = take(&mut pos, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                stack.push(Item::V(Value::Float(f64::from_be_bytes(a))));
            }
            b'X' | b'T' | b'B' => {
                let b = take(&mut pos, 4)?;
                let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let s = take(&mut pos, n)?;
                stack.push(Item::V(utf8(s)?));
            }
            0x8c | b'U' | b'C' => {
                let n = take(&mut pos, 1)?[0] as usize;
                let s = take(&mut pos, n)?;
                stack.push(Item::V(utf8(s)?));
            }
            0x8d | 0x8e => {
                let b = take(&mut pos, 8)?;
                let n = u64::from_le_bytes(b.try_into().map_err(|_| PickleError::Truncated)?);
                let n = usize::try_from(n).map_err(|_| PickleError::Truncated)?;
                let s = take(&mut pos, n)?;
                stack.push(Item::V(utf8(s)?));
            }
            b'q' => {
                let i = take(&mut pos, 1)?[0] as u32;
                memo.insert(i, top(&stack)?);
            }
            b'r' => {
                let b = take(&mut pos, 4)?;
                memo.insert(u32::from_le_bytes([b[0], b[1], b[2], b[3]]), top(&stack)?);
            }
            0x94 => {
                let i = memo.len() as u32;
                memo.insert(i, top(&stack)?);
            }
            b'h' => {
                let i = take(&mut pos, 1)?[0] as u32;
                let v = memo.get(&i).ok_or(PickleError::Bad("unknown memo key"))?;
                stack.push(Item::V(v.clone()));
            }
            b'j' => {
                let b = take(&mut pos, 4)?;
                let i = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let v = memo.get(&i).ok_or(PickleError::Bad("unknown memo key"))?;
                stack.push(Item::V(v.clone()));
            }
            b')' => stack.push(Item::V(Value::Tuple(Vec::new()))),
            0x85..=0x87 => {
                let items = pop_n(&mut stack, (op - 0x84) as usize)?;
                stack.push(Item::V(Value::Tuple(items)));
            }
            b't' => {
                let mark = stack
                    .iter()
                    .rposition(|i| matches!(i, Item::Mark))
                    .ok_or(PickleError::Bad("TUPLE without MARK"))?;
                let n = stack.len() - mark - 1;
                let items = pop_n(&mut stack, n)?;
                stack.pop();
                stack.push(Item::V(Value::Tuple(items)));
            }
            _ => return Err(PickleError::Opcode(op, at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_round_trip() {
        for i in [
            0,
            1,
            255,
            256,
            65535,
            65536,
            -1,
            -129,
            i32::MAX as i64,
            i32::MIN as i64,
            1 << 40,
            -(1 << 40),
            i64::MAX,
            i64::MIN,
        ] {
            let t = vec![Value::Int(i)];
            assert_eq!(loads(&dumps_tuple(&t)).unwrap(), Value::Tuple(t));
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(loads(b"").is_err());
        assert!(loads(b"\x80\x02c__builtin__\neval\n").is_err());
        assert!(loads(b"\x80\x02X\xff\xff\xff\xff").is_err());
        assert!(loads(b"\x80\x02t.").is_err());
    }
}
