//! The one way to connect to PostgreSQL: `--state`'s text (a URL or a
//! `key=value` string), read by `tokio_postgres::Config` and completed as
//! libpq completes it (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`,
//! `PGPASSWORD`, the password file, `PGSSLMODE`, `PGSSLROOTCERT`,
//! `PGCONNECT_TIMEOUT`), with the TLS its `sslmode` asks for. What the text
//! says wins over the environment.

use super::client::{Client, Error, SqlState};
use super::conninfo;
use super::passfile::{self, Wanted};
use super::tls::{self, RootCert, SslMode};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_postgres::config::{Config, Host};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long reaching a server may take before the attempt is given up
/// (and, while the run's retry time lasts, made again).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long data sent may go unacknowledged before the connection counts
/// as lost (a network cut fails a connection instead of holding its
/// caller), unless the settings give `tcp_user_timeout`.
pub const UNANSWERED_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings libpq has and `tokio_postgres::Config` does not read.
const LIBPQ_ONLY: &[&str] = &["sslmode", "sslrootcert", "passfile"];

/// Everything a connection is made from.
#[derive(Clone)]
pub struct Settings {
    pub config: Config,
    pub ssl: SslMode,
    tls: MakeRustlsConnect,
    /// Why a password file was not used, to be said once.
    pub warning: Option<String>,
}

/// Where settings the text leaves out are found: the environment, and the
/// home directory (for `~/.pgpass` and `~/.postgresql/root.crt`).
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process's own environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Settings {
    /// Reads `text` as libpq would, completed from the process's
    /// environment. The error says what is wrong, never a password.
    pub fn read(text: &str) -> Result<Settings, SettingsError> {
        Settings::read_in(text, &ProcessEnvironment)
    }

    pub fn read_in(text: &str, env: &dyn Environment) -> Result<Settings, SettingsError> {
        let (rest, libpq) = conninfo::take(text, LIBPQ_ONLY);
        let given = |key: &str| {
            libpq
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let rest = match env.var("PGPORT") {
            Some(port) if conninfo::is_url(&rest) && !conninfo::url_names_port(&rest) => {
                conninfo::url_with_port(&rest, &port)
            }
            _ => rest,
        };
        let mut config: Config = rest.parse().map_err(SettingsError::Unreadable)?;
        complete(&mut config, env)?;
        let ssl = match given("sslmode").or_else(|| env.var("PGSSLMODE")) {
            Some(mode) => SslMode::parse(&mode)?,
            None => SslMode::Prefer,
        };
        config.ssl_mode(ssl.wire());
        let root = given("sslrootcert")
            .or_else(|| env.var("PGSSLROOTCERT"))
            .map(|r| match r.as_str() {
                "system" => RootCert::System,
                _ => RootCert::File(PathBuf::from(r)),
            })
            .or_else(|| home_file(env, ".postgresql/root.crt").map(RootCert::File));
        let root = root.filter(|_| ssl != SslMode::Disable && ssl != SslMode::Prefer);
        let tls = tls::connector(ssl, root.as_ref())?;
        let passfile = given("passfile").or_else(|| env.var("PGPASSFILE"));
        let warning = password(&mut config, env, passfile);
        Ok(Settings {
            config,
            ssl,
            tls,
            warning,
        })
    }

    /// Connects once. With `prefer`, a server that refuses the connection
    /// over TLS (pg_hba.conf's `hostnossl`) is asked again without it, as
    /// libpq does.
    pub fn connect(&self) -> Result<Client, Error> {
        let connect = |config: &Config| Client::connect(config, self.tls.clone());
        match connect(&self.config) {
            Err(e)
                if self.ssl == SslMode::Prefer
                    && e.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION) =>
            {
                let mut plain = self.config.clone();
                plain.ssl_mode(SslMode::Disable.wire());
                connect(&plain).map_err(|_| e)
            }
            other => other,
        }
    }

    /// The servers, as errors name them: `host:port`, comma-separated.
    pub fn servers(&self) -> String {
        let ports = self.config.get_ports();
        let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| match host {
                Host::Tcp(name) => format!("{name}:{}", port(i)),
                Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(i)),
            })
            .collect();
        hosts.join(", ")
    }
}

