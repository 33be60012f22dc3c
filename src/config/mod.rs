//! Swift's configuration files, as typed structs with Swift's defaults.
//!
//! - [`SwiftConf`]: `swift.conf` — `[swift-hash]` prefix / suffix and the
//!   `[storage-policy:N]` sections.
//! - [`ServerConf`]: `[app:container-server]` of `container-server.conf`
//!   (PasteDeploy semantics: a `[DEFAULT]` value wins unless the section
//!   uses `set key = value`).
//! - [`ReplicatorConf`]: `[container-replicator]` (a daemon section: its own
//!   values override `[DEFAULT]`).
//!
//! Booleans accept `true 1 yes on t y` and `false 0 no off f n`
//! (case-insensitive; an empty value is false, as in Swift); anything else
//! is an error naming the section, key and value, as are bad numbers.

pub mod check;
pub mod ini;

use std::path::{Path, PathBuf};

pub use ini::{Ini, Section};

use crate::ring::Device;
use crate::swift::hash::HashPathConfig;

/// Why a configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name} line {line}: {message}")]
    Parse {
        source_name: String,
        line: usize,
        message: String,
    },
    #[error("config section [{0}] not found")]
    MissingSection(String),
    #[error("[{section}] {key} = {value:?}: not a boolean (use true/false, yes/no, on/off, 1/0)")]
    BadBool {
        section: String,
        key: String,
        value: String,
    },
    #[error("[{section}] {key} = {value:?}: expected {expected}")]
    BadValue {
        section: String,
        key: String,
        value: String,
        expected: String,
    },
    #[error(
        "[swift-hash]: both swift_hash_path_prefix and swift_hash_path_suffix are missing or empty"
    )]
    NoHashPath,
    #[error("[swift-hash] {key}: {reason}")]
    BadHashPath { key: String, reason: String },
    #[error("storage policies: {0}")]
    Policy(String),
    #[error("rsync_module {template:?}: {reason}")]
    BadRsyncModule { template: String, reason: String },
}

/// Which kind of DB server a config is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerType {
    Container,
    Account,
}

impl ServerType {
    pub fn name(self) -> &'static str {
        match self {
            ServerType::Container => "container",
            ServerType::Account => "account",
        }
    }

    /// The kind a config is for, read as Swift's paste pipeline does: the
    /// `[app:...]` section whose `use` is `egg:swift#account` or
    /// `egg:swift#container`. `None` when no such section exists.
    pub fn detect(ini: &Ini) -> Option<ServerType> {
        let names: Vec<String> = ini
            .section_names()
            .filter(|n| n.starts_with("app:"))
            .map(str::to_string)
            .collect();
        names.iter().find_map(|n| {
            let sec = ini.raw_section(n)?;
            let (_, v) = sec.iter().find(|(k, _)| k == "use")?;
            match v.trim().rsplit('#').next()? {
                "account" => Some(ServerType::Account),
                "container" => Some(ServerType::Container),
                _ => None,
            }
        })
    }

    /// The kind of a config file: `override_kind` if given, else what the
    /// file's `[app:...]` section says, else container.
    pub fn of_file(
        path: &Path,
        override_kind: Option<ServerType>,
    ) -> Result<ServerType, ConfigError> {
        if let Some(k) = override_kind {
            return Ok(k);
        }
        Ok(Self::detect(&read_ini(path)?).unwrap_or(ServerType::Container))
    }

    /// Swift's default `bind_port`: 6201 container, 6202 account.
    pub fn default_port(self) -> u16 {
        match self {
            ServerType::Container => 6201,
            ServerType::Account => 6202,
        }
    }
}

/// Typed access to one section's values, with errors naming section + key.
/// Every option read is noted with its effective value (for `rowsync
/// config check`).
struct Reader<'a> {
    section: &'a Section,
    read: std::cell::RefCell<Vec<EffectiveOption>>,
}

/// One option as a reader took it: its effective value, and whether that
/// is the default.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveOption {
    pub key: String,
    pub value: String,
    pub defaulted: bool,
}

