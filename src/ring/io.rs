//! Reading ring files in Swift's formats v1 and v2, and writing format v1.
//!
//! Both formats are gzip files whose uncompressed stream starts with the
//! magic `R1NG` and a big-endian u16 format version.
//!
//! - v1: u32 BE length + JSON header (`devs`, `part_shift`, `replica_count`
//!   rows, `byteorder`, optional `version` / `next_part_power`), then the
//!   rows of u16 device ids in the header's byte order (the last row may be
//!   shorter: a fractional replica).
//! - v2: length-prefixed (u64 BE) sections `swift/ring/metadata`,
//!   `swift/ring/devices` and `swift/ring/assignments` (big-endian ids of
//!   `dev_id_bytes` each), an index (JSON: section → offsets and sha256)
//!   and, last, the index's uncompressed and compressed offsets (u64 BE).
//!
//! The reader inflates the whole file and finds v2 sections through the
//! index's *uncompressed* offsets, so it also reads v2 rings that were
//! recompressed. Every section's digest is checked. Damaged input gives a
//! [`RingError`], never a panic.
//!
//! The writer produces what Swift's `RingData.save(format_version=1)` does:
//! the same JSON text (sorted keys, Python's separators, ASCII escapes),
//! little-endian u16 ids, a gzip header with Swift's fixed mtime and the
//! file name, written atomically (temp file, fsync, rename).

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use flate2::read::GzDecoder;
use flate2::{Compression, GzBuilder};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha512};

use super::{Device, Ring, RingError};

/// The gzip header mtime Swift writes, so identical rings give identical bytes.
pub const SWIFT_GZIP_MTIME: u32 = 1_300_507_380;

/// Largest uncompressed ring accepted (guards against gzip bombs).
const MAX_RING_BYTES: u64 = 1 << 31;

const SECTION_METADATA: &str = "swift/ring/metadata";
const SECTION_DEVICES: &str = "swift/ring/devices";
const SECTION_ASSIGNMENTS: &str = "swift/ring/assignments";

/// Loads a ring file (v1 or v2).
pub fn load(path: impl AsRef<Path>) -> Result<Ring, RingError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| RingError::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_from_gz_bytes(&bytes)
}

/// Parses the bytes of a gzipped ring file.
pub fn load_from_gz_bytes(gz: &[u8]) -> Result<Ring, RingError> {
    let mut data = Vec::new();
    GzDecoder::new(gz)
        .take(MAX_RING_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(RingError::Gzip)?;
    if data.len() as u64 > MAX_RING_BYTES {
        return Err(RingError::Truncated(
            "uncompressed ring larger than 2 GiB".into(),
        ));
    }
    load_from_raw(&data)
}

/// Parses an uncompressed ring stream (starting with `R1NG`).
pub fn load_from_raw(data: &[u8]) -> Result<Ring, RingError> {
    if data.len() < 4 || &data[..4] != b"R1NG" {
        return Err(RingError::BadMagic(data[..data.len().min(4)].to_vec()));
    }
    let version = u16::from_be_bytes(
        take(data, 4, 2, "format version")?
            .try_into()
            .map_err(|_| RingError::Truncated("format version".into()))?,
    );
    match version {
        1 => read_v1(data),
        2 => read_v2(data),
        v => Err(RingError::UnsupportedVersion(v)),
    }
}

/// `data[at..at+len]`, or a truncation error naming `what`.
fn take<'a>(data: &'a [u8], at: usize, len: usize, what: &str) -> Result<&'a [u8], RingError> {
    at.checked_add(len)
        .and_then(|end| data.get(at..end))
        .ok_or_else(|| {
            RingError::Truncated(format!(
                "{what}: need {len} bytes at offset {at}, have {}",
                data.len()
            ))
        })
}

fn be_u32(b: &[u8]) -> u32 {
    b.iter().fold(0, |acc, &x| (acc << 8) | u32::from(x))
}

fn be_u64(b: &[u8]) -> u64 {
    b.iter().fold(0, |acc, &x| (acc << 8) | u64::from(x))
}

fn parse_json(bytes: &[u8], what: &str) -> Result<Value, RingError> {
    serde_json::from_slice(bytes).map_err(|e| RingError::BadJson {
        what: what.into(),
        reason: e.to_string(),
    })
}

fn bad_json(what: &str, reason: impl Into<String>) -> RingError {
    RingError::BadJson {
        what: what.into(),
        reason: reason.into(),
    }
}

