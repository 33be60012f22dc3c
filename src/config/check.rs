//! `rowsync config check`: what a Swift account or container server config
//! means to rowsync. Every option the server and the replicator read, with
//! its effective value and where it comes from (the file and line, through
//! `[DEFAULT]`, or the default); and the problems that would stop rowsync
//! or that are likely mistakes: an invalid value, or an option that is
//! neither Swift's nor rowsync's (a typo), each with its file and line.
//! Secrets are shown as `<secret>`.

use std::collections::BTreeSet;
use std::path::Path;

use super::ini::{Ini, Section, DEFAULT_SECTION};
use super::{
    ConfigError, EffectiveOption, PipelineFilters, ReplicatorConf, ServerConf, ServerType,
    SwiftConf,
};

/// Options of Swift's servers (`[DEFAULT]` / `[app:...]`) that rowsync
/// accepts and does not use (Swift 2.38's sample configs, `wsgi.py`,
/// logging and daemon options).
const SWIFT_SERVER_OPTIONS: &[&str] = &[
    "use",
    "keep_idle",
    "bind_timeout",
    "backlog",
    "user",
    "disable_fallocate",
    "workers",
    "max_clients",
    "allowed_sync_hosts",
    "allow_versions",
    "auto_create_account_prefix",
    "log_name",
    "log_facility",
    "log_address",
    "log_max_line_length",
    "log_anonymization_method",
    "log_anonymization_salt",
    "log_format",
    "log_custom_handlers",
    "log_udp_host",
    "log_udp_port",
    "log_headers",
    "statsd_emit_legacy",
    "log_statsd_port",
    "log_statsd_default_sample_rate",
    "log_statsd_sample_rate_factor",
    "log_statsd_metric_prefix",
    "eventlet_debug",
    "eventlet_tpool_num_threads",
    "nice_priority",
    "ionice_class",
    "ionice_priority",
    "stale_worker_timeout",
    "client_timeout",
    "keepalive_timeout",
    "require_proxy_protocol",
    "ring_check_interval",
    "ring_ip",
    "servers_per_port",
    "daemonize",
];

/// Options of Swift's replicator sections rowsync accepts and does not use.
const SWIFT_REPLICATOR_OPTIONS: &[&str] = &[
    "log_name",
    "log_facility",
    "log_address",
    "log_max_line_length",
    "log_custom_handlers",
    "log_udp_host",
    "log_udp_port",
    "statsd_emit_legacy",
    "log_statsd_port",
    "log_statsd_default_sample_rate",
    "log_statsd_sample_rate_factor",
    "log_statsd_metric_prefix",
    "nice_priority",
    "ionice_class",
    "ionice_priority",
    "user",
    "daemonize",
    "eventlet_debug",
    "disable_fallocate",
    "fallocate_reserve",
    "vm_test_mode",
];

/// The options of the middlewares rowsync serves itself.
const FILTER_OPTIONS: &[&str] = &[
    "use",
    "paste.filter_factory",
    "devices",
    "swift_dir",
    "recon_cache_path",
    "disable_path",
];

/// One option as rowsync takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// `default`, or `<file>:<line>` (with ` [DEFAULT]` when inherited).
    pub origin: String,
}

/// The effective options of one section rowsync reads.
#[derive(Debug, Clone, PartialEq)]
pub struct SectionReport {
    pub name: String,
    /// Which rowsync process reads it.
    pub reader: &'static str,
    pub settings: Vec<Setting>,
}

