//! A small INI reader with the rules of Python's `configparser` as Swift
//! uses it (`readconf`):
//!
//! - `[section]` headers; `key = value` or `key: value` (first `=` or `:`);
//!   keys keep their case, keys and values are stripped;
//! - whole-line comments starting with `#` or `;` (after indentation); no
//!   inline comments (`a = b # c` has value `b # c`);
//! - indented lines continue the previous value (joined with `\n`);
//! - a key twice in one section, or a section twice in one file, is an
//!   error; files read together merge their sections;
//! - `[DEFAULT]` values are seen by every section ([`Ini::daemon_section`]),
//!   or, for PasteDeploy `[app:...]` sections, override them unless the
//!   section says `set key = value` ([`Ini::paste_section`]).
//!
//! `%(name)s` interpolation is not performed (values are taken literally).

use std::collections::BTreeMap;
use std::path::Path;

use super::ConfigError;

/// The name of the defaults section.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// Parsed INI text: sections in file order, each with its keys in order.
#[derive(Debug, Clone, Default)]
pub struct Ini {
    sections: Vec<(String, Vec<(String, String)>)>,
    /// Where each option was set: (section, key) -> (file, line).
    locations: BTreeMap<(String, String), (String, usize)>,
}

/// The effective options of one section (after `[DEFAULT]` merging).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    pub name: String,
    pub values: BTreeMap<String, String>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }
}

