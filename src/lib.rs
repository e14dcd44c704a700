//! A configuration-driven CQRS projector.
//!
//! Read models are declared in TOML; [`load`] checks and compiles them into a
//! [`plan::Plan`] (a routing table from event type to bindings), and
//! [`apply::apply`] interprets one event against document stores:
//!
//! ```
//! use projector::store::{DocumentStore, Key, MemoryStore};
//!
//! let config = r#"
//!     [[model]]
//!     name = "user_listing"
//!     key = "$.payload.id"
//!     on.UserCreated = { put = { name = "$.payload.name" } }
//! "#;
//! let (plan, _warnings) = projector::load(config).expect("a valid config");
//! let mut stores = vec![MemoryStore::default(); plan.model_count()];
//! let event = serde_json::json!({"type": "UserCreated", "payload": {"id": "u1", "name": "Ann"}});
//! let bindings = plan.bindings(plan.event_type("UserCreated").unwrap());
//! let mut changed = Vec::new();
//! let meta = projector::engine::apply::Meta { id: "e1", event_type: "UserCreated", position: 1 };
//! projector::engine::apply::apply(bindings, &event, &meta, &mut stores, &mut changed).unwrap();
//! assert_eq!(plan.model_name(changed[0].model), "user_listing");
//! let doc = stores[0].get(&Key::new("u1")).unwrap();
//! assert_eq!(doc.get("name").unwrap().to_value(), "Ann");
//! ```
//!
//! The binary wraps this in a JSON-lines protocol on stdin and stdout
//! ([`server`]), with idempotency by event id ([`engine`]).
// Unsafe code is denied everywhere but in `prefetch`, which allows its one
// block: a processor hint with no effect on what the program computes.
#![deny(unsafe_code)]

// The flow: config → plan (compiled once); input → engine → state, with
// server running the loop; values and stores are what flows through it.
pub mod config;
pub mod plan;

pub mod cluster;
pub mod engine;
pub mod input;
pub mod server;
pub mod state;

pub mod protocol;
pub mod store;
pub mod util;
pub mod value;

use config::diag::Diagnostic;
use plan::Plan;

/// Parses and compiles configuration text: the one path `run`, `validate`
/// and `test` take. Returns the plan with its warnings, or every diagnostic
/// (errors and warnings) when there is any error.
pub fn load(text: &str) -> Result<(Plan, Vec<Diagnostic>), Vec<Diagnostic>> {
    load_with_samples(text, None)
}

/// [`load`], and, with `samples`, every binding checked against those
/// events (`validate --samples`): what they show is a warning.
pub fn load_with_samples(
    text: &str,
    samples: Option<&[plan::samples::Sample]>,
) -> Result<(Plan, Vec<Diagnostic>), Vec<Diagnostic>> {
    let (plan, diags) = compile(text, samples);
    match plan {
        Some(plan) if !diags.iter().any(Diagnostic::is_error) => Ok((plan, diags)),
        _ => Err(diags),
    }
}

/// [`load`] for serving the read models: what is wrong in the
/// configuration's `[[tests]]` does not stop it. Returns the plan with the
/// warnings about its read models, and how many errors its tests have (which
/// `validate` and `test` report).
pub fn load_to_serve(text: &str) -> Result<(Plan, Vec<Diagnostic>, usize), Vec<Diagnostic>> {
    let (plan, diags) = compile(text, None);
    let blocking = diags.iter().any(|d| d.is_error() && !d.in_tests);
    match plan {
        Some(plan) if !blocking => {
            let test_errors = diags.iter().filter(|d| d.is_error()).count();
            let warnings = diags.into_iter().filter(|d| !d.in_tests).collect();
            Ok((plan, warnings, test_errors))
        }
        _ => Err(diags),
    }
}

/// Every diagnostic, in the order of the text, and the plan, when the read
/// models compile; a configuration without errors is checked against the
/// `samples`, if any.
fn compile(
    text: &str,
    samples: Option<&[plan::samples::Sample]>,
) -> (Option<Plan>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let raw = config::parse(text, &mut diags);
    let plan = raw
        .as_ref()
        .and_then(|raw| plan::compile(raw, text, &mut diags));
    if let (Some(raw), Some(_), Some(samples)) = (&raw, &plan, samples) {
        if !diags.iter().any(Diagnostic::is_error) {
            plan::samples::check(raw, samples, &mut diags);
        }
    }
    diags.sort_by_key(|d| (d.span.start, d.severity));
    (plan, diags)
}