/// An optional non-negative integer field (absent or null → None).
fn opt_uint(obj: &Map<String, Value>, key: &str, what: &str) -> Result<Option<u64>, RingError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            bad_json(
                what,
                format!("{key} must be a non-negative integer, got {v}"),
            )
        }),
    }
}

fn req_uint(obj: &Map<String, Value>, key: &str, what: &str) -> Result<u64, RingError> {
    opt_uint(obj, key, what)?.ok_or_else(|| bad_json(what, format!("missing {key}")))
}

fn part_shift_of(obj: &Map<String, Value>, what: &str) -> Result<u32, RingError> {
    let shift = req_uint(obj, "part_shift", what)?;
    if !(1..=32).contains(&shift) {
        return Err(bad_json(
            what,
            format!("part_shift {shift} out of range 1..=32"),
        ));
    }
    Ok(shift as u32)
}

fn parse_devs(value: &Value, what: &str) -> Result<Vec<Option<Device>>, RingError> {
    let list = value
        .as_array()
        .ok_or_else(|| bad_json(what, "devs must be a list"))?;
    list.iter()
        .enumerate()
        .map(|(i, d)| match d {
            Value::Null => Ok(None),
            d => Device::from_json(i, d).map(Some),
        })
        .collect()
}

fn read_v1(data: &[u8]) -> Result<Ring, RingError> {
    let what = "v1 header";
    let json_len = be_u32(take(data, 6, 4, "v1 header length")?) as usize;
    let header = parse_json(take(data, 10, json_len, what)?, what)?;
    let obj = header
        .as_object()
        .ok_or_else(|| bad_json(what, "header must be an object"))?;
    let devs = parse_devs(
        obj.get("devs")
            .ok_or_else(|| bad_json(what, "missing devs"))?,
        what,
    )?;
    let part_shift = part_shift_of(obj, what)?;
    let rows = req_uint(obj, "replica_count", what)?;
    let little = match obj.get("byteorder") {
        None => cfg!(target_endian = "little"),
        Some(Value::String(s)) if s == "little" => true,
        Some(Value::String(s)) if s == "big" => false,
        Some(v) => return Err(bad_json(what, format!("bad byteorder {v}"))),
    };
    let version = opt_uint(obj, "version", what)?;
    let next_part_power = opt_uint(obj, "next_part_power", what)?.map(|v| v as u32);

    let parts = 1usize << (32 - part_shift);
    let mut pos = 10 + json_len;
    let mut table = Vec::new();
    for r in 0..rows {
        let avail = data.len() - pos;
        let len = avail.min(2 * parts);
        if len == 0 {
            return Err(RingError::BadTable(format!(
                "replica row {r} of {rows} is missing (short assignment table)"
            )));
        }
        if !len.is_multiple_of(2) {
            return Err(RingError::BadTable(format!(
                "replica row {r} has an odd number of bytes"
            )));
        }
        let row = data[pos..pos + len]
            .chunks_exact(2)
            .map(|c| {
                let b = [c[0], c[1]];
                u32::from(if little {
                    u16::from_le_bytes(b)
                } else {
                    u16::from_be_bytes(b)
                })
            })
            .collect();
        table.push(row);
        pos += len;
    }
    Ring::new(devs, table, part_shift, next_part_power, version, 1)
}

/// One entry of a v2 index: offsets into the compressed and uncompressed
/// streams, and the section's checksum.
#[derive(Debug)]
struct IndexEntry {
    uncompressed_start: usize,
    uncompressed_end: usize,
    method: String,
    digest: String,
}

fn read_v2_index(data: &[u8]) -> Result<Map<String, Value>, RingError> {
    if data.len() < 6 + 16 {
        return Err(RingError::Truncated(
            "v2 ring too short for its trailer".into(),
        ));
    }
    let trailer = data.len() - 16;
    let index_at = be_u64(&data[trailer..trailer + 8]);
    let index_at = usize::try_from(index_at)
        .ok()
        .filter(|&at| at >= 6 && at < trailer)
        .ok_or_else(|| {
            RingError::Truncated(format!("v2 index offset {index_at} outside the file"))
        })?;
    let len = be_u64(take(data, index_at, 8, "v2 index length")?);
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| index_at + 8 + l <= trailer)
        .ok_or_else(|| RingError::Truncated(format!("v2 index length {len} past the end")))?;
    let index = parse_json(&data[index_at + 8..index_at + 8 + len], "v2 index")?;
    match index {
        Value::Object(m) => Ok(m),
        _ => Err(bad_json("v2 index", "must be an object")),
    }
}

