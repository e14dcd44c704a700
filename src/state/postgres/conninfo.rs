//! The text of `--state` as libpq reads it, where `tokio_postgres::Config`
//! (which parses it) needs help: telling a `key=value` string from a file
//! name, and taking out the settings libpq has and it lacks (`sslmode`'s
//! checking modes, `sslrootcert`, `passfile`).

use percent_encoding::percent_decode_str;

/// libpq's connection keywords: a `--state` that starts with one of them
/// and `=` is a `key=value` string, not a file's name.
const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslmode",
    "sslnegotiation",
    "sslrootcert",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// Whether `text` is a URL (`postgres://` or `postgresql://`).
pub fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// Whether `text` names a PostgreSQL database: a URL, or libpq's
/// `key=value` form (`host=db port=5432 dbname=app`).
pub fn names_postgres(text: &str) -> bool {
    if is_url(text) {
        return true;
    }
    let text = text.trim_start();
    let end = text
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(text.len());
    KEYWORDS.contains(&&text[..end]) && text[end..].trim_start().starts_with('=')
}

/// `text` without the settings named `keys`, and those settings' values
/// (decoded), in the order given.
pub fn take(text: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    match is_url(text) {
        true => take_from_url(text, keys),
        false => take_from_pairs(text, keys),
    }
}

fn take_from_url(text: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = text.split_once('?') else {
        return (text.to_owned(), Vec::new());
    };
    let mut taken = Vec::new();
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode_str(key).decode_utf8_lossy();
        match keys.contains(&key.as_ref()) {
            true => {
                let value = percent_decode_str(value).decode_utf8_lossy();
                taken.push((key.into_owned(), value.into_owned()));
            }
            false => kept.push(pair),
        }
    }
    let rest = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    (rest, taken)
}

fn take_from_pairs(text: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    let mut rest = String::new();
    let mut taken = Vec::new();
    let mut at = 0;
    while let Some(pair) = next_pair(text, at) {
        match keys.contains(&pair.key) {
            true => taken.push((pair.key.to_owned(), pair.value)),
            false => rest.push_str(&text[at..pair.end]),
        }
        at = pair.end;
    }
    rest.push_str(&text[at..]);
    (rest, taken)
}

/// One `key = value` of a `key=value` string, and where it ends.
struct Pair<'a> {
    key: &'a str,
    value: String,
    end: usize,
}

/// The pair after `from`, read as libpq does: a value is quoted ('…', with
/// `\'` and `\\`) or runs to white space; a backslash escapes the next
/// character. `None` at the end, or where the text is not such a pair
/// (which the full parser then reports).
fn next_pair(text: &str, from: usize) -> Option<Pair<'_>> {
    let start = from + (text[from..].len() - text[from..].trim_start().len());
    let rest = &text[start..];
    let key_len = rest.find(|c: char| c == '=' || c.is_whitespace())?;
    let key = &rest[..key_len];
    let after_key = rest[key_len..].trim_start();
    let after_eq = after_key.strip_prefix('=')?.trim_start();
    let value_at = text.len() - after_eq.len();
    let (value, len) = value(after_eq)?;
    (!key.is_empty()).then_some(Pair {
        key,
        value,
        end: value_at + len,
    })
}

/// A value at the start of `text`: it, unescaped, and its length there.
fn value(text: &str) -> Option<(String, usize)> {
    let quoted = text.starts_with('\'');
    let mut out = String::new();
    let mut chars = text.char_indices().skip(usize::from(quoted));
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.extend(chars.next().map(|(_, c)| c)),
            '\'' if quoted => return Some((out, i + 1)),
            c if c.is_whitespace() && !quoted => return Some((out, i)),
            c => out.push(c),
        }
    }
    (!quoted).then_some((out, text.len()))
}

/// Whether a URL names a port for its host (`host:5433`); one with no host
/// takes its port from the environment anyway.
pub fn url_names_port(text: &str) -> bool {
    let Some(after) = text.split_once("://").map(|(_, rest)| rest) else {
        return false;
    };
    let authority = &after[..after.find(['/', '?']).unwrap_or(after.len())];
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    hosts.split(',').any(|host| {
        let after_bracket = host.rsplit_once(']').map_or(host, |(_, rest)| rest);
        after_bracket.contains(':')
    })
}

/// A URL whose hosts name no port, with `port` added to each of them, as
/// libpq takes `PGPORT` for them.
pub fn url_with_port(text: &str, port: &str) -> String {
    let Some((scheme, after)) = text.split_once("://") else {
        return text.to_owned();
    };
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, path) = after.split_at(end);
    let (user, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (format!("{user}@"), hosts),
        None => (String::new(), authority),
    };
    if hosts.is_empty() {
        return text.to_owned();
    }
    let hosts: Vec<String> = hosts.split(',').map(|h| format!("{h}:{port}")).collect();
    format!("{scheme}://{user}{}{path}", hosts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_strings_are_told_from_file_names() {
        for text in [
            "postgres://h/db",
            "postgresql://",
            "host=127.0.0.1 port=5433 user=postgres dbname=app",
            " dbname = app",
            "sslmode=require",
        ] {
            assert!(names_postgres(text), "{text}");
        }
        for text in ["state.db", "./host=x", "hostile=1", "host", "data/app.db"] {
            assert!(!names_postgres(text), "{text}");
        }
    }

    #[test]
    fn settings_are_taken_out_of_either_form() {
        let keys = ["sslmode", "sslrootcert"];
        let (rest, taken) = take(
            "postgres://u@h/db?sslmode=verify-full&connect_timeout=2&sslrootcert=%2Fca%20x.crt",
            &keys,
        );
        assert_eq!(rest, "postgres://u@h/db?connect_timeout=2");
        assert_eq!(
            taken,
            [
                ("sslmode".into(), "verify-full".into()),
                ("sslrootcert".into(), "/ca x.crt".into())
            ]
        );
        let (rest, _) = take("postgres://u@h/db?sslmode=require", &keys);
        assert_eq!(rest, "postgres://u@h/db");
        let (rest, taken) = take(
            "host=h sslrootcert = '/a b\\'c.crt' password='p w' sslmode=verify-ca",
            &keys,
        );
        assert_eq!(rest, "host=h password='p w'");
        assert_eq!(
            taken,
            [
                ("sslrootcert".into(), "/a b'c.crt".into()),
                ("sslmode".into(), "verify-ca".into())
            ]
        );
    }

    #[test]
    fn a_url_without_a_port_takes_one() {
        assert!(url_names_port("postgres://u:p@h:5433/db"));
        assert!(url_names_port("postgres://[::1]:5433/db"));
        assert!(!url_names_port("postgres://u:p@h/db"));
        assert!(!url_names_port("postgres://[::1]/db?port=1"));
        assert_eq!(
            url_with_port("postgres://u:p@a,b/db?x=1", "6000"),
            "postgres://u:p@a:6000,b:6000/db?x=1"
        );
        assert_eq!(url_with_port("postgres:///db", "6000"), "postgres:///db");
    }
}
