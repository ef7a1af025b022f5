//! Redis Sentinel: finding the current master, and finding it again after
//! a failover.
//!
//! URL: `redis+sentinel://[[user]:password@]host:port[,host:port…]/MASTER[/DB]`
//! (`rediss+sentinel://` for TLS to the Redis servers). The credentials and
//! the database are the Redis servers'; sentinels are reached in plain TCP,
//! without credentials unless `?sentinel_password=…` (and
//! `sentinel_username=…`) are given. Each sentinel is asked in turn
//! (`SENTINEL get-master-addr-by-name MASTER`) and the first answer wins,
//! as the Sentinel client spec says; the master's `ROLE` is then checked, so
//! a sentinel with a stale view is not believed.

use std::time::Duration;

use crate::connection::redact_url;
use crate::error::{Error, RedisFailure, Result};

/// A parsed `redis+sentinel://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// The sentinels, `host:port`, in the order given.
    pub sentinels: Vec<String>,
    /// The master's name, as the sentinels know it.
    pub master: String,
    /// The database index on the Redis servers.
    pub db: i64,
    /// Credentials for the Redis servers (`user:password@`, percent-encoded
    /// as in the URL).
    userinfo: String,
    /// Credentials for the sentinels.
    sentinel_userinfo: String,
    /// TLS to the Redis servers (`rediss+sentinel://`).
    pub tls: bool,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("db", &self.db)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Whether `url` names Sentinels rather than one server.
pub fn is_sentinel_url(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    scheme.eq_ignore_ascii_case("redis+sentinel") || scheme.eq_ignore_ascii_case("rediss+sentinel")
}

