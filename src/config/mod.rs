//! Configuration: the text of `projections.toml` read into [`raw::RawConfig`].
//!
//! This stage checks shapes only (known keys, TOML types) and reports every
//! problem with its place; [`crate::plan`] then gives the raw config its meaning.

pub mod codes;
pub mod diag;
pub mod raw;
mod read;
pub mod span;

pub use read::DEFAULT_ID_PATH;

use crate::config::diag::{Diagnostic, Kind};
use raw::RawConfig;
use toml::de::DeTable;

/// Parses configuration text. Returns `None` when the text is not valid TOML;
/// every problem found, syntax or shape, is pushed to `diags`.
pub fn parse(text: &str, diags: &mut Vec<Diagnostic>) -> Option<RawConfig> {
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            diags.push(Diagnostic::error(
                span,
                Kind::Syntax {
                    message: e.message().trim().to_owned(),
                },
            ));
        }
        return None;
    }
    let span = root.span();
    Some(read::read(root.get_ref(), span, diags))
}