/// Something wrong, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// `<file>:<line>` when known.
    pub location: Option<String>,
    pub section: String,
    pub key: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(l) = &self.location {
            write!(f, "{l}: ")?;
        }
        write!(f, "[{}]", self.section)?;
        if let Some(k) = &self.key {
            write!(f, " {k}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What `rowsync config check` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub kind: ServerType,
    pub sections: Vec<SectionReport>,
    /// Sections rowsync does not read (other daemons' and middlewares').
    pub not_read: Vec<String>,
    /// Errors: rowsync would refuse the config, or an option is unknown.
    pub problems: Vec<Problem>,
    /// Worth knowing, not wrong.
    pub notes: Vec<String>,
}

/// Checks the config at `path` (a file or a `.conf.d` directory) as a
/// config of `kind` (else the kind its `[app:...]` section names, else
/// container). `Err` only when the file cannot be read or parsed (the
/// error names the line).
pub fn check(path: &Path, kind: Option<ServerType>) -> Result<Report, ConfigError> {
    let ini = Ini::from_path(path)?;
    let kind = kind
        .or_else(|| ServerType::detect(&ini))
        .unwrap_or(ServerType::Container);
    let mut report = Report {
        kind,
        sections: Vec::new(),
        not_read: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let app = ServerConf::app_section_name(&ini, kind);
    let repl = format!("{}-replicator", kind.name());
    let mut read_keys: BTreeSet<String> = BTreeSet::new();

    // The server.
    let mut swift_dir = None;
    match ini.paste_section(&app) {
        None => report.problems.push(Problem {
            location: None,
            section: app.clone(),
            key: None,
            message: format!(
                "missing: `rowsync server` needs an [app:...] section with use = egg:swift#{}",
                kind.name()
            ),
        }),
        Some(sec) => match ServerConf::from_section_traced(&sec, kind) {
            Ok((conf, read)) => {
                swift_dir = Some(conf.swift_dir.clone());
                read_keys.extend(read.iter().map(|o| o.key.clone()));
                report.sections.push(SectionReport {
                    name: app.clone(),
                    reader: "rowsync server",
                    settings: settings(&ini, &app, true, &read),
                });
            }
            Err(e) => report.problems.push(problem_of(&ini, &app, true, e)),
        },
    }
    if let Err(e) = PipelineFilters::from_ini(&ini) {
        report
            .problems
            .push(problem_of(&ini, "pipeline:main", true, e));
    }

    // The replicator.
    match ini.daemon_section(&repl) {
        None => report.notes.push(format!(
            "[{repl}] is missing: `rowsync replicator` would not start with this config"
        )),
        Some(sec) => match ReplicatorConf::from_section_traced(&sec, kind) {
            Ok((conf, read)) => {
                swift_dir.get_or_insert(conf.swift_dir.clone());
                read_keys.extend(read.iter().map(|o| o.key.clone()));
                report.sections.push(SectionReport {
                    name: repl.clone(),
                    reader: "rowsync replicator",
                    settings: settings(&ini, &repl, false, &read),
                });
                for w in conf.warnings {
                    report.notes.push(format!("[{repl}] {w}"));
                }
            }
            Err(e) => report.problems.push(problem_of(&ini, &repl, false, e)),
        },
    }

    // Every option the two readers consult (read from empty sections, so
    // each is read with its default, whatever the file holds).
    for (name, paste) in [(&app, true), (&repl, false)] {
        let empty = Section {
            name: name.clone(),
            values: Default::default(),
        };
        let read = if paste {
            ServerConf::from_section_traced(&empty, kind).map(|(_, r)| r)
        } else {
            ReplicatorConf::from_section_traced(&empty, kind).map(|(_, r)| r)
        };
        read_keys.extend(read.unwrap_or_default().into_iter().map(|o| o.key));
    }

    // Unknown options, section by section.
    let app_known: BTreeSet<&str> = SWIFT_SERVER_OPTIONS
        .iter()
        .copied()
        .chain(read_keys.iter().map(String::as_str))
        .collect();
    let repl_known: BTreeSet<&str> = SWIFT_REPLICATOR_OPTIONS
        .iter()
        .copied()
        .chain(read_keys.iter().map(String::as_str))
        .collect();
    let names: Vec<String> = ini.section_names().map(str::to_string).collect();
    for name in names {
        let known: BTreeSet<&str> = if name == DEFAULT_SECTION {
            app_known.union(&repl_known).copied().collect()
        } else if name == app {
            app_known.clone()
        } else if name == repl {
            repl_known.clone()
        } else if name == "pipeline:main" {
            ["pipeline"].into_iter().collect()
        } else if name.starts_with("filter:") && is_served_filter(&ini, &name) {
            FILTER_OPTIONS.iter().copied().collect()
        } else {
            report.not_read.push(name);
            continue;
        };
        for (key, _) in ini.raw_section(&name).unwrap_or(&[]) {
            let bare = key.strip_prefix("set ").map_or(key.as_str(), str::trim);
            if !known.contains(bare) {
                report.problems.push(Problem {
                    location: location(&ini, &name, key),
                    section: name.clone(),
                    key: Some(key.clone()),
                    message: "unknown option (neither a Swift 2.38 option of this section \
                              nor a rowsync one; a typo?)"
                        .into(),
                });
            }
        }
    }

    // swift.conf, which both processes need.
    if let Some(dir) = swift_dir {
        let swift_conf = dir.join("swift.conf");
        if let Err(e) = SwiftConf::from_file(&swift_conf) {
            report.problems.push(Problem {
                location: Some(swift_conf.display().to_string()),
                section: "swift-hash".into(),
                key: None,
                message: e.to_string(),
            });
        }
    }
    Ok(report)
}

/// Is `[filter:NAME]` one of the middlewares rowsync serves (recon,
/// healthcheck)?
fn is_served_filter(ini: &Ini, name: &str) -> bool {
    ini.paste_section(name)
        .as_ref()
        .and_then(super::filter_entry_point)
        .is_some_and(|e| e == "recon" || e == "healthcheck")
}

fn location(ini: &Ini, section: &str, key: &str) -> Option<String> {
    ini.location(section, key).map(|(f, l)| format!("{f}:{l}"))
}

/// Where the effective value of `key` in `section` comes from: PasteDeploy
/// sections (`paste`) take `[DEFAULT]` over their own keys unless `set`,
/// daemon sections their own keys over `[DEFAULT]`.
fn origin(ini: &Ini, section: &str, paste: bool, key: &str) -> Option<String> {
    let own = || location(ini, section, key);
    let default = || location(ini, DEFAULT_SECTION, key).map(|l| format!("{l} [DEFAULT]"));
    if paste {
        location(ini, section, &format!("set {key}"))
            .or_else(default)
            .or_else(own)
    } else {
        own().or_else(default)
    }
}

fn settings(ini: &Ini, section: &str, paste: bool, read: &[EffectiveOption]) -> Vec<Setting> {
    read.iter()
        .map(|o| Setting {
            key: o.key.clone(),
            value: o.value.clone(),
            origin: if o.defaulted {
                "default".into()
            } else {
                origin(ini, section, paste, &o.key).unwrap_or_else(|| "default".into())
            },
        })
        .collect()
}

/// A refusal of the config as a problem at the option's line.
fn problem_of(ini: &Ini, section: &str, paste: bool, e: ConfigError) -> Problem {
    let (sec, key) = match &e {
        ConfigError::BadValue { section, key, .. } | ConfigError::BadBool { section, key, .. } => {
            (section.clone(), Some(key.clone()))
        }
        ConfigError::MissingSection(s) => (s.clone(), None),
        _ => (section.to_string(), None),
    };
    let location = key
        .as_deref()
        .and_then(|k| origin(ini, &sec, paste || sec.starts_with("app:"), k));
    let message = match &e {
        ConfigError::BadValue {
            value, expected, ..
        } => format!("{value:?} is invalid: expected {expected}"),
        ConfigError::BadBool { value, .. } => {
            format!("{value:?} is not a boolean (true/false, yes/no, on/off, 1/0)")
        }
        other => other.to_string(),
    };
    Problem {
        location: location.map(|l| l.trim_end_matches(" [DEFAULT]").to_string()),
        section: sec,
        key,
        message,
    }
}

impl Report {
    /// The report as `rowsync config check` prints it.
    pub fn to_text(&self, path: &Path) -> String {
        let mut out = format!(
            "{} ({} server and replicator)\n",
            path.display(),
            self.kind.name()
        );
        for s in &self.sections {
            out.push_str(&format!("\n[{}]  (read by {})\n", s.name, s.reader));
            let width = s
                .settings
                .iter()
                .map(|o| o.key.len() + o.value.len() + 3)
                .max()
                .unwrap_or(0)
                .min(60);
            for o in &s.settings {
                let line = format!("{} = {}", o.key, o.value);
                out.push_str(&format!("  {line:<width$}  # {}\n", o.origin));
            }
        }
        if !self.not_read.is_empty() {
            let names: Vec<String> = self.not_read.iter().map(|n| format!("[{n}]")).collect();
            out.push_str(&format!("\nNot read by rowsync: {}\n", names.join(", ")));
        }
        for n in &self.notes {
            out.push_str(&format!("\nnote: {n}\n"));
        }
        if self.problems.is_empty() {
            out.push_str("\nOK: no problems found\n");
        } else {
            out.push_str(&format!("\n{} problem(s):\n", self.problems.len()));
            for p in &self.problems {
                out.push_str(&format!("  {p}\n"));
            }
        }
        out
    }
}
