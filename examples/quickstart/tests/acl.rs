//! The Redis ACL users of deploy/redis/users.acl, for real: `dev/check-acl`
//! loads them into a scratch server of the version under test and runs each
//! role's work with the built binaries (producer, worker, operator, admin),
//! checking that each works and is refused what it must not do, and that a
//! worker with too few rights stops at once naming the missing right.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_acl_role_does_its_work_and_no_more() {
    // The CLI is another package: built here (a no-op when up to date), so
    // the check runs this tree's binaries, next to the quickstart's.
    let built = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "jobstream-cli"])
        .current_dir(repo_root())
        .status()
        .unwrap();
    assert!(built.success());
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_example-quickstart"))
        .parent()
        .unwrap()
        .to_owned();
    let out = Command::new("bash")
        .arg(repo_root().join("dev/check-acl"))
        .env("JOBSTREAM_BIN_DIR", &bin_dir)
        .env("JOBSTREAM_REDIS_SERVER", jobstream_testkit::server_binary())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dev/check-acl failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
