//! What every command shares: the error type (Redis errors name the server,
//! never its password), tables, the known-queue check, confirmations.

use std::io::{BufRead, IsTerminal, Write};

use comfy_table::{Table, presets};
use jobstream_producer::inspect::Inspector;

/// A command's failure: exit status 1, printed as `error: …`.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A message for people.
    Msg(String),
    /// An error from Redis or the library: printed after the server it
    /// came from (credentials left out).
    Lib(jobstream_producer::Error),
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError::Msg(s)
    }
}

impl From<&str> for CliError {
    fn from(s: &str) -> Self {
        CliError::Msg(s.to_owned())
    }
}

impl From<jobstream_producer::Error> for CliError {
    fn from(e: jobstream_producer::Error) -> Self {
        CliError::Lib(e)
    }
}

impl CliError {
    /// The line to print, naming `server` (already redacted) for errors
    /// that came from Redis.
    pub(crate) fn render(&self, server: &str) -> String {
        match self {
            CliError::Msg(m) => m.clone(),
            CliError::Lib(e) => {
                let text = e.to_string();
                if e.redis_failure().is_some() && !text.contains(server) {
                    format!("{server}: {text}")
                } else {
                    text
                }
            }
        }
    }
}

/// A command's result.
pub(crate) type CliResult<T> = Result<T, CliError>;

/// A table with `headers` (the same names as the JSON keys), no borders.
pub(crate) fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_header(headers.iter().copied());
    t
}

/// A JSON value as a table cell: strings bare (control characters
/// escaped: a hostile job id or error must not drive the terminal), null
/// empty.
pub(crate) fn cell(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => printable(s),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| cell(Some(i)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// Rows of JSON objects as a table of `columns` (keys of the objects).
pub(crate) fn table_of(columns: &[&str], rows: &[serde_json::Value]) -> Table {
    let mut t = table(columns);
    for row in rows {
        t.add_row(columns.iter().map(|c| cell(row.get(*c))));
    }
    t
}

/// Fails with `unknown queue "X" (known: a, b)` unless `queue` is in the
/// known-queues registry.
pub(crate) async fn require_queue(inspector: &Inspector, queue: &str) -> CliResult<()> {
    let known = inspector.queues().await?;
    if known.iter().any(|q| q == queue) {
        return Ok(());
    }
    let list = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    Err(CliError::Msg(format!(
        "unknown queue {queue:?} (known: {list})"
    )))
}

/// Asks for confirmation of a destructive action on `queue`: the operator
/// types the queue name. `yes` skips the question; without a terminal on
/// stdin (and without `yes`) it refuses.
pub(crate) fn confirm(action: &str, queue: &str, yes: bool) -> CliResult<()> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::Msg(format!(
            "refusing to {action} without confirmation: stdin is not a terminal; add --yes"
        )));
    }
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "This will {action}. Type the queue name ({queue}) to confirm: "
    );
    let _ = err.flush();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Msg(format!("cannot read the confirmation: {e}")))?;
    if line.trim() == queue {
        Ok(())
    } else {
        Err(CliError::Msg("not confirmed: nothing was changed".into()))
    }
}

/// `s` with control characters escaped (`\u{1b}`), for a terminal.
pub(crate) fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
