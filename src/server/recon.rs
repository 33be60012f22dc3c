//! Swift's recon middleware (`swift/common/middleware/recon.py`), served
//! when the config's `[pipeline:main]` has a `[filter:...]` with `use =
//! egg:swift#recon`: `/recon/<check>[/<type>]` answers the JSON Swift's
//! middleware answers, byte for byte as `json.dumps` writes it (key order,
//! floats as Python's `repr`, `\uXXXX` escapes), so `swift-recon` and other
//! monitoring read a rowsync node as a Swift one.
//!
//! Recon cache files (`<recon_cache_path>/{container,account,object,drive,
//! relinker}.recon`) are read as Python's `json.load` reads them (exact
//! floats, arbitrary integers, `NaN` / `Infinity`, duplicate keys) and the
//! asked-for keys written back (`null` when missing, or for every key when
//! the file is missing or unreadable, as Swift does). Host facts come from
//! `/proc` (`mounted`, `load`, `mem`, `sockstat`), the devices directory
//! (`devices`, `unmounted`, `diskusage`, `quarantined`, with Swift's
//! `check_mount`: a device is mounted when it is a mount point or holds a
//! `.ismount` file, whatever `mount_check` says) and `swift_dir` (ring and
//! `swift.conf` md5 sums).
//!
//! Where Swift raises (an unreadable devices directory, an unknown
//! quarantine type, a malformed `/proc` file), the answer is 500 with a
//! one-line text body (Swift: eventlet's traceback).

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use md5::{Digest, Md5};

use super::AppState;
use crate::config::{ReconFilter, SwiftConf};
use crate::swift::pyvalue::{py_json_loads, PyJson, PyStr};

/// What `/recon/version` reports: the Swift release rowsync is compatible
/// with (and that the interop suite runs against), so `swift-recon
/// --swift-versions` sees one version in a mixed cluster.
pub const SWIFT_VERSION: &str = "2.38.3";

/// Swift's fixed default `SWIFT_CONF_FILE`.
const DEFAULT_SWIFT_CONF_FILE: &str = "/etc/swift/swift.conf";

// ---------------------------------------------------------------- helpers

/// Python's `os.path.join(a, b)` for a relative `b`.
fn path_join(a: &str, b: &str) -> String {
    if a.is_empty() || a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// `urllib.parse.quote(bytes, safe='/')` (Swift's `wsgi_quote` of a
/// `PATH_INFO`).
fn quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request path as swob's `req.path` gives it: the percent-decoded
/// `PATH_INFO`, quoted again.
pub fn swob_path(req: &Request) -> String {
    let raw = req.uri().path();
    let bytes: Vec<u8> = percent_encoding::percent_decode(raw.as_bytes()).collect();
    quote_bytes(&bytes)
}

/// Swift's `md5_hash_for_file`.
fn md5_hash_for_file(path: &str) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// `os.listdir(path)`, in directory order, names as Python decodes them.
fn listdir(path: &str) -> std::io::Result<Vec<(PyStr, Vec<u8>)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(path)? {
        let name = e?.file_name();
        let bytes = name.as_bytes().to_vec();
        out.push((PyStr::fsdecode(&bytes), bytes));
    }
    Ok(out)
}

fn join_bytes(dir: &str, name: &[u8]) -> std::path::PathBuf {
    Path::new(dir).join(std::ffi::OsStr::from_bytes(name))
}

/// Swift's `ismount` (`ismount_raw`, errors as `False`): a mount point,
/// or a directory (or a symlink) holding a `.ismount` file.
pub fn swift_ismount(path: &Path) -> bool {
    let Ok(me) = fs::symlink_metadata(path) else {
        return false;
    };
    let stub = || path.join(".ismount").is_file();
    if me.file_type().is_symlink() {
        return stub();
    }
    let Ok(parent) = fs::symlink_metadata(path.join("..")) else {
        return false;
    };
    me.dev() != parent.dev() || me.ino() == parent.ino() || stub()
}

