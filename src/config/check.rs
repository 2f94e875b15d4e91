//! What every section's validation shares: the errors gathered so far (all
//! are reported at once), paths resolved against the file's directory, and
//! the readers of addresses, durations and counts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(super) struct Check<'a> {
    /// The configuration file's directory: relative paths start there.
    pub(super) base: &'a Path,
    pub(super) errors: Vec<String>,
}

impl<'a> Check<'a> {
    pub(super) fn new(base: &'a Path) -> Self {
        Self {
            base,
            errors: Vec::new(),
        }
    }

    pub(super) fn error(&mut self, message: impl Into<String>) {
        self.errors.push(message.into());
    }

    pub(super) fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// `file://relative/path` is relative to the config, like every path.
    pub(super) fn resolve_url(&self, u: &str) -> String {
        match u.strip_prefix("file://") {
            Some(rest) if !rest.starts_with('/') => {
                format!("file://{}", self.base.join(rest).display())
            }
            _ => u.to_string(),
        }
    }

    pub(super) fn addr(&mut self, field: &str, value: Option<String>, default: &str) -> SocketAddr {
        let v = value.unwrap_or_else(|| default.to_string());
        v.parse::<SocketAddr>().unwrap_or_else(|_| {
            self.error(format!(
                "{field}: {v:?} is not an address like 127.0.0.1:8080"
            ));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    pub(super) fn duration(
        &mut self,
        field: &str,
        value: Option<String>,
        default: &str,
    ) -> Duration {
        let v = value.unwrap_or_else(|| default.to_string());
        match parse_duration(&v) {
            Some(d) if !d.is_zero() => d,
            _ => {
                self.error(format!(
                    "{field}: {v:?} is not a duration like \"90s\", \"60m\", \"8h\" or \"7d\""
                ));
                // Fall back to the default so one mistake reports once.
                parse_duration(default).unwrap_or(Duration::from_secs(3600))
            }
        }
    }

    /// A count that must be at least 1; zero is reported and replaced by
    /// `default` so that later checks see a sane value.
    pub(super) fn positive<T: Copy + PartialEq + Default>(
        &mut self,
        field: &str,
        value: Option<T>,
        default: T,
    ) -> T {
        match value {
            Some(v) if v == T::default() => {
                self.error(format!("{field}: must be at least 1"));
                default
            }
            Some(v) => v,
            None => default,
        }
    }

    /// One of a few names, mapped to its value; anything else is reported.
    pub(super) fn choice<T: Copy>(
        &mut self,
        field: &str,
        value: Option<&str>,
        default: T,
        names: &[(&str, T)],
    ) -> T {
        let Some(v) = value else {
            return default;
        };
        match names.iter().find(|(n, _)| *n == v) {
            Some((_, t)) => *t,
            None => {
                let list: Vec<String> = names.iter().map(|(n, _)| format!("{n:?}")).collect();
                let list = match list.split_last() {
                    Some((last, [])) => last.clone(),
                    Some((last, rest)) if rest.len() == 1 => format!("{} or {last}", rest[0]),
                    Some((last, rest)) => format!("one of {}, {last}", rest.join(", ")),
                    None => String::new(),
                };
                self.error(format!("{field}: {v:?} is not {list}"));
                default
            }
        }
    }
}

/// Parses `"500ms"`, `"90s"`, `"60m"`, `"8h"`, `"7d"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    if unit.trim() == "ms" {
        return Some(Duration::from_millis(n));
    }
    let mult = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}
