//! `projector explain-code CODE` (and `validate --explain CODE`): what a
//! diagnostic code means.

use super::{log, EX_USAGE};
use clap::Args;
use std::io::{self, Write};
use std::process::ExitCode;

#[derive(Args)]
pub struct ExplainCodeArgs {
    /// A diagnostic code, as `validate` prints it: P0102.
    #[arg(value_name = "CODE")]
    code: String,
}

pub fn explain_code(args: &ExplainCodeArgs) -> ExitCode {
    print(&args.code)
}

/// Prints what `code` means; a code that is not one is a usage error.
pub fn print(code: &str) -> ExitCode {
    match projector::config::codes::explain(code) {
        Some((title, text)) => {
            let code = code.to_ascii_uppercase();
            let _ = writeln!(io::stdout(), "{code}: {title}\n\n{}", wrap(text, 78));
            ExitCode::SUCCESS
        }
        None => {
            let known: Vec<&str> = projector::config::codes::CODES
                .iter()
                .map(|(c, ..)| *c)
                .collect();
            log(&format!(
                "projector: {code} is not a diagnostic code; the codes are {}",
                known.join(", ")
            ));
            ExitCode::from(EX_USAGE)
        }
    }
}

/// `text` broken into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split(' ') {
        if line > 0 && line + 1 + word.chars().count() > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.chars().count();
    }
    out
}