/// Swift's `check_mount(devices, drive)`: the drive name must survive
/// `quote_plus` unchanged, and the path must be a mount point.
fn check_mount(devices: &str, name: &PyStr, bytes: &[u8]) -> bool {
    let Some(s) = name.to_string_strict() else {
        return false;
    };
    let plain = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~'));
    plain && swift_ismount(&join_bytes(devices, bytes))
}

/// `statvfs`: `(f_bsize, f_blocks, f_bavail)`.
fn statvfs(path: &Path) -> std::io::Result<(u64, u64, u64)> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs writes into a zeroed struct we own; c is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bsize as u64, st.f_blocks as u64, st.f_bavail as u64))
}

/// Python's `int(text)` for the decimal numbers of `/proc` files.
fn py_int(text: &str) -> Result<i128, String> {
    text.trim()
        .parse::<i128>()
        .map_err(|_| format!("invalid literal for int() with base 10: {text:?}"))
}

fn read_text(path: &str) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

// ------------------------------------------------------------- the checks

/// One recon middleware: the filter's options plus the server's
/// `swift.conf` (its policies name the object rings).
pub struct Recon<'a> {
    pub conf: &'a ReconFilter,
    /// Swift's `SWIFT_CONF_FILE`: `/etc/swift/swift.conf`, or
    /// `<swift_dir>/swift.conf` when the server's `swift_dir` is another
    /// directory (Swift's `set_swift_dir` at start-up, before the
    /// middleware is loaded).
    pub swift_conf_file: String,
    pub swift: &'a SwiftConf,
}

/// `SWIFT_CONF_FILE` as Swift's server sets it from its `swift_dir`.
pub fn swift_conf_file(server_swift_dir: &str) -> String {
    if server_swift_dir.is_empty() || server_swift_dir == "/etc/swift" {
        DEFAULT_SWIFT_CONF_FILE.to_string()
    } else {
        path_join(server_swift_dir, "swift.conf")
    }
}

type Content = Result<PyJson, String>;