impl Ini {
    /// Parses INI text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Ini, ConfigError> {
        let mut ini = Ini::default();
        ini.add(text, source)?;
        Ok(ini)
    }

    /// Reads a file, or every `*.conf` file (sorted, not hidden) of a
    /// directory, as Swift's `readconf` does.
    pub fn from_path(path: &Path) -> Result<Ini, ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut ini = Ini::default();
        if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(".conf") && !n.starts_with('.'))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(ConfigError::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no .conf files in directory",
                    ),
                });
            }
            for f in files {
                let text = std::fs::read_to_string(&f).map_err(|source| ConfigError::Io {
                    path: f.display().to_string(),
                    source,
                })?;
                ini.add(&text, &f.display().to_string())?;
            }
        } else {
            let text = std::fs::read_to_string(path).map_err(io)?;
            ini.add(&text, &path.display().to_string())?;
        }
        Ok(ini)
    }

    fn section_index(&mut self, name: &str) -> usize {
        match self.sections.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.sections.push((name.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        }
    }

    /// Adds one file's text (sections merge with earlier files').
    fn add(&mut self, text: &str, source: &str) -> Result<(), ConfigError> {
        let err = |line: usize, message: String| ConfigError::Parse {
            source_name: source.to_string(),
            line,
            message,
        };
        let mut seen_sections: Vec<String> = Vec::new();
        let mut cur: Option<usize> = None;
        // The option being continued: (section index, key index, indent).
        let mut cont: Option<(usize, usize, usize)> = None;
        let mut keys_in_file: Vec<(usize, String)> = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let lineno = n + 1;
            let raw = if n == 0 {
                raw.trim_start_matches('\u{feff}')
            } else {
                raw
            };
            let stripped = raw.trim();
            if stripped.starts_with('#') || stripped.starts_with(';') {
                continue;
            }
            let indent = raw.len() - raw.trim_start().len();
            if stripped.is_empty() {
                // An empty line inside a value is kept if an indented line
                // follows (trailing ones are trimmed at the end).
                if let Some((s, k, _)) = cont {
                    self.sections[s].1[k].1.push('\n');
                }
                continue;
            }
            if let Some((s, k, ind)) = cont {
                if indent > ind {
                    let v = &mut self.sections[s].1[k].1;
                    v.push('\n');
                    v.push_str(stripped);
                    continue;
                }
            }
            cont = None;
            if stripped.starts_with('[') {
                let Some(end) = stripped.rfind(']') else {
                    return Err(err(lineno, format!("bad section header {stripped:?}")));
                };
                let name = &stripped[1..end];
                if name.is_empty() {
                    return Err(err(lineno, "empty section name".into()));
                }
                if seen_sections.iter().any(|s| s == name) {
                    return Err(err(lineno, format!("section [{name}] appears twice")));
                }
                seen_sections.push(name.to_string());
                cur = Some(self.section_index(name));
                continue;
            }
            let Some(s) = cur else {
                return Err(err(
                    lineno,
                    format!("{stripped:?} comes before any [section] header"),
                ));
            };
            let Some(pos) = stripped.find(['=', ':']) else {
                return Err(err(
                    lineno,
                    format!("expected `key = value`, got {stripped:?}"),
                ));
            };
            let key = stripped[..pos].trim().to_string();
            let value = stripped[pos + 1..].trim().to_string();
            if key.is_empty() {
                return Err(err(lineno, format!("empty key in {stripped:?}")));
            }
            if keys_in_file.iter().any(|(ks, k)| *ks == s && *k == key) {
                let name = &self.sections[s].0;
                return Err(err(
                    lineno,
                    format!("key {key:?} appears twice in [{name}]"),
                ));
            }
            keys_in_file.push((s, key.clone()));
            self.locations.insert(
                (self.sections[s].0.clone(), key.clone()),
                (source.to_string(), lineno),
            );
            let opts = &mut self.sections[s].1;
            let k = match opts.iter().position(|(k, _)| *k == key) {
                Some(k) => {
                    opts[k].1 = value;
                    k
                }
                None => {
                    opts.push((key, value));
                    opts.len() - 1
                }
            };
            cont = Some((s, k, indent));
        }
        for (_, opts) in &mut self.sections {
            for (_, v) in opts.iter_mut() {
                let t = v.trim_end_matches('\n').len();
                v.truncate(t);
            }
        }
        Ok(())
    }

    /// Where `key` of `section` (its own keys, as written, e.g. `set x`)
    /// was set: `(file, line)`.
    pub fn location(&self, section: &str, key: &str) -> Option<(&str, usize)> {
        self.locations
            .get(&(section.to_string(), key.to_string()))
            .map(|(f, l)| (f.as_str(), *l))
    }

    /// Section names in order (including `DEFAULT` if present).
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().map(|(n, _)| n.as_str())
    }

    pub fn has_section(&self, name: &str) -> bool {
        self.sections.iter().any(|(n, _)| n == name)
    }

    /// A section's own keys, without `[DEFAULT]`.
    pub fn raw_section(&self, name: &str) -> Option<&[(String, String)]> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o.as_slice())
    }

    fn defaults(&self) -> &[(String, String)] {
        self.raw_section(DEFAULT_SECTION).unwrap_or(&[])
    }

    /// A section as Python's `ConfigParser.items(section)` gives it to a
    /// daemon: `[DEFAULT]` values, overridden by the section's own.
    /// `None` if the section is missing.
    pub fn daemon_section(&self, name: &str) -> Option<Section> {
        let own = self.raw_section(name)?;
        let mut values: BTreeMap<String, String> = self.defaults().iter().cloned().collect();
        values.extend(own.iter().cloned());
        Some(Section {
            name: name.to_string(),
            values,
        })
    }

    /// A PasteDeploy `[app:...]` / `[filter:...]` section as Swift's
    /// `app_factory` sees it: a key also in `[DEFAULT]` keeps the DEFAULT
    /// value unless the section sets it with `set key = value`.
    pub fn paste_section(&self, name: &str) -> Option<Section> {
        let own = self.raw_section(name)?;
        let defaults = self.defaults();
        let mut values: BTreeMap<String, String> = defaults.iter().cloned().collect();
        for (k, v) in own {
            if let Some(key) = k.strip_prefix("set ") {
                values.insert(key.trim().to_string(), v.clone());
            } else if !defaults.iter().any(|(dk, _)| dk == k) {
                values.insert(k.clone(), v.clone());
            }
        }
        Some(Section {
            name: name.to_string(),
            values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
[DEFAULT]
devices = /srv/node
bind_port = 6201
  ; indented comment

[app:container-server]
bind_port = 7000
set devices = /other
log_level = DEBUG # not a comment
[container-replicator]
bind_port: 6301
multi = one
   two

   three
";

    #[test]
    fn daemon_and_paste_semantics() {
        let ini = Ini::parse(TEXT, "t").unwrap();
        let d = ini.daemon_section("container-replicator").unwrap();
        assert_eq!(d.get("bind_port"), Some("6301"));
        assert_eq!(d.get("devices"), Some("/srv/node"));
        assert_eq!(d.get("multi"), Some("one\ntwo\n\nthree"));
        let a = ini.paste_section("app:container-server").unwrap();
        assert_eq!(a.get("bind_port"), Some("6201"));
        assert_eq!(a.get("devices"), Some("/other"));
        assert_eq!(a.get("log_level"), Some("DEBUG # not a comment"));
        assert!(ini.daemon_section("nope").is_none());
    }

    #[test]
    fn parse_errors_name_the_line() {
        for (text, line) in [
            ("a = b\n", 1),
            ("[s]\na = b\na = c\n", 3),
            ("[s]\n[s]\n", 2),
            ("[s]\nnovalue\n", 2),
            ("[s\n", 1),
        ] {
            match Ini::parse(text, "x.conf") {
                Err(ConfigError::Parse { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