fn index_entry(index: &Map<String, Value>, section: &str) -> Result<IndexEntry, RingError> {
    let bad = |reason: String| RingError::BadSection {
        section: section.into(),
        reason,
    };
    let entry = index
        .get(section)
        .ok_or_else(|| RingError::MissingSection(section.into()))?
        .as_array()
        .filter(|a| a.len() == 6)
        .ok_or_else(|| bad("index entry must be a list of 6 items".into()))?;
    let off = |i: usize| {
        entry[i]
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| {
                bad(format!(
                    "index item {i} must be an offset, got {}",
                    entry[i]
                ))
            })
    };
    let text = |i: usize| {
        entry[i]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad(format!("index item {i} must be a string, got {}", entry[i])))
    };
    Ok(IndexEntry {
        uncompressed_start: off(1)?,
        uncompressed_end: off(3)?,
        method: text(4)?,
        digest: text(5)?,
    })
}

/// The body of a v2 section (after its u64 length), digest verified.
fn read_section<'a>(
    data: &'a [u8],
    index: &Map<String, Value>,
    section: &str,
) -> Result<&'a [u8], RingError> {
    let e = index_entry(index, section)?;
    let bad = |reason: String| RingError::BadSection {
        section: section.into(),
        reason,
    };
    if e.uncompressed_end < e.uncompressed_start + 8 || e.uncompressed_end > data.len() {
        return Err(bad(format!(
            "offsets {}..{} outside the {}-byte stream",
            e.uncompressed_start,
            e.uncompressed_end,
            data.len()
        )));
    }
    let bytes = &data[e.uncompressed_start..e.uncompressed_end];
    let blob_len = be_u64(&bytes[..8]);
    if blob_len != (bytes.len() - 8) as u64 {
        return Err(bad(format!(
            "inconsistent section size: length prefix {blob_len}, index says {}",
            bytes.len() - 8
        )));
    }
    let found = match e.method.as_str() {
        "sha256" => hex::encode(Sha256::digest(bytes)),
        "sha512" => hex::encode(Sha512::digest(bytes)),
        "md5" => hex::encode(md5::Md5::digest(bytes)),
        m => return Err(bad(format!("unsupported checksum method {m:?}"))),
    };
    if found != e.digest.to_ascii_lowercase() {
        return Err(RingError::DigestMismatch {
            section: section.into(),
            found,
            expected: e.digest,
        });
    }
    Ok(&bytes[8..])
}

fn read_v2(data: &[u8]) -> Result<Ring, RingError> {
    let index = read_v2_index(data)?;
    let what = "v2 metadata";
    let meta = parse_json(read_section(data, &index, SECTION_METADATA)?, what)?;
    let meta = meta
        .as_object()
        .ok_or_else(|| bad_json(what, "must be an object"))?;
    let dev_id_bytes = req_uint(meta, "dev_id_bytes", what)?;
    if dev_id_bytes != 2 && dev_id_bytes != 4 {
        return Err(bad_json(
            what,
            format!("dev_id_bytes {dev_id_bytes} is not 2 or 4"),
        ));
    }
    let width = dev_id_bytes as usize;
    let part_shift = part_shift_of(meta, what)?;
    let version = opt_uint(meta, "version", what)?;
    let next_part_power = opt_uint(meta, "next_part_power", what)?.map(|v| v as u32);

    let devs_json = parse_json(read_section(data, &index, SECTION_DEVICES)?, "v2 devices")?;
    let devs = parse_devs(&devs_json, "v2 devices")?;

    let assignments = read_section(data, &index, SECTION_ASSIGNMENTS)?;
    if !assignments.len().is_multiple_of(width) {
        return Err(RingError::BadTable(format!(
            "{} assignment bytes is not a multiple of dev_id_bytes {width}",
            assignments.len()
        )));
    }
    let parts = 1usize << (32 - part_shift);
    let table = assignments
        .chunks(parts * width)
        .map(|row| {
            row.chunks_exact(width)
                .map(|id| be_u64(id) as u32)
                .collect::<Vec<u32>>()
        })
        .collect();
    Ring::new(devs, table, part_shift, next_part_power, version, 2)
}