impl Recon<'_> {
    fn cache_file(&self, name: &str) -> String {
        path_join(&self.conf.recon_cache_path, name)
    }

    /// Swift's `_from_recon_cache(keys, file)`.
    fn recon_cache(&self, keys: &[&str], file: &str, ignore_missing: bool) -> PyJson {
        let path = self.cache_file(file);
        let nulls = || PyJson::dict(keys.iter().map(|k| (*k, PyJson::Null)));
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                if !(ignore_missing && e.kind() == std::io::ErrorKind::NotFound) {
                    tracing::error!(path, "Error reading recon cache file: {e}");
                }
                return nulls();
            }
        };
        let data = match std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(py_json_loads)
        {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(path, "Error parsing recon cache file: {e}");
                return nulls();
            }
        };
        if !matches!(data, PyJson::Dict(_)) {
            tracing::error!(path, "Error retrieving recon data: not a JSON object");
            return nulls();
        }
        PyJson::dict(
            keys.iter()
                .map(|k| (*k, data.get(k).cloned().unwrap_or(PyJson::Null))),
        )
    }

    fn mounted(&self) -> Content {
        let text = read_text("/proc/mounts")?;
        let mut out = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 6 {
                return Err(format!("/proc/mounts line {line:?}: not 6 fields"));
            }
            out.push(PyJson::dict([
                ("device", PyJson::str(f[0])),
                ("path", PyJson::str(f[1])),
            ]));
        }
        Ok(PyJson::List(out))
    }

    fn load(&self) -> Content {
        let text = read_text("/proc/loadavg")?;
        let f: Vec<&str> = text.split_whitespace().collect();
        let [one, five, fifteen, tasks, procs] = f[..] else {
            return Err(format!("/proc/loadavg {text:?}: not 5 fields"));
        };
        let float = |s: &str| {
            s.parse::<f64>()
                .map(PyJson::Float)
                .map_err(|_| format!("could not convert string to float: {s:?}"))
        };
        Ok(PyJson::dict([
            ("1m", float(one)?),
            ("5m", float(five)?),
            ("15m", float(fifteen)?),
            ("tasks", PyJson::str(tasks)),
            ("processes", PyJson::int(py_int(procs)?)),
        ]))
    }

    fn mem(&self) -> Content {
        let text = read_text("/proc/meminfo")?;
        let mut items: Vec<(PyStr, PyJson)> = Vec::new();
        for line in text.lines() {
            let mut parts = line.trim_end().split(':');
            let key = parts.next().unwrap_or("");
            let value = parts
                .next()
                .ok_or_else(|| format!("/proc/meminfo line {line:?}: no ':'"))?;
            let key = PyStr::from(key);
            let value = PyJson::str(value.trim());
            match items.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => items.push((key, value)),
            }
        }
        Ok(PyJson::Dict(items))
    }

    fn replication(&self, rtype: &str) -> PyJson {
        let mut keys = vec!["replication_time", "replication_stats", "replication_last"];
        let file = match rtype {
            "account" => "account.recon",
            "container" => "container.recon",
            _ => {
                keys.extend(["object_replication_time", "object_replication_last"]);
                "object.recon"
            }
        };
        self.recon_cache(&keys, file, false)
    }

    fn devices(&self) -> PyJson {
        let list = match listdir(&self.conf.devices) {
            Ok(names) => PyJson::List(names.into_iter().map(|(n, _)| PyJson::Str(n)).collect()),
            Err(e) => {
                tracing::error!(devices = self.conf.devices, "Error listing devices: {e}");
                PyJson::Null
            }
        };
        PyJson::dict([(self.conf.devices.as_str(), list)])
    }

    fn updater(&self, rtype: &str) -> PyJson {
        if rtype == "container" {
            self.recon_cache(&["container_updater_sweep"], "container.recon", false)
        } else {
            self.recon_cache(
                &[
                    "object_updater_sweep",
                    "object_updater_stats",
                    "object_updater_last",
                ],
                "object.recon",
                false,
            )
        }
    }

    fn auditor(&self, rtype: &str) -> PyJson {
        match rtype {
            "account" => self.recon_cache(
                &[
                    "account_audits_passed",
                    "account_auditor_pass_completed",
                    "account_audits_since",
                    "account_audits_failed",
                ],
                "account.recon",
                false,
            ),
            "container" => self.recon_cache(
                &[
                    "container_audits_passed",
                    "container_auditor_pass_completed",
                    "container_audits_since",
                    "container_audits_failed",
                ],
                "container.recon",
                false,
            ),
            _ => self.recon_cache(
                &["object_auditor_stats_ALL", "object_auditor_stats_ZBF"],
                "object.recon",
                false,
            ),
        }
    }

    /// The directories of the devices dir, with whether Swift's
    /// `check_mount` passes.
    fn device_dirs(&self) -> Result<Vec<(PyStr, Vec<u8>, bool)>, String> {
        let devices = &self.conf.devices;
        let names = listdir(devices).map_err(|e| format!("{devices}: {e}"))?;
        Ok(names
            .into_iter()
            .filter(|(_, b)| join_bytes(devices, b).is_dir())
            .map(|(n, b)| {
                let mounted = check_mount(devices, &n, &b);
                (n, b, mounted)
            })
            .collect())
    }

    fn unmounted(&self) -> Content {
        Ok(PyJson::List(
            self.device_dirs()?
                .into_iter()
                .filter(|(_, _, mounted)| !mounted)
                .map(|(n, _, _)| {
                    PyJson::Dict(vec![
                        ("device".into(), PyJson::Str(n)),
                        ("mounted".into(), PyJson::Bool(false)),
                    ])
                })
                .collect(),
        ))
    }

    fn diskusage(&self) -> Content {
        let mut out = Vec::new();
        for (n, b, mounted) in self.device_dirs()? {
            let (mounted, size, used, avail) = if mounted {
                let path = join_bytes(&self.conf.devices, &b);
                let (bsize, blocks, bavail) =
                    statvfs(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let m = |x: u64| PyJson::int(i128::from(bsize) * i128::from(x));
                (true, m(blocks), m(blocks.saturating_sub(bavail)), m(bavail))
            } else {
                let e = || PyJson::str("");
                (false, e(), e(), e())
            };
            out.push(PyJson::Dict(vec![
                ("device".into(), PyJson::Str(n)),
                ("mounted".into(), PyJson::Bool(mounted)),
                ("size".into(), size),
                ("used".into(), used),
                ("avail".into(), avail),
            ]));
        }
        Ok(PyJson::List(out))
    }

    /// The ring files Swift's middleware sums: account, container, then
    /// each policy's object ring.
    pub fn rings(&self) -> Vec<String> {
        let dir = &self.conf.swift_dir;
        let mut rings = vec![
            path_join(dir, "account.ring.gz"),
            path_join(dir, "container.ring.gz"),
        ];
        for p in &self.swift.policies {
            let name = match p.index {
                0 => "object.ring.gz".to_string(),
                n => format!("object-{n}.ring.gz"),
            };
            rings.push(path_join(dir, &name));
        }
        rings
    }

    fn ringmd5(&self) -> PyJson {
        let mut sums = Vec::new();
        for ring in self.rings() {
            if !Path::new(&ring).exists() {
                continue;
            }
            let sum = match md5_hash_for_file(&ring) {
                Ok(s) => PyJson::str(s),
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::error!(ring, "Error reading ringfile: {e}");
                    }
                    PyJson::Null
                }
            };
            sums.push((PyStr::from(ring), sum));
        }
        PyJson::Dict(sums)
    }

    fn swiftconfmd5(&self) -> PyJson {
        let file = &self.swift_conf_file;
        let sum = match md5_hash_for_file(file) {
            Ok(s) => PyJson::str(s),
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!(file, "Error reading swift.conf: {e}");
                }
                PyJson::Null
            }
        };
        PyJson::dict([(file.as_str(), sum)])
    }

    fn quarantined(&self) -> Content {
        let devices = &self.conf.devices;
        let (mut objects, mut containers, mut accounts) = (0i128, 0i128, 0i128);
        let mut policies: Vec<(PyStr, i128)> = Vec::new();
        for (_, dev) in listdir(devices).map_err(|e| format!("{devices}: {e}"))? {
            let qpath = join_bytes(devices, &dev).join("quarantined");
            if !qpath.exists() {
                continue;
            }
            let qpath_s = qpath.to_string_lossy().into_owned();
            for (qtype, qbytes) in listdir(&qpath_s).map_err(|e| format!("{qpath_s}: {e}"))? {
                let qtgt = qpath.join(std::ffi::OsStr::from_bytes(&qbytes));
                let links = fs::symlink_metadata(&qtgt)
                    .map_err(|e| format!("{}: {e}", qtgt.display()))?
                    .nlink() as i128;
                if links <= 2 {
                    continue;
                }
                let n = links - 2;
                if qbytes.starts_with(b"objects") {
                    let pkey = match qbytes.iter().position(|&b| b == b'-') {
                        Some(at) => PyStr::fsdecode(&qbytes[at + 1..]),
                        None => PyStr::from("0"),
                    };
                    match policies.iter_mut().find(|(k, _)| *k == pkey) {
                        Some(slot) => slot.1 += n,
                        None => policies.push((pkey, n)),
                    }
                    objects += n;
                } else {
                    match qbytes.as_slice() {
                        b"containers" => containers += n,
                        b"accounts" => accounts += n,
                        // Swift: KeyError (TypeError for "policies").
                        _ => {
                            let name = String::from_utf16_lossy(&qtype.0);
                            return Err(format!("unknown quarantine type {name:?} in {qpath_s}"));
                        }
                    }
                }
            }
        }
        Ok(PyJson::dict([
            ("objects", PyJson::int(objects)),
            ("containers", PyJson::int(containers)),
            ("accounts", PyJson::int(accounts)),
            (
                "policies",
                PyJson::Dict(
                    policies
                        .into_iter()
                        .map(|(k, n)| (k, PyJson::dict([("objects", PyJson::int(n))])))
                        .collect(),
                ),
            ),
        ]))
    }

    fn sockstat(&self) -> Content {
        let mut out: Vec<(&str, PyJson)> = Vec::new();
        // SAFETY: sysconf has no memory effects.
        let page = i128::from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) });
        let read = |path: &str| match fs::read_to_string(path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{path}: {e}")),
        };
        let field = |f: &[&str], i: usize| -> Result<i128, String> {
            let text = f.get(i).ok_or("list index out of range")?;
            py_int(text)
        };
        if let Some(text) = read("/proc/net/sockstat")? {
            for line in text.lines().filter(|l| l.starts_with("TCP: inuse")) {
                let f: Vec<&str> = line.split_whitespace().collect();
                set(&mut out, "tcp_in_use", PyJson::int(field(&f, 2)?));
                set(&mut out, "orphan", PyJson::int(field(&f, 4)?));
                set(&mut out, "time_wait", PyJson::int(field(&f, 6)?));
                let mem = field(&f, 10)? * page;
                set(&mut out, "tcp_mem_allocated_bytes", PyJson::int(mem));
            }
        }
        if let Some(text) = read("/proc/net/sockstat6")? {
            for line in text.lines().filter(|l| l.starts_with("TCP6: inuse")) {
                let f: Vec<&str> = line.split_whitespace().collect();
                set(&mut out, "tcp6_in_use", PyJson::int(field(&f, 2)?));
            }
        }
        Ok(PyJson::dict(out))
    }

    fn time(&self) -> PyJson {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // Python's time.time(): nanoseconds / 1e9 as a double.
        PyJson::Float(now.as_nanos() as f64 / 1e9)
    }

    /// The JSON for `/recon/<rcheck>[/<rtype>]`; `Ok(None)` for a path
    /// Swift's middleware does not know (404).
    pub fn content(&self, rcheck: &str, rtype: Option<&str>) -> Result<Option<PyJson>, String> {
        let all = ["account", "container", "object"];
        let is = |t: &[&str]| rtype.is_some_and(|r| t.contains(&r));
        Ok(Some(match rcheck {
            "mem" => self.mem()?,
            "load" => self.load()?,
            "async" => self.recon_cache(
                &["async_pending", "async_pending_last"],
                "object.recon",
                false,
            ),
            "replication" if is(&all) => self.replication(rtype.unwrap_or("object")),
            "replication" if rtype.is_none() => self.replication("object"),
            "devices" => self.devices(),
            "updater" if is(&["container", "object"]) => self.updater(rtype.unwrap_or("")),
            "auditor" if is(&all) => self.auditor(rtype.unwrap_or("")),
            "expirer" if rtype == Some("object") => self.recon_cache(
                &["object_expiration_pass", "expired_last_pass"],
                "object.recon",
                false,
            ),
            "mounted" => self.mounted()?,
            "unmounted" => self.unmounted()?,
            "diskusage" => self.diskusage()?,
            "ringmd5" => self.ringmd5(),
            "swiftconfmd5" => self.swiftconfmd5(),
            "quarantined" => self.quarantined()?,
            "sockstat" => self.sockstat()?,
            "version" => PyJson::dict([("version", PyJson::str(SWIFT_VERSION))]),
            "driveaudit" => self.recon_cache(&["drive_audit_errors"], "drive.recon", false),
            "time" => self.time(),
            "sharding" => self.recon_cache(
                &["sharding_stats", "sharding_time", "sharding_last"],
                "container.recon",
                false,
            ),
            "relinker" => self.recon_cache(&["devices", "workers"], "relinker.recon", true),
            "reconstruction" if rtype == Some("object") => self.recon_cache(
                &["object_reconstruction_last", "object_reconstruction_time"],
                "object.recon",
                false,
            ),
            _ => return Ok(None),
        }))
    }
}