/// Why connection settings cannot be used: what is wrong, never a password.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The text is neither a URL nor libpq's `key=value` settings.
    #[error("the connection settings cannot be read: {}", super::describe(.0))]
    Unreadable(#[source] tokio_postgres::Error),
    /// `PGPORT` holds something else than port numbers.
    #[error("PGPORT: \"{0}\" is not a port number")]
    Port(String),
    /// `sslmode` is none of libpq's.
    #[error("sslmode \"{0}\" is none of disable, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    /// A mode that checks the server's certificate, with nothing to check it against.
    #[error("sslmode=verify-ca and verify-full check the server's certificate against a root certificate: give sslrootcert=FILE (or PGSSLROOTCERT, or ~/.postgresql/root.crt), or sslrootcert=system")]
    NoRootCert,
    /// The root certificate file cannot be opened.
    #[error("cannot read the root certificate file \"{}\": {error}", .path.display())]
    RootCertUnreadable {
        path: PathBuf,
        #[source]
        error: rustls::pki_types::pem::Error,
    },
    /// A certificate of the root certificate file cannot be read or used.
    #[error("root certificate file \"{}\": {error}", .path.display())]
    RootCert {
        path: PathBuf,
        #[source]
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The root certificates hold none that can be used.
    #[error("no root certificate found in {0:?}")]
    NoRootFound(RootCert),
    /// rustls refused its configuration.
    #[error("{0}")]
    Tls(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Fills in what the text left out: the host, port, user, database and
/// connect timeout, from the environment, then libpq's defaults.
fn complete(config: &mut Config, env: &dyn Environment) -> Result<(), SettingsError> {
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        let hosts = env.var("PGHOST").unwrap_or_else(|| "localhost".to_owned());
        for host in hosts.split(',') {
            config.host(host);
        }
    }
    if config.get_ports().is_empty() {
        if let Some(ports) = env.var("PGPORT") {
            for port in ports.split(',') {
                let port = port
                    .parse()
                    .map_err(|_| SettingsError::Port(port.to_owned()))?;
                config.port(port);
            }
        }
    }
    if config.get_user().is_none() {
        if let Some(user) = ["PGUSER", "USER", "LOGNAME"]
            .iter()
            .find_map(|v| env.var(v))
        {
            config.user(user);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(db) = env.var("PGDATABASE") {
            config.dbname(db);
        }
    }
    if config.get_connect_timeout().is_none() {
        let seconds = env
            .var("PGCONNECT_TIMEOUT")
            .and_then(|s| s.parse::<u64>().ok());
        config.connect_timeout(
            seconds
                .filter(|s| *s > 0)
                .map_or(CONNECT_TIMEOUT, Duration::from_secs),
        );
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(UNANSWERED_TIMEOUT);
    }
    Ok(())
}

/// Sets the password, when the text gave none, from `PGPASSWORD` or else
/// the password file; says why the file was not used, if it was not.
fn password(config: &mut Config, env: &dyn Environment, file: Option<String>) -> Option<String> {
    if config.get_password().is_some() {
        return None;
    }
    if let Some(password) = env.var("PGPASSWORD") {
        config.password(password);
        return None;
    }
    let file = file
        .map(PathBuf::from)
        .or_else(|| home_file(env, ".pgpass"))?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        _ => "localhost".to_owned(),
    };
    let user = config.get_user().unwrap_or_default().to_owned();
    let wanted = Wanted {
        host: &host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        database: config.get_dbname().unwrap_or(&user),
        user: &user,
    };
    match passfile::lookup(&file, &wanted) {
        Ok(Some(password)) => {
            config.password(password);
            None
        }
        Ok(None) => None,
        Err(warning) => Some(warning.to_string()),
    }
}

/// `name` in the home directory, when it exists.
fn home_file(env: &dyn Environment, name: &str) -> Option<PathBuf> {
    let path = Path::new(&env.var("HOME")?).join(name);
    path.exists().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    impl Environment for HashMap<&str, &str> {
        fn var(&self, name: &str) -> Option<String> {
            self.get(name).map(|v| v.to_string())
        }
    }

    fn read(text: &str, env: &[(&'static str, &'static str)]) -> Settings {
        Settings::read_in(text, &env.iter().copied().collect::<HashMap<_, _>>())
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_text_wins_over_the_environment_which_fills_what_it_leaves_out() {
        let env = [
            ("PGHOST", "envhost"),
            ("PGPORT", "6000"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGPASSWORD", "envpw"),
            ("PGSSLMODE", "require"),
        ];
        let s = read("host=h user=u dbname=d password=p sslmode=disable", &env);
        assert_eq!(s.servers(), "h:6000");
        assert_eq!(s.config.get_user(), Some("u"));
        assert_eq!(s.config.get_dbname(), Some("d"));
        assert_eq!(s.config.get_password(), Some(&b"p"[..]));
        assert_eq!(s.ssl, SslMode::Disable);
        let s = read("dbname=d", &env);
        assert_eq!(s.servers(), "envhost:6000");
        assert_eq!(s.config.get_user(), Some("envuser"));
        assert_eq!(s.config.get_password(), Some(&b"envpw"[..]));
        assert_eq!(s.ssl, SslMode::Require);
        assert_eq!(s.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(s.config.get_tcp_user_timeout(), Some(&UNANSWERED_TIMEOUT));
        let s = read(
            "postgres://u@a,b/db?sslmode=verify-ca&sslrootcert=system",
            &env,
        );
        assert_eq!(s.servers(), "a:6000, b:6000");
        assert_eq!(s.ssl, SslMode::VerifyCa);
        assert_eq!(read("postgres://u@h:5433/db", &env).servers(), "h:5433");
        assert_eq!(read("postgres:///db", &[]).servers(), "localhost:5432");
    }

    #[test]
    fn settings_that_cannot_work_are_refused_without_their_password() {
        let env = HashMap::new();
        for (text, says) in [
            ("host=h sslmode=verify-full", "sslrootcert"),
            ("host=h sslmode=strict password=secret", "none of disable"),
            (
                "host=h sslrootcert=/no/such.crt sslmode=verify-ca",
                "/no/such.crt",
            ),
            ("host=h nonsense=1 password=secret", "nonsense"),
            ("postgres://u:secret@h:x/db", "port"),
        ] {
            let Err(e) = Settings::read_in(text, &env) else {
                panic!("{text} was taken")
            };
            let e = e.to_string();
            assert!(e.contains(says) && !e.contains("secret"), "{text}: {e}");
        }
    }
}