/// The uncompressed v1 stream of `ring` (magic, header, u16 LE rows).
pub fn encode_v1(ring: &Ring) -> Result<Vec<u8>, RingError> {
    let max_id = ring.devs().len().saturating_sub(1);
    if max_id >= 0xffff {
        return Err(RingError::DevIdTooLarge(max_id as u32));
    }
    let mut header = Map::new();
    header.insert("byteorder".into(), "little".into());
    header.insert(
        "devs".into(),
        Value::Array(
            ring.devs()
                .iter()
                .map(|d| d.as_ref().map_or(Value::Null, Device::to_json))
                .collect(),
        ),
    );
    if let Some(npp) = ring.next_part_power() {
        header.insert("next_part_power".into(), npp.into());
    }
    header.insert("part_shift".into(), ring.part_shift().into());
    header.insert("replica_count".into(), ring.table().len().into());
    if let Some(v) = ring.version() {
        header.insert("version".into(), v.into());
    }
    let mut json = String::new();
    py_json(&Value::Object(header), &mut json);

    let mut out = Vec::with_capacity(10 + json.len() + 2 * ring.partition_count() * 4);
    out.extend_from_slice(b"R1NG\x00\x01");
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(json.as_bytes());
    for row in ring.table() {
        for &id in row {
            out.extend_from_slice(&(id as u16).to_le_bytes());
        }
    }
    Ok(out)
}

/// `ring` as a gzipped v1 file, with Swift's gzip header (fixed mtime,
/// `file_name` without its `.gz`).
pub fn encode_v1_gz(ring: &Ring, file_name: &str) -> Result<Vec<u8>, RingError> {
    let raw = encode_v1(ring)?;
    let name = file_name.strip_suffix(".gz").unwrap_or(file_name);
    let mut enc = GzBuilder::new()
        .filename(name.as_bytes())
        .mtime(SWIFT_GZIP_MTIME)
        .write(Vec::new(), Compression::best());
    enc.write_all(&raw).map_err(RingError::Gzip)?;
    enc.finish().map_err(RingError::Gzip)
}

/// Writes `ring` to `path` in format v1, atomically (temp file in the same
/// directory, fsync, mode 0644, rename), as Swift's `RingData.save`.
pub fn write_v1(ring: &Ring, path: impl AsRef<Path>) -> Result<(), RingError> {
    let path = path.as_ref();
    let io_err = |source| RingError::Io {
        path: path.display().to_string(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = encode_v1_gz(ring, &file_name)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(&file_name)
        .tempfile_in(dir)
        .map_err(io_err)?;
    tmp.write_all(&bytes).map_err(io_err)?;
    tmp.as_file().sync_all().map_err(io_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io_err)?;
    }
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(())
}

/// Serializes JSON as Python's `json.dumps(v, sort_keys=True,
/// ensure_ascii=True)`: sorted keys, `", "` and `": "` separators,
/// non-ASCII as `\uXXXX`, floats in Python's repr.
pub(crate) fn py_json(v: &Value, out: &mut String) {
    out.push_str(&crate::swift::pyjson::dumps_sorted(v));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_json_formatting() {
        let v: Value =
            serde_json::json!({"b": [1, 2.5, 200.0], "a": "caf\u{e9} \u{1f600}\"\n", "c": null});
        let mut s = String::new();
        py_json(&v, &mut s);
        assert_eq!(
            s,
            r#"{"a": "caf\u00e9 \ud83d\ude00\"\n", "b": [1, 2.5, 200.0], "c": null}"#
        );
        assert_eq!(crate::swift::pyjson::float_repr(1e16), "1e+16");
        assert_eq!(crate::swift::pyjson::float_repr(1e-5), "1e-05");
        assert_eq!(crate::swift::pyjson::float_repr(0.5), "0.5");
    }

    #[test]
    fn bad_magic_and_version() {
        assert!(matches!(
            load_from_raw(b"R2NG\x00\x01"),
            Err(RingError::BadMagic(_))
        ));
        assert!(matches!(load_from_raw(b""), Err(RingError::BadMagic(_))));
        assert!(matches!(
            load_from_raw(b"R1NG\x00\x03"),
            Err(RingError::UnsupportedVersion(3))
        ));
        assert!(matches!(
            load_from_raw(b"R1NG\x00"),
            Err(RingError::Truncated(_))
        ));
        assert!(matches!(
            load_from_raw(b"R1NG\x00\x02"),
            Err(RingError::Truncated(_))
        ));
    }

    #[test]
    fn v1_header_errors() {
        let mut data = b"R1NG\x00\x01".to_vec();
        data.extend_from_slice(&100u32.to_be_bytes());
        data.extend_from_slice(b"{}");
        assert!(matches!(load_from_raw(&data), Err(RingError::Truncated(_))));
        let mut data = b"R1NG\x00\x01".to_vec();
        data.extend_from_slice(&2u32.to_be_bytes());
        data.extend_from_slice(b"{}");
        assert!(matches!(
            load_from_raw(&data),
            Err(RingError::BadJson { .. })
        ));
    }
}