impl<'a> Reader<'a> {
    fn new(section: &'a Section) -> Reader<'a> {
        Reader {
            section,
            read: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Notes `key`'s effective value (the last note of a key wins).
    fn note(&self, key: &str, value: impl std::fmt::Display, defaulted: bool) {
        let mut read = self.read.borrow_mut();
        let opt = EffectiveOption {
            key: key.to_string(),
            value: value.to_string(),
            defaulted,
        };
        match read.iter_mut().find(|o| o.key == key) {
            Some(o) => *o = opt,
            None => read.push(opt),
        }
    }

    fn into_read(self) -> Vec<EffectiveOption> {
        self.read.into_inner()
    }

    fn raw(&self, key: &str) -> Option<&'a str> {
        let v = self.section.get(key);
        let known = self.read.borrow().iter().any(|o| o.key == key);
        if !known {
            match v {
                Some(v) => self.note(key, v, false),
                None => self.note(key, "(unset)", true),
            }
        }
        v
    }

    fn bad(&self, key: &str, value: &str, expected: &str) -> ConfigError {
        ConfigError::BadValue {
            section: self.section.name.clone(),
            key: key.into(),
            value: value.into(),
            expected: expected.into(),
        }
    }

    fn string(&self, key: &str, default: &str) -> String {
        let v = self.raw(key);
        self.note(key, v.unwrap_or(default), v.is_none());
        v.unwrap_or(default).to_string()
    }

    fn boolean(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        let v = match self.raw(key) {
            None => default,
            Some(v) => parse_bool(v).ok_or_else(|| ConfigError::BadBool {
                section: self.section.name.clone(),
                key: key.into(),
                value: v.into(),
            })?,
        };
        self.note(key, v, self.section.get(key).is_none());
        Ok(v)
    }

    /// A non-negative integer (`min` at least).
    fn uint(&self, key: &str, default: u64, min: u64) -> Result<u64, ConfigError> {
        let v = match self.raw(key) {
            None => default,
            Some(v) => parse_int(v)
                .and_then(|n| u64::try_from(n).ok())
                .filter(|&n| n >= min)
                .ok_or_else(|| self.bad(key, v, &format!("an integer >= {min}")))?,
        };
        self.note(key, v, self.section.get(key).is_none());
        Ok(v)
    }

    fn port(&self, key: &str, default: u16) -> Result<u16, ConfigError> {
        let v = match self.raw(key) {
            None => default,
            Some(v) => parse_int(v)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| self.bad(key, v, "a port number 0..=65535"))?,
        };
        self.note(key, v, self.section.get(key).is_none());
        Ok(v)
    }

    /// A finite float >= 0.
    fn float(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        let v = match self.raw(key) {
            None => default,
            Some(v) => parse_float(v)
                .filter(|f| *f >= 0.0)
                .ok_or_else(|| self.bad(key, v, "a non-negative number"))?,
        };
        self.note(key, v, self.section.get(key).is_none());
        Ok(v)
    }
}

/// Swift's true words (`config_true_value`) and the matching false words.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" | "" => Some(false),
        _ => None,
    }
}

/// Python's `int(value)`: optional sign, digits, `_` between digits.
fn parse_int(value: &str) -> Option<i64> {
    let v = value.trim();
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    v.replace('_', "").parse().ok()
}

/// Python's `float(value)`, finite values only.
fn parse_float(value: &str) -> Option<f64> {
    let v = value.trim();
    if v.is_empty() || v.contains('_') {
        return None;
    }
    v.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn read_ini(path: &Path) -> Result<Ini, ConfigError> {
    Ini::from_path(path)
}

// ---------------------------------------------------------------- swift.conf

/// One `[storage-policy:N]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct StoragePolicy {
    pub index: u32,
    pub name: String,
    pub aliases: Vec<String>,
    pub is_default: bool,
    pub deprecated: bool,
    pub policy_type: String,
}

/// `swift.conf`.
#[derive(Debug, Clone, PartialEq)]
pub struct SwiftConf {
    /// `swift_hash_path_prefix` as Latin-1 bytes.
    pub hash_path_prefix: Vec<u8>,
    /// `swift_hash_path_suffix` as Latin-1 bytes.
    pub hash_path_suffix: Vec<u8>,
    /// The policies in index order. Without any `[storage-policy:N]`
    /// section this is Swift's implicit `Policy-0` (default).
    pub policies: Vec<StoragePolicy>,
    /// How many `[storage-policy:N]` sections the file has.
    pub policy_sections: usize,
}

fn latin1(key: &str, s: &str) -> Result<Vec<u8>, ConfigError> {
    s.chars()
        .map(|c| {
            u8::try_from(u32::from(c)).map_err(|_| ConfigError::BadHashPath {
                key: key.into(),
                reason: format!("character {c:?} is not Latin-1"),
            })
        })
        .collect()
}

impl SwiftConf {
    pub fn from_file(path: impl AsRef<Path>) -> Result<SwiftConf, ConfigError> {
        Self::from_ini(&read_ini(path.as_ref())?)
    }

    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<SwiftConf, ConfigError> {
        Self::from_ini(&Ini::parse(text, "swift.conf")?)
    }

