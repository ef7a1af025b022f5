//! Redis settings that lose jobs: an evicting `maxmemory-policy`, AOF off,
//! an `appendfsync` weaker than the deployment wants. Read with `CONFIG GET`;
//! a server that refuses `CONFIG` (renamed away on managed Redis, or an ACL
//! without `config|get`) gives a note to check by hand, never an error.
//!
//! `jobstream check` prints these; a worker can log them once at start:
//!
//! ```no_run
//! # async fn demo(redis: &jobstream_core::Redis) -> jobstream_core::Result<()> {
//! use jobstream_core::safety::{Fsync, safety_warnings};
//! for w in safety_warnings(redis, Fsync::Everysec).await? {
//!     tracing::warn!("{w}");
//! }
//! # Ok(()) }
//! ```

use serde::Serialize;

use crate::connection::Redis;
use crate::error::{Error, RedisFailure, Result};
use crate::reply;

/// How often the AOF is fsynced (`appendfsync`), weakest first, so
/// `actual < expected` means "weaker than wanted".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// `no`: the OS decides when writes reach the disk (typically within
    /// 30 s); a machine crash loses what was written since.
    No,
    /// `everysec`: a machine crash loses up to about the last second.
    Everysec,
    /// `always`: every write is on disk before Redis replies.
    Always,
}

impl Fsync {
    /// The `appendfsync` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Fsync::No => "no",
            Fsync::Everysec => "everysec",
            Fsync::Always => "always",
        }
    }
}

impl std::fmt::Display for Fsync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Fsync {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "no" => Ok(Fsync::No),
            "everysec" => Ok(Fsync::Everysec),
            "always" => Ok(Fsync::Always),
            other => Err(format!(
                "{other:?} is not an appendfsync level (always, everysec, no)"
            )),
        }
    }
}

/// The server settings that decide whether jobs survive memory pressure and
/// restarts, and what is wrong with them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ServerSafety {
    /// `maxmemory-policy`, if it could be read.
    pub maxmemory_policy: Option<String>,
    /// `maxmemory` in bytes (0 = no limit), if it could be read.
    pub maxmemory: Option<u64>,
    /// `appendonly`, if it could be read.
    pub appendonly: Option<bool>,
    /// `appendfsync`, if it could be read (as the server spells it).
    pub appendfsync: Option<String>,
    /// `save` (RDB snapshot schedule; empty = no snapshots), if it could be
    /// read.
    pub save: Option<String>,
    /// Settings that can lose jobs, one sentence each.
    pub warnings: Vec<String>,
    /// Set when the configuration could not be read: what happened and that
    /// persistence must be checked by hand. Not a warning about the server.
    pub note: Option<String>,
}

/// The parameters read, one `CONFIG GET` each (Redis before 7.0 takes one
/// pattern per call).
const PARAMS: [&str; 5] = [
    "maxmemory-policy",
    "maxmemory",
    "appendonly",
    "appendfsync",
    "save",
];