fn set(out: &mut Vec<(&'static str, PyJson)>, key: &'static str, v: PyJson) {
    match out.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = v,
        None => out.push((key, v)),
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    r
}

/// The recon middleware in front of the server's API: `Some(response)`
/// for a `/recon/...` path (any method, as Swift) when the pipeline has
/// the recon filter, else `None` (the request goes on to the API).
/// `path` is the request's path as swob gives it ([`swob_path`]).
pub async fn handle(state: &Arc<AppState>, path: String) -> Option<Response> {
    state.conf.filters.recon.as_ref()?;
    if !path.starts_with("/recon/") {
        return None;
    }
    let state = state.clone();
    let task = tokio::task::spawn_blocking(move || {
        let Some(conf) = state.conf.filters.recon.as_ref() else {
            return Err("no recon filter".to_string());
        };
        let recon = Recon {
            conf,
            swift_conf_file: swift_conf_file(&state.conf.swift_dir.to_string_lossy()),
            swift: &state.swift,
        };
        // req.split_path(1, 3, True): /recon/<rcheck>[/<rtype...>]
        let mut segs = path.splitn(4, '/').skip(2);
        let rcheck = segs.next().unwrap_or("");
        let rtype = segs.next();
        recon
            .content(rcheck, rtype)
            .map(|c| (c.map(|c| c.dumps()), path))
    });
    Some(match task.await {
        Ok(Ok((Some(json), _))) => respond(StatusCode::OK, "application/json", json),
        Ok(Ok((None, path))) => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("Invalid path: {path}"),
        ),
        Ok(Err(e)) => {
            tracing::error!("recon: {e}");
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("Internal server error: {e}"),
            )
        }
        Err(e) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("Internal server error: {e}"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_as_python() {
        for (text, want) in [
            (
                r#"{"a": 1.5e3, "b": -0, "c": 12345678901234567890123, "d": 1E400}"#,
                r#"{"a": 1500.0, "b": 0, "c": 12345678901234567890123, "d": Infinity}"#,
            ),
            (r#"{"x": 1, "x": 2, "y": NaN}"#, r#"{"x": 2, "y": NaN}"#),
            (
                "[\"\\u00e9\\ud83d\\ude00\\udc80\", \"caf\u{e9}\", \"\\/\"]",
                r#"["\u00e9\ud83d\ude00\udc80", "caf\u00e9", "/"]"#,
            ),
            (
                " [1700000000.1234567, 0.1, -1e-7, true] \n",
                "[1700000000.1234567, 0.1, -1e-07, true]",
            ),
        ] {
            assert_eq!(py_json_loads(text).unwrap().dumps(), want, "{text}");
        }
        for bad in [
            "",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "[1.]",
            "\"a\tb\"",
            "{} x",
            "[1e]",
        ] {
            assert!(py_json_loads(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fsdecode_escapes_bad_bytes() {
        let s = PyStr::fsdecode(b"a\xffb\xc3\xa9");
        assert_eq!(s.0, vec![0x61, 0xdcff, 0x62, 0xe9]);
        assert_eq!(PyJson::Str(s).dumps(), r#""a\udcffb\u00e9""#);
    }

    #[test]
    fn paths_join_as_python() {
        assert_eq!(
            path_join("/etc/swift", "swift.conf"),
            "/etc/swift/swift.conf"
        );
        assert_eq!(path_join("/etc/swift/", "x"), "/etc/swift/x");
        assert_eq!(path_join("", "x"), "x");
        assert_eq!(swift_conf_file("/etc/swift"), "/etc/swift/swift.conf");
        assert_eq!(swift_conf_file(""), "/etc/swift/swift.conf");
        assert_eq!(swift_conf_file("/x/etc"), "/x/etc/swift.conf");
        assert_eq!(quote_bytes(b"/recon/a b\xc3"), "/recon/a%20b%C3");
    }
}
