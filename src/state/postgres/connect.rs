//! Where a PostgreSQL state is, and connecting to it: a lost connection
//! is retried with backoff for a bounded time, then reported.

use super::super::StateError;
use super::client;
use super::client::Client;
use super::client::SqlState;
use super::settings::Settings;
use crate::util::retry::Backoff;
use std::path::PathBuf;
use std::time::Duration;

/// The schema a state lives in unless `--schema` names another.
pub const DEFAULT_SCHEMA: &str = "projector";

/// How long a claim on a state lasts unless renewed: a projector that
/// dies without releasing it holds it no longer than this.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// How long a lost connection is retried before the run stops.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(30);

/// A PostgreSQL state: the database's connection settings and the schema
/// in it.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// The connection settings as `--state` gave them: a URL or a
    /// `key=value` string (see [`Settings`]); shown only through
    /// [`super::secret::redacted`].
    pub url: String,
    pub schema: String,
    pub lease: Duration,
    pub retry_for: Duration,
    /// Where events refused are kept, for a unit of work: the schema of
    /// the `rejections` table, and the unit's name.
    pub rejections: Option<(String, String)>,
}

/// Shows the settings as messages do, without their password.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &super::secret::redacted(&self.url))
            .field("schema", &self.schema)
            .field("lease", &self.lease)
            .field("retry_for", &self.retry_for)
            .field("rejections", &self.rejections)
            .finish()
    }
}

impl Target {
    /// Whether `--state` names a PostgreSQL database (a URL or libpq's
    /// `key=value` form) rather than a file.
    pub fn is_url(state: &str) -> bool {
        super::conninfo::names_postgres(state)
    }

    pub fn new(url: &str, schema: &str) -> Target {
        let seconds = |name: &str, default: Duration| {
            std::env::var(name)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .map_or(default, Duration::from_secs_f64)
        };
        Target {
            url: url.to_owned(),
            schema: schema.to_owned(),
            lease: seconds("PROJECTOR_LEASE_SECONDS", DEFAULT_LEASE),
            retry_for: seconds("PROJECTOR_RETRY_SECONDS", DEFAULT_RETRY),
            rejections: None,
        }
    }

    /// The state as messages name it: the URL without its password, and
    /// the schema.
    pub fn display(&self) -> String {
        let url = super::secret::redacted(&self.url);
        match self.schema == DEFAULT_SCHEMA {
            true => url,
            false => format!("{url} (schema {})", self.schema),
        }
    }

    /// [`Target::display`], where errors want a path.
    /// How a step lost with its connection is tried again: from 50 ms to
    /// 2 s apart, for [`Target::retry_for`].
    pub fn backoff(&self) -> Backoff {
        Backoff::new(Duration::from_millis(50), Duration::from_secs(2)).within(self.retry_for)
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.display())
    }

    /// The schema, quoted as an SQL identifier.
    pub fn schema_ident(&self) -> String {
        ident(&self.schema)
    }

    /// Refuses a schema name PostgreSQL cannot hold as it is: empty, with a
    /// NUL character, or longer than 63 bytes (which PostgreSQL would cut
    /// short without a word, to another schema's name).
    pub fn check_schema(&self) -> Result<(), StateError> {
        let reason = if self.schema.is_empty() {
            "it is empty".to_owned()
        } else if self.schema.contains('\0') {
            "it holds a NUL character".to_owned()
        } else if self.schema.len() > MAX_NAME_BYTES {
            format!(
                "it is {} bytes long, and PostgreSQL keeps names of at most {MAX_NAME_BYTES}",
                self.schema.len()
            )
        } else {
            return Ok(());
        };
        Err(StateError::Unsupported {
            path: self.path(),
            reason: format!(
                "--schema cannot be a PostgreSQL schema name: {reason}; choose another"
            ),
        })
    }

    /// The connection settings, read as libpq reads them; a password file
    /// that is ignored is said once.
    pub fn settings(&self) -> Result<Settings, StateError> {
        let settings = Settings::read(&self.url).map_err(|error| StateError::Settings {
            path: self.path(),
            error,
        })?;
        if let Some(warning) = &settings.warning {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| crate::util::log::log(&format!("warning: {warning}")));
        }
        Ok(settings)
    }

    /// Connects, retrying while the server cannot be reached (it may be
    /// restarting) for up to [`Target::retry_for`]. A server that answers
    /// with a refusal (a wrong password, TLS it will not do or a
    /// certificate that fails its check, a database that does not exist)
    /// is not asked again.
    pub fn connect(&self) -> Result<Client, StateError> {
        self.check_schema()?;
        let settings = self.settings()?;
        let mut backoff = self.backoff();
        loop {
            // A projector stopped in the middle of a transaction (SIGSTOP)
            // would hold its locks, the lease row's among them, for as long
            // as it is stopped: the server ends such a transaction after a
            // lease, so that a successor can claim the state.
            let session = settings.connect().and_then(|mut client| {
                let timeout = self.lease.as_millis().max(1000);
                client.batch_execute(&format!(
                    "SET idle_in_transaction_session_timeout = {timeout}"
                ))?;
                Ok(client)
            });
            match session {
                Ok(client) => return Ok(client),
                Err(e) if is_connection_error(&e) && backoff.sleep() => {}
                Err(error) => {
                    return Err(StateError::Connect {
                        path: self.path(),
                        servers: settings.servers(),
                        error,
                    })
                }
            }
        }
    }

    /// An error while `doing` something with this state.
    pub fn failed(&self, doing: &'static str, error: client::Error) -> StateError {
        StateError::Postgres {
            path: self.path(),
            doing,
            error,
        }
    }
}