impl ServerSafety {
    /// Reads the configuration of `redis` and judges it against
    /// `expect_fsync`, the weakest `appendfsync` the caller accepts.
    ///
    /// A `CONFIG` the server refuses (unknown command, `NOPERM`, any error
    /// reply) sets [`ServerSafety::note`] and returns `Ok`; only a server
    /// that cannot be reached is an `Err`.
    pub async fn read(redis: &Redis, expect_fsync: Fsync) -> Result<Self> {
        const OP: &str = "CONFIG GET";
        let mut pipe = redis::pipe();
        // `ignore_errors`: a refused CONFIG is a reply per command, and the
        // note quotes the first one instead of the whole pipeline's.
        pipe.ignore_errors();
        for p in PARAMS {
            pipe.cmd("CONFIG").arg("GET").arg(p);
        }
        let mut conn = redis.shared();
        let replies: Vec<redis::Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| redis.error(OP, e))?;
        let mut config = Vec::new();
        for v in replies {
            if let redis::Value::ServerError(e) = v {
                return match Error::redis(OP, e.into()) {
                    Error::Redis {
                        kind:
                            RedisFailure::Server
                            | RedisFailure::Protocol
                            | RedisFailure::NoPermission
                            | RedisFailure::Unsupported,
                        message,
                        ..
                    } => Ok(Self::unreadable(&message)),
                    other => Err(other),
                };
            }
            match reply::info_map(OP, v) {
                Ok(pairs) => {
                    for (name, value) in pairs {
                        if let Ok(value) = reply::string(OP, value) {
                            config.push((name, value));
                        }
                    }
                }
                Err(e) => return Ok(Self::unreadable(&e.to_string())),
            }
        }
        Ok(Self::judge(&config, expect_fsync))
    }

    fn unreadable(why: &str) -> Self {
        Self {
            note: Some(format!(
                "could not read the server's configuration ({why}); check persistence by hand: \
                 maxmemory-policy noeviction, appendonly yes, appendfsync everysec or always"
            )),
            ..Self::default()
        }
    }

    /// Judges configuration values (`name`, `value` pairs as `CONFIG GET`
    /// returns them) against `expect_fsync`.
    pub fn judge(config: &[(String, String)], expect_fsync: Fsync) -> Self {
        let get = |name: &str| {
            config
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let mut s = Self {
            maxmemory_policy: get("maxmemory-policy"),
            maxmemory: get("maxmemory").and_then(|v| v.parse().ok()),
            appendonly: get("appendonly").map(|v| v.eq_ignore_ascii_case("yes")),
            appendfsync: get("appendfsync"),
            save: get("save"),
            ..Self::default()
        };
        let missing: Vec<&str> = [
            ("maxmemory-policy", s.maxmemory_policy.is_none()),
            ("appendonly", s.appendonly.is_none()),
            ("appendfsync", s.appendfsync.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, missing)| missing.then_some(name))
        .collect();
        if !missing.is_empty() {
            s.note = Self::unreadable(&format!("no value for {}", missing.join(", "))).note;
        }

        if let Some(policy) = s.maxmemory_policy.as_deref()
            && policy != "noeviction"
        {
            let limit = match s.maxmemory {
                Some(0) => " (maxmemory is 0 now: eviction starts once a limit is set)",
                _ => "",
            };
            let which = if policy.starts_with("volatile-") {
                "keys with a TTL; jobstream sets none, but nothing stops a change of \
                 policy or a TTL set by hand from exposing queue keys"
            } else {
                "any key, queue keys included: jobs vanish without a trace"
            };
            s.warnings.push(format!(
                "maxmemory-policy is {policy}: when memory is full Redis evicts {which}{limit}; \
                 set maxmemory-policy noeviction (writes then fail loudly instead)"
            ));
        }
        match s.appendonly {
            Some(false) => {
                let since = match s.save.as_deref() {
                    Some("") => "every job (RDB snapshots are off too)",
                    _ => "every job enqueued or moved since the last RDB snapshot",
                };
                s.warnings.push(format!(
                    "AOF is off (appendonly no): a Redis restart loses {since}; \
                     set appendonly yes"
                ));
            }
            Some(true) => match s.appendfsync.as_deref().map(str::parse::<Fsync>) {
                Some(Ok(actual)) if actual < expect_fsync => {
                    let loss = match actual {
                        Fsync::No => {
                            "the OS decides when the AOF reaches the disk (typically every 30 s): \
                             a machine crash or power loss loses the jobs written since"
                        }
                        _ => "a machine crash or power loss can lose the last second of jobs",
                    };
                    s.warnings.push(format!(
                        "appendfsync is {actual}, weaker than the expected {expect_fsync}: {loss}; \
                         set appendfsync {expect_fsync}"
                    ));
                }
                Some(Err(_)) => {
                    s.note = Self::unreadable(&format!(
                        "unknown appendfsync value {:?}",
                        s.appendfsync.as_deref().unwrap_or_default()
                    ))
                    .note;
                }
                _ => {}
            },
            None => {}
        }
        s
    }

    /// The warnings, then the note if any: what a worker logs at start.
    pub fn messages(&self) -> Vec<String> {
        self.warnings.iter().chain(&self.note).cloned().collect()
    }
}

/// Warnings about Redis settings that can lose jobs, for `redis`, judged
/// against `expect_fsync` (the weakest `appendfsync` accepted; `Everysec`
/// is the usual choice). Empty when all is well.
///
/// Each message is one sentence that names the setting and the fix. When
/// the server refuses `CONFIG` (managed Redis renames it; an ACL may deny
/// it), the list holds one note instead, "could not read the server's
/// configuration (…); check persistence by hand", and the call still
/// succeeds. `Err` only when Redis cannot be reached. Meant to be logged
/// once at start, at `warn`; [`ServerSafety::read`] gives the values too.
pub async fn safety_warnings(redis: &Redis, expect_fsync: Fsync) -> Result<Vec<String>> {
    Ok(ServerSafety::read(redis, expect_fsync).await?.messages())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn safe() -> Vec<(String, String)> {
        config(&[
            ("maxmemory-policy", "noeviction"),
            ("maxmemory", "0"),
            ("appendonly", "yes"),
            ("appendfsync", "everysec"),
            ("save", ""),
        ])
    }

    #[test]
    fn fsync_levels_order_from_weakest_to_strongest() {
        assert!(Fsync::No < Fsync::Everysec && Fsync::Everysec < Fsync::Always);
        assert_eq!("EverySec".parse::<Fsync>(), Ok(Fsync::Everysec));
        assert!("sometimes".parse::<Fsync>().is_err());
    }

    #[test]
    fn a_safe_server_has_no_warnings_until_more_is_expected() {
        let s = ServerSafety::judge(&safe(), Fsync::Everysec);
        assert!(s.warnings.is_empty() && s.note.is_none(), "{s:?}");
        let s = ServerSafety::judge(&safe(), Fsync::Always);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("appendfsync is everysec, weaker than the expected always"));
    }

    #[test]
    fn eviction_and_aof_off_warn_and_fsync_is_moot_without_aof() {
        let mut c = safe();
        c[0].1 = "allkeys-lru".into();
        c[2].1 = "no".into();
        c[3].1 = "no".into();
        let s = ServerSafety::judge(&c, Fsync::Always);
        assert_eq!(s.warnings.len(), 2, "{s:?}");
        assert!(s.warnings[0].starts_with("maxmemory-policy is allkeys-lru"));
        assert!(s.warnings[1].starts_with("AOF is off"));
        assert!(s.warnings[1].contains("RDB snapshots are off too"));
    }

    #[test]
    fn missing_values_give_a_note() {
        let s = ServerSafety::judge(&config(&[("maxmemory-policy", "noeviction")]), Fsync::No);
        assert!(s.warnings.is_empty());
        let note = s.note.unwrap_or_default();
        assert!(
            note.contains("no value for appendonly, appendfsync"),
            "{note}"
        );
        assert!(note.contains("check persistence by hand"));
    }
}
