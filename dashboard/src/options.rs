//! How a dashboard is configured: who may read, who may act, what it
//! shows, how often it refreshes.

use std::time::Duration;

use jobstream_producer::{Error, Result};

/// Shortest token accepted: guessing one must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

/// A dashboard's settings. Safe by default: with no authentication set,
/// the dashboard is read-only unless [`local_only`](Self::local_only) or
/// [`actions_without_auth`](Self::actions_without_auth) says otherwise.
#[derive(Clone)]
pub struct DashboardOptions {
    pub(crate) token: Option<String>,
    pub(crate) basic: Option<(String, String)>,
    pub(crate) read_only: bool,
    pub(crate) local_only: bool,
    pub(crate) open_actions: bool,
    pub(crate) public_reads: bool,
    pub(crate) hide_payloads: bool,
    pub(crate) refresh: Duration,
    pub(crate) history_step: Duration,
    pub(crate) record_history: bool,
    pub(crate) scan_cap: usize,
}

impl std::fmt::Debug for DashboardOptions {
    // Never the token or the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardOptions")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("basic", &self.basic.as_ref().map(|(u, _)| u))
            .field("read_only", &self.read_only)
            .field("local_only", &self.local_only)
            .field("open_actions", &self.open_actions)
            .field("public_reads", &self.public_reads)
            .field("hide_payloads", &self.hide_payloads)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl Default for DashboardOptions {
    fn default() -> Self {
        Self {
            token: None,
            basic: None,
            read_only: false,
            local_only: false,
            open_actions: false,
            public_reads: false,
            hide_payloads: false,
            refresh: Duration::from_secs(3),
            history_step: Duration::from_secs(10),
            record_history: true,
            scan_cap: 10_000,
        }
    }
}

impl DashboardOptions {
    /// Requires this token (`Authorization: Bearer …`, or the cookie the
    /// login page sets) to read and to act.
    ///
    /// # Errors
    ///
    /// A token shorter than 16 characters.
    pub fn token(mut self, token: impl Into<String>) -> Result<Self> {
        let token = token.into();
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(Error::Config(format!(
                "the dashboard token must be at least {MIN_TOKEN_LEN} characters \
                 (try: openssl rand -hex 24)"
            )));
        }
        // It travels in a cookie and a header: printable ASCII only.
        if !token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\'))
        {
            return Err(Error::Config(
                "the dashboard token must be printable ASCII without spaces, ';', ',', '\"' or '\\'"
                    .into(),
            ));
        }
        self.token = Some(token);
        Ok(self)
    }

    /// Requires HTTP basic authentication with this user and password
    /// (alone, or as an alternative to a token).
    ///
    /// # Errors
    ///
    /// An empty user, a user with `:`, or a password shorter than 12
    /// characters.
    pub fn basic_auth(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<Self> {
        let (user, password) = (user.into(), password.into());
        if user.is_empty() || user.contains(':') {
            return Err(Error::Config(
                "the dashboard's basic-auth user must be non-empty and without ':'".into(),
            ));
        }
        if password.chars().count() < 12 {
            return Err(Error::Config(
                "the dashboard's basic-auth password must be at least 12 characters".into(),
            ));
        }
        self.basic = Some((user, password));
        Ok(self)
    }

    /// No actions at all, whoever asks: the dashboard only reads.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// For a dashboard bound to a loopback address with no authentication:
    /// it answers only requests whose `Host` is `localhost`, `127.0.0.1`
    /// or `[::1]` (so a reverse proxy or a DNS-rebinding page cannot reach
    /// it), and allows actions to them.
    pub fn local_only(mut self) -> Self {
        self.local_only = true;
        self
    }

    /// Allows actions without the dashboard's own authentication: for a
    /// router mounted behind your app's own authentication layer. CSRF
    /// checks still apply.
    pub fn actions_without_auth(mut self) -> Self {
        self.open_actions = true;
        self
    }

    /// With a token or basic auth set, lets anyone read (actions still need
    /// authentication).
    pub fn public_reads(mut self) -> Self {
        self.public_reads = true;
        self
    }

    /// Never sends payloads or results to the browser (personal data).
    pub fn hide_payloads(mut self) -> Self {
        self.hide_payloads = true;
        self
    }

    /// How often the pages refresh, and how long the overview is cached
    /// (default 3 s; at least 500 ms).
    pub fn refresh(mut self, every: Duration) -> Self {
        self.refresh = every.max(Duration::from_millis(500));
        self
    }

    /// Does not write the queues' history samples (a Redis user without
    /// `XADD` on `PREFIX:{Q}:history`): the rate charts stay empty unless
    /// another dashboard writes them.
    pub fn without_history(mut self) -> Self {
        self.record_history = false;
        self
    }

    /// Most entries a search or a filtered page reads (default 10,000).
    pub fn scan_cap(mut self, cap: usize) -> Self {
        self.scan_cap = cap.max(100);
        self
    }

    pub(crate) fn has_auth(&self) -> bool {
        self.token.is_some() || self.basic.is_some()
    }
}