impl SentinelUrl {
    /// Parses a `redis+sentinel://` URL; the error never shows a password.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| {
            Err(Error::Config(format!(
                "invalid Sentinel URL {}: {why}",
                redact_url(url)
            )))
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return bad("no scheme");
        };
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "redis+sentinel" => false,
            "rediss+sentinel" => true,
            _ => return bad("the scheme is not redis+sentinel or rediss+sentinel"),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (u.to_owned(), r),
            None => (String::new(), rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let sentinels: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.contains(':') {
                    h.to_owned()
                } else {
                    format!("{h}:26379")
                }
            })
            .collect();
        if sentinels.is_empty() {
            return bad("no sentinel host");
        }
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let Some(master) = parts.next() else {
            return bad("no master name (…/MASTER)");
        };
        let db = match parts.next() {
            None => 0,
            Some(d) => match d.parse::<i64>() {
                Ok(n) if n >= 0 => n,
                _ => return bad("the database is not a number"),
            },
        };
        if parts.next().is_some() {
            return bad("extra path after /MASTER/DB");
        }
        let (mut s_user, mut s_pass) = (String::new(), String::new());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sentinel_username", v)) => s_user = v.to_owned(),
                Some(("sentinel_password", v)) => s_pass = v.to_owned(),
                _ => return bad("unknown query parameter (sentinel_username, sentinel_password)"),
            }
        }
        let sentinel_userinfo = if s_pass.is_empty() && s_user.is_empty() {
            String::new()
        } else {
            format!("{s_user}:{s_pass}")
        };
        Ok(Self {
            sentinels,
            master: master.to_owned(),
            db,
            userinfo,
            sentinel_userinfo,
            tls,
        })
    }

    /// The URL of the Redis server at `addr` (`host:port`), with this URL's
    /// credentials, database and TLS.
    pub fn server_url(&self, addr: &str) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let at = if self.userinfo.is_empty() {
            String::new()
        } else {
            format!("{}@", self.userinfo)
        };
        format!("{scheme}://{at}{addr}/{}", self.db)
    }

    fn sentinel_url(&self, addr: &str) -> String {
        let at = if self.sentinel_userinfo.is_empty() {
            String::new()
        } else {
            format!("{}@", self.sentinel_userinfo)
        };
        format!("redis://{at}{addr}")
    }

    /// The current master's `host:port`, asking each sentinel in turn
    /// (blocking; for opening, before any runtime is needed).
    pub fn resolve_blocking(&self, timeout: Duration) -> Result<String> {
        let mut errors = Vec::new();
        for s in &self.sentinels {
            let attempt = || -> redis::RedisResult<Option<String>> {
                let client = redis::Client::open(self.sentinel_url(s))?;
                let mut conn = client.get_connection_with_timeout(timeout)?;
                conn.set_read_timeout(Some(timeout))?;
                let addr: Option<(String, String)> = redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.master)
                    .query(&mut conn)?;
                Ok(addr.map(|(h, p)| join(&h, &p)))
            };
            match attempt() {
                Ok(Some(addr)) => return Ok(addr),
                Ok(None) => errors.push(format!("{s}: does not know master {:?}", self.master)),
                Err(e) => errors.push(format!("{s}: {e}")),
            }
        }
        Err(self.unresolved(errors))
    }

    /// The current master's `host:port`: the first sentinel's answer whose
    /// server says `ROLE` master.
    pub async fn resolve(&self, timeout: Duration) -> Result<String> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let mut errors = Vec::new();
        for s in &self.sentinels {
            let asked = async {
                let client = redis::Client::open(self.sentinel_url(s))?;
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                let addr: Option<(String, String)> = redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.master)
                    .query_async(&mut conn)
                    .await?;
                redis::RedisResult::Ok(addr.map(|(h, p)| join(&h, &p)))
            };
            match asked.await {
                Ok(Some(addr)) => match self.is_master(&addr, &config).await {
                    Ok(true) => return Ok(addr),
                    Ok(false) => {
                        errors.push(format!("{s}: names {addr}, which is not a master (yet)"))
                    }
                    Err(e) => errors.push(format!("{s}: names {addr}, unreachable: {e}")),
                },
                Ok(None) => errors.push(format!("{s}: does not know master {:?}", self.master)),
                Err(e) => errors.push(format!("{s}: {e}")),
            }
        }
        Err(self.unresolved(errors))
    }

    /// `ROLE` of the server at `addr` is `master`. Only reachability and the
    /// role are checked: credentials are the caller's business (plain
    /// `redis://`, so a TLS-only server answers through the caller's TLS).
    async fn is_master(
        &self,
        addr: &str,
        config: &redis::AsyncConnectionConfig,
    ) -> redis::RedisResult<bool> {
        if self.tls {
            // The role check would need the caller's TLS options: trust
            // the sentinel (the connection's own errors will tell).
            return Ok(true);
        }
        let client = redis::Client::open(self.server_url(addr))?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(config)
            .await?;
        let role: Vec<redis::Value> = match redis::cmd("ROLE").query_async(&mut conn).await {
            Ok(role) => role,
            // ROLE is an admin command: a least-privilege user may not run
            // it. Then the sentinel is trusted (a stale answer shows as
            // READONLY errors, which ask the sentinels again).
            Err(e) if e.code() == Some("NOPERM") => return Ok(true),
            Err(e) => return Err(e),
        };
        Ok(
            matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master")
                || matches!(role.first(), Some(redis::Value::SimpleString(r)) if r == "master"),
        )
    }

    fn unresolved(&self, errors: Vec<String>) -> Error {
        Error::Redis {
            op: "SENTINEL get-master-addr-by-name",
            kind: RedisFailure::Connection,
            message: format!(
                "no sentinel named the master {:?}: {}",
                self.master,
                errors.join("; ")
            ),
        }
    }
}

/// `host:port`, with an IPv6 host in brackets.
fn join(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_credentials_db_and_defaults() {
        let u =
            SentinelUrl::parse("redis+sentinel://:secret@s1:26379,s2,s3:26380/mymaster/2").unwrap();
        assert_eq!(u.sentinels, ["s1:26379", "s2:26379", "s3:26380"]);
        assert_eq!((u.master.as_str(), u.db, u.tls), ("mymaster", 2, false));
        assert_eq!(
            u.server_url("10.0.0.5:6379"),
            "redis://:secret@10.0.0.5:6379/2"
        );
        let t = SentinelUrl::parse("rediss+sentinel://u:p@s1/m?sentinel_password=x").unwrap();
        assert_eq!(t.server_url("h:1"), "rediss://u:p@h:1/0");
        assert_eq!(t.sentinel_url("s1:26379"), "redis://:x@s1:26379");
        for bad in [
            "redis+sentinel://s1",
            "redis+sentinel:///m",
            "redis+sentinel://s1/m/x",
            "redis+sentinel://s1/m/0/extra",
            "redis+sentinel://s1/m?foo=1",
            "redis://s1/m",
        ] {
            let e = SentinelUrl::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("secret"), "{e}");
        }
        let e = SentinelUrl::parse("redis+sentinel://:secret@s1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
        assert!(is_sentinel_url("Redis+Sentinel://x/m") && !is_sentinel_url("redis://x"));
    }
}
