//! libpq's password file (`PGPASSFILE`, else `~/.pgpass`): lines of
//! `hostname:port:database:username:password`, where `*` matches anything
//! and `\` escapes `:` and `\`; the first line that matches is used. A
//! file that its group or others may read is ignored, with a warning.

use std::path::{Path, PathBuf};

/// What a connection is to, as a line of the file is matched against it.
pub struct Wanted<'a> {
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
    pub user: &'a str,
}

/// The password `file` holds for `wanted`: `Ok(None)` when there is no
/// such file or no line matches, `Err` (a warning) when it is ignored.
pub fn lookup(file: &Path, wanted: &Wanted<'_>) -> Result<Option<String>, Ignored> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(file) else {
        return Ok(None);
    };
    let file = file.to_owned();
    if !meta.is_file() {
        return Err(Ignored::NotAFile(file));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(Ignored::Open(file));
    }
    let text =
        std::fs::read_to_string(&file).map_err(|error| Ignored::Unreadable { file, error })?;
    Ok(find(&text, wanted))
}

/// Why a password file is ignored, as libpq warns of it.
#[derive(Debug, thiserror::Error)]
pub enum Ignored {
    #[error("password file \"{}\" is not a plain file", .0.display())]
    NotAFile(PathBuf),
    #[error("password file \"{}\" has group or world access; permissions should be u=rw (0600) or less", .0.display())]
    Open(PathBuf),
    #[error("password file \"{}\": {error}", .file.display())]
    Unreadable {
        file: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

/// The password of the first line of `text` that matches `wanted`.
pub fn find(text: &str, wanted: &Wanted<'_>) -> Option<String> {
    let port = wanted.port.to_string();
    let want = [wanted.host, &port, wanted.database, wanted.user];
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(fields)
        .find(|f| {
            f.len() >= 5
                && f[..4]
                    .iter()
                    .zip(want)
                    .all(|(field, value)| field == "*" || field == value)
        })
        .map(|mut f| f.swap_remove(4))
}

/// A line's fields: split at each `:` not escaped, with the escapes taken
/// out. The password is the rest of the line, `:` and all.
fn fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.extend(chars.next()),
            ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_line_gives_the_password() {
        let text = "# a comment\n\
                    db\\:1:5432:*:*:escaped\n\
                    db:5433:*:ann:other\n\
                    db:5432:app:*:p\\:w:x\\\\y\n\
                    *:*:*:*:fallback\n";
        let wanted = |host, port, database, user| {
            find(
                text,
                &Wanted {
                    host,
                    port,
                    database,
                    user,
                },
            )
        };
        assert_eq!(wanted("db:1", 5432, "x", "y").as_deref(), Some("escaped"));
        assert_eq!(wanted("db", 5433, "app", "ann").as_deref(), Some("other"));
        assert_eq!(
            wanted("db", 5432, "app", "bob").as_deref(),
            Some("p:w:x\\y")
        );
        assert_eq!(
            wanted("db", 5434, "app", "bob").as_deref(),
            Some("fallback")
        );
        assert_eq!(
            find(
                "db:5432:app",
                &Wanted {
                    host: "db",
                    port: 5432,
                    database: "app",
                    user: "u"
                }
            ),
            None
        );
    }

    #[test]
    fn a_file_others_may_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("pgpass-test-{}", std::process::id()));
        std::fs::write(&path, "*:*:*:*:pw\n").unwrap();
        let wanted = Wanted {
            host: "h",
            port: 5432,
            database: "d",
            user: "u",
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(lookup(&path, &wanted)
            .unwrap_err()
            .to_string()
            .contains("group or world access"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup(&path, &wanted).unwrap(), Some("pw".to_owned()));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(lookup(&path, &wanted).unwrap(), None);
    }
}
