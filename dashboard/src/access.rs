//! Who may read and who may act, checked before any handler runs: the
//! token (bearer header or signed login cookie), basic auth, the throttle
//! on wrong ones, the local-only rule, and CSRF checks on every POST.
//! Security headers go on every response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::session::{self, Session};
use crate::state::AppState;
use crate::throttle::{self, Kind, Peer};

/// The login cookie's name.
pub(crate) const COOKIE: &str = "jobstream_dashboard_token";

/// The header every POST carries, with [`AppState::csrf`]'s value.
pub(crate) const CSRF_HEADER: &str = "x-jobstream-csrf";

/// What the request may do, for the handlers (`api/config` reports it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access {
    pub(crate) authenticated: bool,
    pub(crate) can_read: bool,
    pub(crate) can_act: bool,
}

/// Equal, in a time that says nothing of where or whether they differ,
/// nor of their lengths: the SHA-256 digests are compared, every byte.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// Every value of cookie `name` (a browser may send several: one per
/// path it was set for).
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// What a request's credentials turned out to be.
enum Presented {
    /// No token or password (a login cookie that is not valid counts as
    /// none: it cannot be a guess at anything).
    Nothing,
    /// A valid login cookie: the throttle does not apply to it.
    Session,
    /// A token or a password, to check against the throttle first; with
    /// its kind and bytes, and whether it is right.
    Credential(Kind, Vec<u8>, bool),
}

fn presented(state: &AppState, headers: &HeaderMap, secret: Option<&[u8]>) -> Presented {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(token) = &state.options.token {
        if let Some(secret) = secret {
            let now = session::now_s();
            if cookies(headers, COOKIE)
                .take(MAX_COOKIES)
                .any(|c| session::check(secret, token, c, now) == Session::Valid)
            {
                return Presented::Session;
            }
        }
        if let Some(bearer) = auth.strip_prefix("Bearer ").map(str::trim) {
            let right = same(bearer.as_bytes(), token.as_bytes());
            return Presented::Credential(Kind::Token, bearer.as_bytes().to_vec(), right);
        }
    }
    if let Some((user, password)) = &state.options.basic
        && let Some(encoded) = auth.strip_prefix("Basic ")
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .unwrap_or_else(|_| encoded.as_bytes().to_vec());
        let right = same(&decoded, format!("{user}:{password}").as_bytes());
        return Presented::Credential(Kind::Basic, decoded, right);
    }
    Presented::Nothing
}

/// Login cookies looked at per request (a browser sends one per path it
/// was set for; more is someone stuffing the header).
const MAX_COOKIES: usize = 4;

/// Whether the request is authenticated; `Err` (429) when it presents a
/// token or password from an address whose budget of wrong ones is spent.
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    peer: Peer,
    secret: Option<&[u8]>,
) -> Result<bool, Box<Response>> {
    match presented(state, headers, secret) {
        Presented::Nothing => Ok(false),
        Presented::Session => Ok(true),
        Presented::Credential(kind, bytes, right) => checked(state, peer, kind, &bytes, right),
    }
}

/// Runs one credential check through `peer`'s budget: `Err` (429, the
/// credential not looked at) when it is spent, else whether it was right
/// (a wrong one spends the budget, logged once when that empties it;
/// never the credential).
pub(crate) fn checked(
    state: &AppState,
    peer: Peer,
    kind: Kind,
    credential: &[u8],
    right: bool,
) -> Result<bool, Box<Response>> {
    let now = Instant::now();
    let attempt = match state.throttle.begin(peer, now) {
        Ok(attempt) => attempt,
        Err(wait) => {
            let secs = wait.as_secs().max(1);
            let mut resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many wrong tokens or passwords from this address: try again in {secs} s"
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Err(Box::new(resp));
        }
    };
    let wrong = (!right).then_some((kind, credential));
    if state.throttle.end(attempt, wrong, now) {
        tracing::warn!(
            "dashboard: {} wrong tokens or passwords from {peer}; what it presents is refused \
             (429) until it waits",
            throttle::BURST
        );
    }
    Ok(right)
}

/// The host part of a `Host` header, lowercased: `host` or `host:port`
/// (`[v6]:port`), the port all digits; `None` for anything else (a
/// browser never sends `localhost:1@evil.com`).
fn host_of(authority: &str) -> Option<String> {
    let a = authority.trim().to_ascii_lowercase();
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        if !after.is_empty() && !after.starts_with(':') {
            return None;
        }
        (format!("[{h}]"), after.strip_prefix(':'))
    } else {
        match a.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (a.clone(), None),
        }
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    (port_ok && !host.is_empty()).then_some(host)
}

fn is_loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    host_of(host).is_some_and(|h| {
        h == "localhost"
            || h == "[::1]"
            || h.starts_with("127.") && h.parse::<std::net::Ipv4Addr>().is_ok()
    })
}

/// Headers a proxy adds for the client it forwards: a request carrying
/// one came through a proxy, from whoever the proxy serves.
const FORWARDED: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-real-ip",
];

/// The local-only rule: the `Host` is a loopback name (a DNS-rebinding
/// page sends its own), the peer is a loopback address when the server
/// passes it (`into_make_service_with_connect_info`, as the CLI does),
/// and no proxy says it forwards someone else. A proxy on this machine
/// that adds none of those headers and rewrites `Host` to
/// `127.0.0.1` (nginx's default) still passes: such a proxy makes the
/// dashboard as public as it is, so put a token on it.
fn is_local(req: &Request) -> bool {
    let headers = req.headers();
    let peer_ok = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_none_or(|ConnectInfo(peer)| peer.ip().to_canonical().is_loopback());
    is_loopback_host(headers) && peer_ok && !FORWARDED.iter().any(|h| headers.contains_key(*h))
}

