//! `projector validate`: check configurations without running, reporting
//! every problem with its place.

use super::{
    configured_or_default, log, plural, print_diagnostics, read_config, Format, EX_CONFIG,
};
use clap::Args;
use projector::config::diag::SourceMap;
use projector::plan::samples::Sample;
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
    /// Also check every binding against the events in this log (JSON lines, as `run` reads
    /// them): paths no sample carries, values an operation cannot use, event types without samples.
    #[arg(long, value_name = "LOG")]
    samples: Option<PathBuf>,
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
    let samples = match &args.samples {
        None => None,
        Some(path) => match read_samples(path) {
            Ok(samples) => Some(samples),
            Err(e) => {
                log(&format!(
                    "projector: cannot read the samples {}: {e}",
                    path.display()
                ));
                return ExitCode::from(EX_CONFIG);
            }
        },
    };
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
        let (diags, summary) = match projector::load_with_samples(&text, samples.as_deref()) {
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

/// The events of a log: each line's event, from an event message (an
/// envelope or a bare body) or a bare event object.
fn read_samples(path: &std::path::Path) -> io::Result<Vec<Sample>> {
    let text = std::fs::read_to_string(path)?;
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Ok(serde_json::Value::Object(mut message)) = serde_json::from_str(line) else {
            continue;
        };
        if !message.contains_key("type") {
            match message.remove("body") {
                Some(serde_json::Value::Object(body)) => message = body,
                _ => continue,
            }
        }
        let event = match message.get("type").and_then(serde_json::Value::as_str) {
            Some("event") => message.remove("event"),
            Some(_) if message.contains_key("payload") => Some(serde_json::Value::Object(message)),
            _ => None,
        };
        if let Some(event @ serde_json::Value::Object(_)) = event {
            samples.push(Sample { line: i + 1, event });
        }
    }
    Ok(samples)
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
