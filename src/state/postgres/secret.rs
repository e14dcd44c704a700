//! Connection settings as they may be shown: every password masked.
//!
//! A password may come in a URL's user information
//! (`postgres://user:PASSWORD@host/db`), in its query
//! (`?password=PASSWORD`), or in libpq's `key=value` form
//! (`password=PASSWORD` or `password='PASS WORD'`). Whatever shows a
//! connection (logs, errors, plans, suggested commands) shows it through
//! [`redacted`].

/// What a password is shown as.
const MASK: &str = "***";

/// `settings` with every password replaced by `***`.
pub fn redacted(settings: &str) -> String {
    match settings.find("://") {
        Some(scheme) => url(settings, scheme + 3),
        None => key_values(settings),
    }
}

/// A URL: the user information's password and the query's.
fn url(text: &str, authority: usize) -> String {
    let end = text[authority..]
        .find(['/', '?'])
        .map_or(text.len(), |i| authority + i);
    let mut out = String::from(&text[..authority]);
    match text[authority..end].rfind('@') {
        Some(at) => {
            let info = &text[authority..authority + at];
            match info.find(':') {
                Some(colon) => {
                    out.push_str(&info[..colon + 1]);
                    out.push_str(MASK);
                }
                None => out.push_str(info),
            }
            out.push_str(&text[authority + at..end]);
        }
        None => out.push_str(&text[authority..end]),
    }
    let rest = &text[end..];
    match rest.find('?') {
        Some(q) => {
            out.push_str(&rest[..q + 1]);
            let query: Vec<String> = rest[q + 1..]
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}={MASK}")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&query.join("&"));
        }
        None => out.push_str(rest),
    }
    out
}

/// libpq's `key=value` form: the value of `password`, quoted or not.
fn key_values(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = find_key(rest, "password") {
        out.push_str(&rest[..at]);
        let after = rest[at + "password".len()..].trim_start();
        let Some(value) = after.strip_prefix('=') else {
            out.push_str("password");
            rest = &rest[at + "password".len()..];
            continue;
        };
        out.push_str("password=");
        out.push_str(MASK);
        rest = skip_value(value.trim_start());
    }
    out.push_str(rest);
    out
}

/// Where `key` starts as a key of its own (at the start or after white
/// space, followed by `=`).
fn find_key(text: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(key) {
        let at = from + i;
        let starts = at == 0 || text[..at].ends_with(char::is_whitespace);
        let follows = text[at + key.len()..].trim_start().starts_with('=');
        if starts && follows {
            return Some(at);
        }
        from = at + key.len();
    }
    None
}

/// What follows a value: a quoted one ends at its closing quote (`\'` and
/// `\\` escaped), a bare one at white space.
fn skip_value(value: &str) -> &str {
    if let Some(quoted) = value.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '\'') => return &quoted[i + 1..],
                _ => {}
            }
        }
        return "";
    }
    let end = value.find(char::is_whitespace).unwrap_or(value.len());
    &value[end..]
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn every_password_is_masked_and_nothing_else_changes() {
        for (given, shown) in [
            ("postgres://u:pw@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgres://u:p@w:d@h/db", "postgres://u:***@h/db"),
            (
                "postgresql://u@h/db?password=pw&sslmode=require",
                "postgresql://u@h/db?password=***&sslmode=require",
            ),
            (
                "postgres://h/db?sslmode=require&PASSWORD=pw",
                "postgres://h/db?sslmode=require&PASSWORD=***",
            ),
            ("postgres://u:pw@h", "postgres://u:***@h"),
            ("postgres://u@h:5432/db", "postgres://u@h:5432/db"),
            (
                "host=h password=pw dbname=db",
                "host=h password=*** dbname=db",
            ),
            (
                "host=h password = 'p w\\'x' dbname=db",
                "host=h password=*** dbname=db",
            ),
            ("password=pw", "password=***"),
            ("host=h mypassword=x", "host=h mypassword=x"),
            ("state.db", "state.db"),
        ] {
            assert_eq!(redacted(given), shown, "{given}");
        }
    }
}