/// What went wrong, said whole: a server's error by its message and code
/// (the error's own text is only "db error"), any other by its causes too
/// ("error connecting to server" says nothing of why).
pub fn describe(e: &client::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}: {})", db.message(), db.severity(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let said = c.to_string();
                if !text.contains(&said) {
                    text = format!("{text}: {said}");
                }
                cause = c.source();
            }
            if text.ends_with("password missing") {
                text.push_str(": the server asks for a password; give it in --state, PGPASSWORD or a password file");
            }
            text
        }
    }
}

/// `name` as a quoted SQL identifier.
/// The longest name PostgreSQL keeps whole, in bytes (`NAMEDATALEN - 1`).
pub const MAX_NAME_BYTES: usize = 63;

pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether an error means the connection is gone or the server is not
/// (yet) taking connections, as opposed to a statement that failed or a
/// server that refused the connection.
pub fn is_connection_error(e: &client::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        None => e.as_db_error().is_none() && !is_refusal(e),
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                ]
                .contains(code)
        }
    }
}

/// Whether connecting failed in a way that trying again cannot mend: the
/// TLS handshake (the server will not do TLS, or its certificate failed
/// the check), authentication without a password or with one the client
/// will not send, settings tokio-postgres refuses. Its error kinds are
/// private; their texts are what it documents of them.
fn is_refusal(e: &client::Error) -> bool {
    const REFUSALS: [&str; 4] = [
        "error performing TLS handshake",
        "authentication error",
        "invalid configuration",
        "invalid connection string",
    ];
    REFUSALS.contains(&e.to_string().as_str()) && !cut_short(e)
}

/// Whether the connection itself failed under a handshake (reset, closed
/// half-way), as opposed to what the handshake found (a certificate that
/// fails its check, which TLS reports as invalid data).
fn cut_short(e: &client::Error) -> bool {
    use std::io::ErrorKind;
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return !matches!(io.kind(), ErrorKind::InvalidData | ErrorKind::InvalidInput);
        }
        cause = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_state_without_its_password() {
        let t = Target::new("postgres://ann:secret@db:5432/app", "projector");
        assert_eq!(t.display(), "postgres://ann:***@db:5432/app");
        let t = Target::new("postgresql://postgres@127.0.0.1/test", "read");
        assert_eq!(
            t.display(),
            "postgresql://postgres@127.0.0.1/test (schema read)"
        );
        assert!(Target::is_url("postgres://x") && !Target::is_url("state.db"));
        assert!(Target::is_url("host=db dbname=app"));
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
