//! One attempt at a connection to PostgreSQL, bounded in time: a server
//! out of reach fails it within [`CONNECT_TIMEOUT`], and a connection
//! whose packets go unanswered (a network cut) fails within
//! [`UNANSWERED_TIMEOUT`] instead of holding its caller, so that retries,
//! heartbeats and a shutdown keep to their own clocks. A URL that sets
//! either (`connect_timeout`, `tcp_user_timeout`) keeps its own.

use postgres::{Client, Config, NoTls};
use std::time::Duration;

/// How long an attempt to connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long data sent may go unacknowledged before the connection counts
/// as lost.
pub const UNANSWERED_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects once to the database `url` names.
pub fn dial(url: &str) -> Result<Client, postgres::Error> {
    config(url)?.connect(NoTls)
}

/// The settings `url` gives, with the time limits above where it sets none.
pub fn config(url: &str) -> Result<Config, postgres::Error> {
    let mut config: Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(UNANSWERED_TIMEOUT);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_bounded_in_time_unless_the_url_says_otherwise() {
        let c = config("postgres://ann@db:5432/app").unwrap();
        assert_eq!(c.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(c.get_tcp_user_timeout(), Some(&UNANSWERED_TIMEOUT));
        let c = config("postgres://ann@db/app?connect_timeout=7").unwrap();
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(7)));
        let c = config("host=db user=ann connect_timeout=1 tcp_user_timeout=2").unwrap();
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(1)));
        assert_eq!(c.get_tcp_user_timeout(), Some(&Duration::from_secs(2)));
    }
}