    pub fn from_ini(ini: &Ini) -> Result<SwiftConf, ConfigError> {
        let hash = ini.daemon_section("swift-hash").unwrap_or_default();
        let prefix = latin1(
            "swift_hash_path_prefix",
            hash.get("swift_hash_path_prefix").unwrap_or(""),
        )?;
        let suffix = latin1(
            "swift_hash_path_suffix",
            hash.get("swift_hash_path_suffix").unwrap_or(""),
        )?;
        if prefix.is_empty() && suffix.is_empty() {
            return Err(ConfigError::NoHashPath);
        }
        let mut policies: Vec<StoragePolicy> = Vec::new();
        let mut policy_sections = 0;
        for name in ini.section_names() {
            let Some(idx) = name.strip_prefix("storage-policy:") else {
                continue;
            };
            policy_sections += 1;
            let sec = ini
                .daemon_section(name)
                .ok_or_else(|| ConfigError::MissingSection(name.into()))?;
            let r = Reader::new(&sec);
            let index = parse_int(idx)
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| {
                    ConfigError::Policy(format!("invalid policy index {idx:?} in [{name}]"))
                })?;
            let policy_name = match sec.get("name") {
                Some(n) if !n.is_empty() => n.to_string(),
                _ if index == 0 => "Policy-0".to_string(),
                _ => return Err(ConfigError::Policy(format!("[{name}] has no name"))),
            };
            let mut aliases = vec![policy_name.clone()];
            for a in sec.get("aliases").unwrap_or("").split(',') {
                let a = a.trim();
                if !a.is_empty() && !aliases.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                    aliases.push(a.to_string());
                }
            }
            policies.push(StoragePolicy {
                index,
                name: policy_name,
                aliases,
                is_default: r.boolean("default", false)?,
                deprecated: r.boolean("deprecated", false)?,
                policy_type: r.string("policy_type", "replication"),
            });
        }
        validate_policies(&mut policies)?;
        Ok(SwiftConf {
            hash_path_prefix: prefix,
            hash_path_suffix: suffix,
            policies,
            policy_sections,
        })
    }

    /// The prefix / suffix for `hash_path`.
    pub fn hash_path_config(&self) -> HashPathConfig {
        HashPathConfig::new(self.hash_path_prefix.clone(), self.hash_path_suffix.clone())
    }

    /// Number of policies (at least 1: the implicit `Policy-0`). The
    /// container sender adds the three extra `sync` args when this is > 1.
    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }

    /// The default policy.
    pub fn default_policy(&self) -> &StoragePolicy {
        self.policies
            .iter()
            .find(|p| p.is_default)
            .unwrap_or(&self.policies[0])
    }

    pub fn policy(&self, index: u32) -> Option<&StoragePolicy> {
        self.policies.iter().find(|p| p.index == index)
    }
}

/// Swift's `StoragePolicyCollection` checks, and its defaulting.
fn validate_policies(policies: &mut Vec<StoragePolicy>) -> Result<(), ConfigError> {
    let err = |m: String| Err(ConfigError::Policy(m));
    policies.sort_by_key(|p| p.index);
    for w in policies.windows(2) {
        if w[0].index == w[1].index {
            return err(format!("duplicate index {}", w[0].index));
        }
    }
    let mut names: Vec<String> = Vec::new();
    for p in policies.iter() {
        for a in &p.aliases {
            if names.iter().any(|n| n.eq_ignore_ascii_case(a)) {
                return err(format!("duplicate name {a:?}"));
            }
            names.push(a.clone());
        }
        if p.is_default && p.deprecated {
            return err(format!(
                "deprecated policy {:?} cannot be the default",
                p.name
            ));
        }
    }
    if policies.iter().filter(|p| p.is_default).count() > 1 {
        return err("more than one default policy".into());
    }
    if !policies.iter().any(|p| p.index == 0) {
        if !policies.is_empty() {
            return err("a [storage-policy:0] section is required to define policies".into());
        }
        policies.push(StoragePolicy {
            index: 0,
            name: "Policy-0".into(),
            aliases: vec!["Policy-0".into()],
            is_default: false,
            deprecated: false,
            policy_type: "replication".into(),
        });
    }
    if policies.iter().all(|p| p.deprecated) {
        return err("no policy that is not deprecated".into());
    }
    if !policies.iter().any(|p| p.is_default) {
        if policies.len() > 1 {
            return err("no default policy".into());
        }
        policies[0].is_default = true;
    }
    Ok(())
}

// ------------------------------------------------------------ server section

/// `fallocate_reserve`: free space to keep, in bytes or percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FallocateReserve {
    Bytes(u64),
    Percent(f64),
}

/// The server's options (`[app:container-server]` over `[DEFAULT]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConf {
    /// Which kind of DBs the server serves.
    pub server_type: ServerType,
    pub devices: PathBuf,
    pub mount_check: bool,
    pub bind_ip: String,
    pub bind_port: u16,
    pub swift_dir: PathBuf,
    /// REPLICATE (and the other replication verbs) allowed.
    pub replication_server: bool,
    pub fallocate_reserve: FallocateReserve,
    /// Outbound call timeouts of the server itself.
    pub node_timeout: f64,
    pub conn_timeout: f64,
    pub log_level: String,
    pub log_requests: bool,
    /// rowsync extra: largest REPLICATE request body accepted, in bytes.
    pub max_body_size: u64,
    /// rowsync extra: largest whole DB file accepted over HTTP, in bytes.
    pub max_db_transfer_size: u64,
    pub db_preallocation: bool,
    pub db_query_logging: bool,
    /// The Swift middlewares of `[pipeline:main]` that rowsync serves
    /// itself (recon, healthcheck); other filters are ignored.
    pub filters: PipelineFilters,
    /// Swift's `log_statsd_*` options; `None` without `log_statsd_host`.
    pub statsd: Option<StatsdConf>,
    /// rowsync extra: `prometheus_metrics`, serve `GET /metrics`.
    pub prometheus_metrics: bool,
    /// rowsync extra: authenticated replication (`replication_secret` ...).
    pub auth: ReplicationAuthConf,
}

