//! A throwaway PostgreSQL server for tests: `initdb` into a temporary
//! directory, started with `pg_ctl` on a free port of 127.0.0.1 (its unix
//! socket in the same directory), stopped and removed when dropped.
//!
//! It uses the server binaries of the machine: Debian keeps them in
//! `/usr/lib/postgresql/VERSION/bin` (not on `PATH`); `$PG_BIN_DIR`, or
//! `initdb` on `PATH` (Homebrew, other distributions), serve elsewhere.
//! `initdb` refuses to run as root: as root, every server command runs as
//! the `postgres` user (which Debian's package creates) or else `nobody`,
//! through `runuser`, and the directory is handed to that user.

use std::path::PathBuf;
use std::process::Command;

const INSTALL_HINT: &str = "install PostgreSQL's server: `apt-get install -y postgresql` \
     (Debian, Ubuntu; `bash dev/test` does it), `brew install postgresql` (macOS), or point \
     PG_BIN_DIR at the directory holding initdb and pg_ctl";

/// A PostgreSQL server on 127.0.0.1, stopped and removed when dropped.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The user the server runs as, when we are root; `None`: ourselves.
    run_as: Option<String>,
}

impl Postgres {
    /// Initialises and starts a server; panics with the reason (and the
    /// server's log) when it cannot.
    pub fn start() -> Self {
        let bin = bin_dir().unwrap_or_else(|| panic!("no PostgreSQL server found; {INSTALL_HINT}"));
        let run_as = if is_root() {
            Some(unprivileged_user())
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!("jobstream-pg-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(dir.join("sock")).expect("create the server's directory");
        let mut pg = Self {
            bin,
            dir,
            port: 0,
            run_as,
        };
        if let Some(user) = &pg.run_as {
            let status = Command::new("chown")
                .args(["-R", user])
                .arg(&pg.dir)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown {user} {}", pg.dir.display());
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
        );
        // A free port can be taken before the server binds it: try again.
        for attempt in 1..=3 {
            pg.port = jobstream::testkit::free_port();
            // The database is thrown away after the test and never crashes
            // (only Redis and the workers do): no need to wait for fsync.
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                pg.port,
                pg.dir.join("sock").display()
            );
            let log = pg.dir.join("server.log").display().to_string();
            let started = pg.try_run(
                "pg_ctl",
                &[
                    "-D",
                    &pg.data(),
                    "-l",
                    &log,
                    "-o",
                    &options,
                    "-w",
                    "-t",
                    "30",
                    "start",
                ],
            );
            if started.is_ok() {
                return pg;
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if attempt == 3 || !text.contains("could not bind") {
                panic!("PostgreSQL did not start: {started:?}\n{text}");
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` (trust auth: no
    /// password).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        if let Err(e) = self.try_run(tool, args) {
            panic!("{e}");
        }
    }

    /// Runs a server tool (as the unprivileged user when we are root), in
    /// the server's directory: that user may not enter ours.
    fn try_run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.port != 0 {
            // Immediate: the data is thrown away anyway.
            let _ = self.try_run(
                "pg_ctl",
                &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where `initdb` and `pg_ctl` are: `$PG_BIN_DIR`, the newest
/// `/usr/lib/postgresql/*/bin` (Debian), or the directory of `initdb` on
/// `PATH`.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin);
    debian.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        })
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `postgres` when that user exists (Debian's package makes it), else
/// `nobody`.
fn unprivileged_user() -> String {
    let exists = |user: &str| {
        Command::new("id")
            .arg("-u")
            .arg(user)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    ["postgres", "nobody"]
        .into_iter()
        .find(|u| exists(u))
        .unwrap_or_else(|| panic!("running as root and there is no `postgres` or `nobody` user to run PostgreSQL as (initdb refuses root)"))
        .to_owned()
}
