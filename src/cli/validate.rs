//! `projector validate`: check configurations without running, reporting
//! every problem with its place.

use super::{
    configured_or_default, log, plural, print_diagnostics, read_config, Format, EX_CONFIG,
};
use clap::Args;
use projector::diag::SourceMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ValidateArgs {
    /// Configurations to check. Default: $PROJECTOR_CONFIG, else ./projections.toml.
    #[arg(value_name = "CONFIG")]
    configs: Vec<PathBuf>,
    /// A configuration to check, as the other subcommands name it; may be repeated.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Fail on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// Print what a diagnostic code (P0102, say) means, and check nothing.
    #[arg(long, value_name = "CODE")]
    explain: Option<String>,
    /// How to print diagnostics: `human` (file:line:col, source line and caret, on stderr) or
    /// `json` (one JSON object per file on stdout: {"file", "valid", "diagnostics": [...]}).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

pub fn validate(args: &ValidateArgs) -> ExitCode {
    if let Some(code) = &args.explain {
        return super::explain_code::print(code);
    }
    let mut failed = false;
    let mut coded = false;
    let mut configs: Vec<PathBuf> = args.configs.iter().chain(&args.config).cloned().collect();
    if configs.is_empty() {
        configs.push(configured_or_default());
    }
    for path in &configs {
        let (name, text) = match read_config(Some(path), false) {
            Ok(config) => config,
            Err(e) => {
                match args.format {
                    Format::Human => log(&format!("projector: {e}")),
                    Format::Json => {
                        let report = serde_json::json!({"file": path.display().to_string(), "valid": false, "error": e});
                        let _ = writeln!(io::stdout(), "{report}");
                    }
                }
                failed = true;
                continue;
            }
        };
        let (diags, summary) = match projector::load(&text) {
            Ok((plan, warnings)) => {
                let summary = format!(
                    "{name}: ok: {}, {}",
                    plural(plan.model_count() as u64, "read model"),
                    plural(plan.type_count() as u64, "event type")
                );
                (warnings, Some(summary))
            }
            Err(diags) => (diags, None),
        };
        let errors = diags.iter().filter(|d| d.is_error()).count();
        let warnings = diags.len() - errors;
        let valid = summary.is_some() && !(args.deny_warnings && warnings > 0);
        failed |= !valid;
        if args.format == Format::Json {
            let map = SourceMap::new(&text);
            let list: Vec<_> = diags.iter().map(|d| d.to_json(&name, &map)).collect();
            let report = serde_json::json!({"file": name, "valid": valid, "diagnostics": list});
            let _ = writeln!(io::stdout(), "{report}");
            continue;
        }
        print_diagnostics(&name, &text, &diags);
        coded |= !diags.is_empty();
        match summary {
            // A closed stdout does not change the verdict, which the exit code carries.
            Some(summary) if valid => {
                let _ = writeln!(io::stdout(), "{summary}");
            }
            _ => log(&format!("{name}: invalid: {}", counts(errors, warnings))),
        }
    }
    if failed && coded {
        log("(`projector explain-code CODE` says more about a code)");
    }
    if failed {
        ExitCode::from(EX_CONFIG)
    } else {
        ExitCode::SUCCESS
    }
}

fn counts(errors: usize, warnings: usize) -> String {
    match warnings {
        0 => plural(errors as u64, "error"),
        _ => format!(
            "{}, {}",
            plural(errors as u64, "error"),
            plural(warnings as u64, "warning")
        ),
    }
}
