//! A plain HTTP/1.1 GET for tests of the worker's and the exporter's
//! listeners (`/metrics`, `/livez`, `/readyz`): no client crate needed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A free address on 127.0.0.1 (bound, then released).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free port")
}

/// `GET path` on `addr`, `Connection: close`: (status, body), or None when
/// nothing listens there or the reply is not HTTP.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    Some((status, out.split_once("\r\n\r\n")?.1.to_owned()))
}

/// `GET path`, retried every 25 ms for up to 5 s while nothing listens
/// yet (a listener that is starting).
///
/// # Panics
///
/// When nothing answers within 5 s.
pub fn http_get_when_up(addr: SocketAddr, path: &str) -> (u16, String) {
    for _ in 0..200 {
        if let Some(reply) = http_get(addr, path) {
            return reply;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing answers GET {path} on {addr}");
}