/// Swift's `recon` middleware (`[filter:NAME]` with `use =
/// egg:swift#recon`): its options as the filter sees them (PasteDeploy:
/// `[DEFAULT]`, then the section's own keys), kept as the raw strings
/// Swift joins paths with.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconFilter {
    /// `devices` (default `/srv/node`).
    pub devices: String,
    /// `swift_dir` (default `/etc/swift`): where the ring files are.
    pub swift_dir: String,
    /// `recon_cache_path` (default `/var/cache/swift`).
    pub recon_cache_path: String,
}

/// Swift's `healthcheck` middleware (`use = egg:swift#healthcheck`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HealthcheckFilter {
    /// `disable_path` (default empty: never disabled).
    pub disable_path: String,
}

/// The filters of `[pipeline:main]` rowsync implements.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PipelineFilters {
    pub recon: Option<ReconFilter>,
    pub healthcheck: Option<HealthcheckFilter>,
}

impl PipelineFilters {
    /// Reads `pipeline` of `[pipeline:main]` (every name but the last, the
    /// app, is a filter) and each filter's `[filter:NAME]` section, as
    /// PasteDeploy loads Swift's servers: a filter without its section is
    /// an error (Swift does not start). No `[pipeline:main]`: no filters.
    pub fn from_ini(ini: &Ini) -> Result<PipelineFilters, ConfigError> {
        let mut out = PipelineFilters::default();
        let Some(pipeline) = ini.raw_section("pipeline:main") else {
            return Ok(out);
        };
        let names: Vec<&str> = pipeline
            .iter()
            .find(|(k, _)| k == "pipeline")
            .map(|(_, v)| v.split_whitespace().collect())
            .unwrap_or_default();
        let filters = &names[..names.len().saturating_sub(1)];
        for name in filters {
            let section = format!("filter:{name}");
            let sec = ini
                .paste_section(&section)
                .ok_or(ConfigError::MissingSection(section))?;
            let get = |k: &str, default: &str| sec.get(k).unwrap_or(default).to_string();
            match filter_entry_point(&sec).as_deref() {
                Some("recon") if out.recon.is_none() => {
                    out.recon = Some(ReconFilter {
                        devices: get("devices", "/srv/node"),
                        swift_dir: get("swift_dir", "/etc/swift"),
                        recon_cache_path: get("recon_cache_path", "/var/cache/swift"),
                    });
                }
                Some("healthcheck") if out.healthcheck.is_none() => {
                    out.healthcheck = Some(HealthcheckFilter {
                        disable_path: get("disable_path", ""),
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Which of Swift's middlewares a `[filter:...]` section loads: the name
/// after `egg:swift#` in `use`, or the module of a `paste.filter_factory =
/// swift.common.middleware.NAME:filter_factory`.
fn filter_entry_point(sec: &Section) -> Option<String> {
    if let Some(u) = sec.get("use") {
        let (dist, entry) = u.trim().split_once('#')?;
        return (dist.trim() == "egg:swift").then(|| entry.trim().to_string());
    }
    let factory = sec.get("paste.filter_factory")?.trim();
    let module = factory.strip_suffix(":filter_factory")?;
    module
        .strip_prefix("swift.common.middleware.")
        .map(str::to_string)
}

/// Default `max_body_size`: 64 MiB.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 64 << 20;
/// Default `max_db_transfer_size`: 64 GiB.
pub const DEFAULT_MAX_DB_TRANSFER_SIZE: u64 = 64 << 30;

impl ServerConf {
    /// Reads a server config of the kind its `[app:...]` section names
    /// (container when none does).
    pub fn from_file(path: impl AsRef<Path>) -> Result<ServerConf, ConfigError> {
        let ini = read_ini(path.as_ref())?;
        let kind = ServerType::detect(&ini).unwrap_or(ServerType::Container);
        Self::from_ini(&ini, kind)
    }

    /// Reads a server config as the given kind.
    pub fn from_file_as(
        path: impl AsRef<Path>,
        kind: ServerType,
    ) -> Result<ServerConf, ConfigError> {
        Self::from_ini(&read_ini(path.as_ref())?, kind)
    }

    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<ServerConf, ConfigError> {
        Self::from_ini(
            &Ini::parse(text, "container-server.conf")?,
            ServerType::Container,
        )
    }

    /// The server's section: `app:<type>-server`, or else the `[app:...]`
    /// section whose `use` names the kind (the first name when neither
    /// exists).
    pub fn app_section_name(ini: &Ini, server: ServerType) -> String {
        let name = format!("app:{}-server", server.name());
        if ini.has_section(&name) {
            return name;
        }
        let egg = format!("egg:swift#{}", server.name());
        ini.section_names()
            .find(|n| {
                n.starts_with("app:")
                    && ini
                        .raw_section(n)
                        .is_some_and(|s| s.iter().any(|(k, v)| k == "use" && v.trim() == egg))
            })
            .map_or(name, str::to_string)
    }

    /// Reads `[app:<type>-server]`, or else the `[app:...]` section whose
    /// `use` names the kind; one must exist.
    pub fn from_ini(ini: &Ini, server: ServerType) -> Result<ServerConf, ConfigError> {
        let name = Self::app_section_name(ini, server);
        let sec = ini
            .paste_section(&name)
            .ok_or(ConfigError::MissingSection(name))?;
        let mut conf = Self::from_section(&sec, server)?;
        conf.filters = PipelineFilters::from_ini(ini)?;
        Ok(conf)
    }

    /// Reads the options from an already merged section.
    pub fn from_section(sec: &Section, server: ServerType) -> Result<ServerConf, ConfigError> {
        Self::from_section_traced(sec, server).map(|(c, _)| c)
    }

    /// As [`ServerConf::from_section`], with every option read and its
    /// effective value, in the order read.
    pub fn from_section_traced(
        sec: &Section,
        server: ServerType,
    ) -> Result<(ServerConf, Vec<EffectiveOption>), ConfigError> {
        let r = Reader::new(sec);
        let conf = Self::read(&r, server)?;
        Ok((conf, r.into_read()))
    }

    fn read(r: &Reader, server: ServerType) -> Result<ServerConf, ConfigError> {
        let fallocate_reserve = match r.raw("fallocate_reserve") {
            None => FallocateReserve::Percent(1.0),
            Some(v) => parse_fallocate_reserve(v).ok_or_else(|| {
                r.bad(
                    "fallocate_reserve",
                    v,
                    "bytes (e.g. 1048576) or a percent (e.g. 1%)",
                )
            })?,
        };
        r.note(
            "fallocate_reserve",
            match fallocate_reserve {
                FallocateReserve::Bytes(b) => b.to_string(),
                FallocateReserve::Percent(p) => format!("{p}%"),
            },
            r.section.get("fallocate_reserve").is_none(),
        );
        Ok(ServerConf {
            server_type: server,
            devices: r.string("devices", "/srv/node").into(),
            mount_check: r.boolean("mount_check", true)?,
            bind_ip: r.string("bind_ip", "0.0.0.0"),
            bind_port: r.port("bind_port", server.default_port())?,
            swift_dir: r.string("swift_dir", "/etc/swift").into(),
            replication_server: r.boolean("replication_server", true)?,
            fallocate_reserve,
            node_timeout: r.float("node_timeout", 3.0)?,
            conn_timeout: r.float("conn_timeout", 0.5)?,
            log_level: r.string("log_level", "INFO"),
            log_requests: r.boolean("log_requests", true)?,
            max_body_size: r.uint("max_body_size", DEFAULT_MAX_BODY_SIZE, 1)?,
            max_db_transfer_size: r.uint(
                "max_db_transfer_size",
                DEFAULT_MAX_DB_TRANSFER_SIZE,
                1,
            )?,
            db_preallocation: r.boolean("db_preallocation", false)?,
            db_query_logging: r.boolean("db_query_logging", false)?,
            statsd: StatsdConf::from_reader(r)?,
            prometheus_metrics: r.boolean("prometheus_metrics", false)?,
            auth: ReplicationAuthConf::from_reader(r)?,
            filters: PipelineFilters::default(),
        })
    }
}

/// Swift's `config_fallocate_value`: `N%` (percent) or an integer of bytes.
fn parse_fallocate_reserve(v: &str) -> Option<FallocateReserve> {
    match v.strip_suffix('%') {
        Some(p) => parse_float(p)
            .filter(|p| (0.0..=100.0).contains(p))
            .map(FallocateReserve::Percent),
        None => parse_int(v)
            .and_then(|n| u64::try_from(n).ok())
            .map(FallocateReserve::Bytes),
    }
}

// -------------------------------------------------------- replicator section

/// How a whole DB is shipped to a peer that lacks it (rowsync option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbTransfer {
    /// Swift's way: rsync to the peer's rsync module, then REPLICATE.
    Rsync,
    /// rowsync's HTTP upload.
    Http,
    /// HTTP to peers whose `sync` answer says they are rowsync servers,
    /// rsync to the others (the default).
    Auto,
}

/// The replicator's options (`[container-replicator]` over `[DEFAULT]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicatorConf {
    pub server_type: ServerType,
    pub devices: PathBuf,
    pub mount_check: bool,
    pub bind_ip: String,
    pub bind_port: u16,
    pub swift_dir: PathBuf,
    pub per_diff: usize,
    pub max_diffs: usize,
    pub concurrency: usize,
    /// Seconds between pass starts.
    pub interval: f64,
    pub databases_per_second: f64,
    pub node_timeout: f64,
    pub conn_timeout: f64,
    pub reclaim_age: f64,
    /// Template, trailing `/` stripped (see [`ReplicatorConf::rsync_module_for`]).
    pub rsync_module: String,
    pub rsync_compress: bool,
    pub handoffs_only: bool,
    /// 0 = `auto` (off).
    pub handoff_delete: u32,
    pub recon_cache_path: PathBuf,
    pub db_transfer: DbTransfer,
    pub log_level: String,
    pub db_preallocation: bool,
    pub db_query_logging: bool,
    /// Swift's `log_statsd_*` options; `None` without `log_statsd_host`.
    pub statsd: Option<StatsdConf>,
    /// rowsync extra: the secret REPLICATE requests are signed with.
    pub replication_secret: Option<Secret>,
    /// rowsync extra: `prometheus_port` (0: no `/metrics` endpoint) and
    /// `prometheus_bind_ip` of the replicator's own `/metrics`.
    pub prometheus_port: u16,
    pub prometheus_bind_ip: String,
    /// rowsync extra: seconds between two `PRAGMA quick_check` runs of a
    /// DB (the first pass after a start checks every DB; 0: never).
    pub integrity_check_interval: f64,
    /// rowsync extra: a DB unchanged since it was in sync with every
    /// (rowsync) peer is skipped, but visited at least once per this many
    /// seconds (0: every pass visits every DB, as Swift's).
    pub full_pass_interval: f64,
    /// Warnings about deprecated options (e.g. `run_pause`), to be logged.
    pub warnings: Vec<String>,
}

/// A replication secret: never printed (`Debug` and `Display` say
/// `<secret>`), compared only through HMAC.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The shortest secret accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// An address or a CIDR block (`10.0.0.5`, `10.0.0.0/24`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpBlock {
    pub fn parse(s: &str) -> Option<IpBlock> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
        };
        Some(IpBlock { addr, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// Authenticated replication, as the receiving server applies it
/// (rowsync extra; off unless `replication_secret` is set).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplicationAuthConf {
    /// `replication_secret`: signs (replicator) and verifies (server).
    pub secret: Option<Secret>,
    /// `replication_secret_secondary`: also accepted, never used to sign
    /// (for rotating the secret node by node).
    pub secondary: Option<Secret>,
    /// `replication_unsigned_from`: addresses or CIDR blocks (the Swift
    /// peers of a mixed cluster) whose unsigned REPLICATE requests are
    /// still accepted.
    pub unsigned_from: Vec<IpBlock>,
    /// `replication_signature_window`: seconds a signature stays valid
    /// either side of the receiver's clock (default 60).
    pub window: f64,
}

impl ReplicationAuthConf {
    fn secret(r: &Reader, key: &str) -> Result<Option<Secret>, ConfigError> {
        let v = r.raw(key).map(str::trim).filter(|v| !v.is_empty());
        r.note(
            key,
            if v.is_some() { "<secret>" } else { "(unset)" },
            v.is_none(),
        );
        match v {
            None => Ok(None),
            Some(v) if v.len() < Secret::MIN_LEN => Err(ConfigError::BadValue {
                section: r.section.name.clone(),
                key: key.into(),
                value: "<secret>".into(),
                expected: format!("a secret of at least {} bytes", Secret::MIN_LEN),
            }),
            Some(v) => Ok(Some(Secret::new(v.as_bytes()))),
        }
    }

    fn from_reader(r: &Reader) -> Result<ReplicationAuthConf, ConfigError> {
        let raw = r.string("replication_unsigned_from", "");
        let mut unsigned_from = Vec::new();
        for item in raw.split([',', ' ', '\n']).filter(|s| !s.trim().is_empty()) {
            unsigned_from.push(IpBlock::parse(item).ok_or_else(|| {
                r.bad(
                    "replication_unsigned_from",
                    item,
                    "IP addresses or CIDR blocks, comma-separated",
                )
            })?);
        }
        let conf = ReplicationAuthConf {
            secret: Self::secret(r, "replication_secret")?,
            secondary: Self::secret(r, "replication_secret_secondary")?,
            unsigned_from,
            window: r.float("replication_signature_window", 60.0)?,
        };
        if conf.secret.is_none() && conf.secondary.is_some() {
            return Err(r.bad(
                "replication_secret_secondary",
                "<secret>",
                "replication_secret to be set as well",
            ));
        }
        Ok(conf)
    }

    /// Is authentication on?
    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }
}

/// Where and how metrics go to statsd (Swift's `log_statsd_*` options).
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdConf {
    pub host: String,
    pub port: u16,
    /// `log_statsd_metric_prefix` (empty: none).
    pub metric_prefix: String,
    /// `log_statsd_default_sample_rate`: for calls that name no rate.
    pub default_sample_rate: f64,
    /// `log_statsd_sample_rate_factor`: multiplies every call's rate.
    pub sample_rate_factor: f64,
}

impl StatsdConf {
    /// Swift's `log_statsd_*` options of a section; `None` without
    /// `log_statsd_host`.
    fn from_reader(r: &Reader) -> Result<Option<StatsdConf>, ConfigError> {
        let Some(host) = r.raw("log_statsd_host").filter(|h| !h.trim().is_empty()) else {
            return Ok(None);
        };
        Ok(Some(StatsdConf {
            host: host.trim().to_string(),
            port: r.port("log_statsd_port", 8125)?,
            metric_prefix: r.string("log_statsd_metric_prefix", ""),
            default_sample_rate: r.float("log_statsd_default_sample_rate", 1.0)?,
            sample_rate_factor: r.float("log_statsd_sample_rate_factor", 1.0)?,
        }))
    }
}

impl ReplicatorConf {
    /// Reads `[<kind>-replicator]` of a config of the kind its `[app:...]`
    /// section names (container when none does).
    pub fn from_file(path: impl AsRef<Path>) -> Result<ReplicatorConf, ConfigError> {
        let ini = read_ini(path.as_ref())?;
        let kind = ServerType::detect(&ini).unwrap_or(ServerType::Container);
        Self::from_ini(&ini, kind)
    }

    /// Reads `[<kind>-replicator]` of a config as the given kind.
    pub fn from_file_as(
        path: impl AsRef<Path>,
        kind: ServerType,
    ) -> Result<ReplicatorConf, ConfigError> {
        Self::from_ini(&read_ini(path.as_ref())?, kind)
    }

    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<ReplicatorConf, ConfigError> {
        Self::from_ini(
            &Ini::parse(text, "container-server.conf")?,
            ServerType::Container,
        )
    }

    /// Reads `[<type>-replicator]`, which must exist.
    pub fn from_ini(ini: &Ini, server: ServerType) -> Result<ReplicatorConf, ConfigError> {
        let name = format!("{}-replicator", server.name());
        let sec = ini
            .daemon_section(&name)
            .ok_or(ConfigError::MissingSection(name))?;
        Self::from_section(&sec, server)
    }

    /// Reads the options from an already merged section.
    pub fn from_section(sec: &Section, server: ServerType) -> Result<ReplicatorConf, ConfigError> {
        Self::from_section_traced(sec, server).map(|(c, _)| c)
    }

    /// As [`ReplicatorConf::from_section`], with every option read and its
    /// effective value, in the order read.
    pub fn from_section_traced(
        sec: &Section,
        server: ServerType,
    ) -> Result<(ReplicatorConf, Vec<EffectiveOption>), ConfigError> {
        let r = Reader::new(sec);
        let conf = Self::read(&r, server)?;
        Ok((conf, r.into_read()))
    }

    fn read(r: &Reader, server: ServerType) -> Result<ReplicatorConf, ConfigError> {
        let nonempty = |k: &str| r.raw(k).filter(|v| !v.is_empty());
        let mut warnings = Vec::new();
        let type_name = server.name();

        // `int(conf.get('max_diffs') or 100)`; rowsync also maps 0 to 100.
        let max_diffs = match nonempty("max_diffs") {
            None => 100,
            Some(_) => match r.uint("max_diffs", 100, 0)? {
                0 => 100,
                n => n as usize,
            },
        };
        // `float(conf.get('interval') or conf.get('run_pause') or 30)`
        let interval = match (nonempty("interval"), nonempty("run_pause")) {
            (Some(_), _) => r.float("interval", 30.0)?,
            (None, Some(_)) => r.float("run_pause", 30.0)?,
            (None, None) => 30.0,
        };
        r.note("max_diffs", max_diffs, nonempty("max_diffs").is_none());
        r.note(
            "interval",
            interval,
            nonempty("interval").is_none() && nonempty("run_pause").is_none(),
        );
        if r.raw("run_pause").is_some() {
            warnings.push(if r.raw("interval").is_some() {
                format!(
                    "Option {type_name}-replicator/run_pause is deprecated and \
                     {type_name}-replicator/interval is already configured. You can \
                     safely remove run_pause; it is now ignored."
                )
            } else {
                format!(
                    "Option {type_name}-replicator/run_pause is deprecated. Update your \
                     configuration to use option {type_name}-replicator/interval."
                )
            });
        }
        let mut rsync_module = r
            .string("rsync_module", "")
            .trim_end_matches('/')
            .to_string();
        if rsync_module.is_empty() {
            rsync_module = format!("{{replication_ip}}::{type_name}");
        }
        check_rsync_template(&rsync_module)?;
        r.note(
            "rsync_module",
            &rsync_module,
            nonempty("rsync_module").is_none(),
        );
        let handoff_delete = match r.raw("handoff_delete") {
            None => 0,
            Some(v) if v.eq_ignore_ascii_case("auto") => 0,
            Some(v) => parse_int(v)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| r.bad("handoff_delete", v, "a non-negative integer or \"auto\""))?,
        };
        let db_transfer = match r.raw("db_transfer").map(str::to_ascii_lowercase).as_deref() {
            None | Some("auto") => DbTransfer::Auto,
            Some("rsync") => DbTransfer::Rsync,
            Some("http") => DbTransfer::Http,
            Some(_) => {
                let v = r.raw("db_transfer").unwrap_or_default();
                return Err(r.bad("db_transfer", v, "auto, rsync or http"));
            }
        };
        r.note(
            "db_transfer",
            match db_transfer {
                DbTransfer::Rsync => "rsync",
                DbTransfer::Http => "http",
                DbTransfer::Auto => "auto",
            },
            r.section.get("db_transfer").is_none(),
        );
        r.note(
            "handoff_delete",
            if handoff_delete == 0 {
                "auto".to_string()
            } else {
                handoff_delete.to_string()
            },
            r.section.get("handoff_delete").is_none(),
        );
        Ok(ReplicatorConf {
            server_type: server,
            devices: r.string("devices", "/srv/node").into(),
            mount_check: r.boolean("mount_check", true)?,
            bind_ip: r.string("bind_ip", "0.0.0.0"),
            bind_port: r.port("bind_port", server.default_port())?,
            swift_dir: r.string("swift_dir", "/etc/swift").into(),
            per_diff: r.uint("per_diff", 1000, 1)? as usize,
            max_diffs,
            concurrency: r.uint("concurrency", 8, 1)? as usize,
            interval,
            databases_per_second: r.float("databases_per_second", 50.0)?,
            node_timeout: r.float("node_timeout", 10.0)?,
            conn_timeout: r.float("conn_timeout", 0.5)?,
            reclaim_age: r.float("reclaim_age", 604_800.0)?,
            rsync_module,
            rsync_compress: r.boolean("rsync_compress", false)?,
            handoffs_only: r.boolean("handoffs_only", false)?,
            handoff_delete,
            recon_cache_path: r.string("recon_cache_path", "/var/cache/swift").into(),
            db_transfer,
            log_level: r.string("log_level", "INFO"),
            db_preallocation: r.boolean("db_preallocation", false)?,
            db_query_logging: r.boolean("db_query_logging", false)?,
            statsd: StatsdConf::from_reader(r)?,
            replication_secret: ReplicationAuthConf::secret(r, "replication_secret")?,
            prometheus_port: r.port("prometheus_port", 0)?,
            prometheus_bind_ip: r.string("prometheus_bind_ip", "127.0.0.1"),
            integrity_check_interval: r.float("integrity_check_interval", 86_400.0)?,
            full_pass_interval: r.float("full_pass_interval", 3_600.0)?,
            warnings,
        })
    }

    /// The ring file of this server type in `swift_dir`
    /// (`container.ring.gz` / `account.ring.gz`).
    pub fn ring_path(&self) -> PathBuf {
        self.swift_dir
            .join(format!("{}.ring.gz", self.server_type.name()))
    }

    /// The rsync module for `device` (Swift's `rsync_module_interpolation`).
    pub fn rsync_module_for(&self, device: &Device) -> Result<String, ConfigError> {
        rsync_module_for(&self.rsync_module, device)
    }
}

/// `ip` for rsync: an IPv6 address wrapped in `[]` (Swift's `rsync_ip`).
pub fn rsync_ip(ip: &str) -> String {
    if ip.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// Substitutes `{ip} {port} {replication_ip} {replication_port} {region}
/// {zone} {device} {meta}` in `template` (Python `str.format` rules:
/// `{{` / `}}` are literal braces; an unknown name is an error).
pub fn rsync_module_for(template: &str, device: &Device) -> Result<String, ConfigError> {
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "ip" => rsync_ip(&device.ip),
            "port" => device.port.to_string(),
            "replication_ip" => rsync_ip(&device.replication_ip),
            "replication_port" => device.replication_port.to_string(),
            "region" => device.region.to_string(),
            "zone" => device.zone.to_string(),
            "device" => device.device.clone(),
            "meta" => device.meta.clone(),
            _ => return None,
        })
    };
    let bad = |reason: String| ConfigError::BadRsyncModule {
        template: template.into(),
        reason,
    };
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(bad("unclosed '{'".into())),
                    }
                }
                let v = value(&name).ok_or_else(|| bad(format!("invalid variable {{{name}}}")))?;
                out.push_str(&v);
            }
            '}' => return Err(bad("single '}'".into())),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn check_rsync_template(template: &str) -> Result<(), ConfigError> {
    let probe = Device {
        id: 0,
        region: 1,
        zone: 1,
        ip: "127.0.0.1".into(),
        port: 1,
        replication_ip: "127.0.0.1".into(),
        replication_port: 1,
        device: "d".into(),
        weight: 1.0,
        meta: String::new(),
        extra: Default::default(),
    };
    rsync_module_for(template, &probe).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_ints() {
        assert_eq!(parse_int(" 12 "), Some(12));
        assert_eq!(parse_int("+1_000"), Some(1000));
        assert_eq!(parse_int("-3"), Some(-3));
        for bad in ["", "1.5", "_1", "1__0", "x", "1e3"] {
            assert_eq!(parse_int(bad), None, "{bad}");
        }
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert_eq!(parse_float("nan"), None);
    }

    #[test]
    fn booleans() {
        for t in ["true", "1", "YES", "On", "t", "y"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["false", "0", "no", "OFF", "f", "n", ""] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn rsync_template() {
        let mut d = Device {
            id: 3,
            region: 2,
            zone: 5,
            ip: "10.0.0.1".into(),
            port: 6201,
            replication_ip: "fe80::1".into(),
            replication_port: 6301,
            device: "sdb1".into(),
            weight: 1.0,
            meta: "m".into(),
            extra: Default::default(),
        };
        assert_eq!(
            rsync_module_for("{replication_ip}::container_{device}/", &d).unwrap(),
            "[fe80::1]::container_sdb1/"
        );
        assert_eq!(
            rsync_module_for(
                "{{x}}{ip}:{port}:{replication_port}:{region}:{zone}:{meta}",
                &d
            )
            .unwrap(),
            "{x}10.0.0.1:6201:6301:2:5:m"
        );
        d.replication_ip = "host.example".into();
        assert_eq!(
            rsync_module_for("{replication_ip}", &d).unwrap(),
            "host.example"
        );
        assert!(rsync_module_for("{nope}", &d).is_err());
        assert!(rsync_module_for("{ip", &d).is_err());
        assert!(rsync_module_for("ip}", &d).is_err());
    }
}