/// A POST's CSRF checks: the custom header (a cross-site form cannot send
/// one, and a cross-site `fetch` with one needs a CORS preflight that is
/// never granted), then `Origin` and `Sec-Fetch-Site` where the browser
/// sends them.
fn csrf_problem(
    state: &AppState,
    headers: &HeaderMap,
    secret: Option<&[u8]>,
) -> Option<&'static str> {
    let sent = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes);
    let shared = secret.map(session::csrf_of);
    let known = |s: &[u8]| {
        same(s, state.csrf.as_bytes()) || shared.as_ref().is_some_and(|v| same(s, v.as_bytes()))
    };
    if !sent.is_some_and(known) {
        return Some("missing or wrong X-Jobstream-Csrf header (reload the page)");
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().starts_with("application/json"));
    if !json {
        return Some("actions take a JSON body (Content-Type: application/json)");
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return Some("cross-site request refused");
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let authority = origin.split_once("://").map_or("", |(_, a)| a);
        if origin == "null" || !authority.eq_ignore_ascii_case(host) {
            return Some("cross-origin request refused");
        }
    }
    None
}

/// A JSON error.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let login = status == StatusCode::UNAUTHORIZED;
    let body = serde_json::json!({ "error": message.into(), "login": login });
    (status, axum::Json(body)).into_response()
}

fn unauthorized(state: &AppState, message: &str) -> Response {
    let mut resp = error(StatusCode::UNAUTHORIZED, message);
    if state.options.basic.is_some() {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"jobstream dashboard\", charset=\"UTF-8\""),
        );
    }
    resp
}

/// The middleware: decides, then adds the security headers.
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    // The shared secret is read (from Redis, cached a minute) only for a
    // request that carries a login cookie, or an action of a dashboard
    // with authentication (whose CSRF value derives from it).
    let opts = &state.options;
    let has_cookie = opts.token.is_some() && cookies(req.headers(), COOKIE).next().is_some();
    let secret = if has_cookie || (opts.has_auth() && req.method() == Method::POST) {
        state.session_secret.get(&state.inspector).await
    } else {
        None
    };
    let mut resp = match check(&state, &mut req, secret.as_deref()) {
        Err(refused) => *refused,
        Ok(()) => next.run(req).await,
    };
    secure(resp.headers_mut());
    resp
}

/// Ok with the request's [`Access`] in its extensions, or the refusal.
fn check(state: &AppState, req: &mut Request, secret: Option<&[u8]>) -> Result<(), Box<Response>> {
    let opts = &state.options;
    if opts.local_only && !is_local(req) {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "this dashboard answers only to localhost (it has no token), not through a \
             proxy; start it with --token to serve it beyond",
        )));
    }
    let peer = Peer::of(
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr),
    );
    req.extensions_mut().insert(peer);
    let headers = req.headers();
    // Every path counts a wrong credential, `api/config` too: it says
    // whether the request is authenticated.
    let authed = opts.has_auth() && authenticate(state, headers, peer, secret)?;
    let access = Access {
        authenticated: authed,
        can_read: !opts.has_auth() || authed || opts.public_reads,
        can_act: !opts.read_only
            && (authed || (!opts.has_auth() && (opts.local_only || opts.open_actions))),
    };
    let path = req.uri().path().to_owned();
    let is_post = req.method() == Method::POST;
    let open = path == "/api/config" || path == "/api/login" || path == "/api/logout";
    let page = !path.starts_with("/api/");
    // With basic auth only, the page itself asks for the password (the
    // browser's own prompt); with a token, the page shows its login view.
    let challenge_page = page && opts.basic.is_some() && opts.token.is_none();
    if !open && (!page || challenge_page) {
        if !access.can_read {
            return Err(Box::new(unauthorized(
                state,
                "log in first (a token or basic auth)",
            )));
        }
        if is_post && !access.can_act {
            return Err(Box::new(if opts.read_only {
                error(StatusCode::FORBIDDEN, "this dashboard is read-only")
            } else if opts.has_auth() {
                unauthorized(state, "actions need authentication")
            } else {
                error(
                    StatusCode::FORBIDDEN,
                    "actions are off: this dashboard has no authentication and is served beyond \
                     localhost (start it with --token, or bind it to 127.0.0.1)",
                )
            }));
        }
    }
    // After the authentication: a caller without it learns only that.
    if is_post && let Some(problem) = csrf_problem(state, headers, secret) {
        return Err(Box::new(error(StatusCode::FORBIDDEN, problem)));
    }
    req.extensions_mut().insert(access);
    Ok(())
}

fn secure(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_without_ports() {
        assert_eq!(host_of("LOCALHOST:8080").as_deref(), Some("localhost"));
        assert_eq!(host_of("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(host_of("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_of("localhost:1@evil.com"), None);
        assert_eq!(host_of("localhost:"), None);
        assert_eq!(host_of("[::1]x"), None);
        let mut h = HeaderMap::new();
        for (host, ok) in [
            ("localhost:1", true),
            ("127.0.0.1:8080", true),
            ("[::1]:9", true),
            ("127.evil.com", false),
            ("localhost.evil.com", false),
            ("localhost:1@evil.com", false),
            ("127.0.0.1:80:80", false),
            ("example.com", false),
        ] {
            h.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(is_loopback_host(&h), ok, "{host}");
        }
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; jobstream_dashboard_token=xyz; b=2"),
        );
        assert_eq!(cookies(&h, COOKIE).collect::<Vec<_>>(), ["xyz"]);
        assert_eq!(cookies(&h, "c").next(), None);
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }
}
