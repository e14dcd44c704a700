//! The one way the library logs: a line on stderr, `projector: ` first. A
//! stderr whose reader went away loses the line; it never stops the
//! process.

use std::io::Write;

/// Writes `projector: TEXT` on stderr.
pub fn log(text: &str) {
    let _ = writeln!(std::io::stderr(), "projector: {text}");
}
