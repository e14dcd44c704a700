//! The integration tests, one module per file beside this one, built as one
//! binary: the shared `support` module and the link are paid for once.
//! `cargo test --test integration cluster::` runs one file's tests.

mod support;

mod bounded;
mod cli;
mod cluster;
mod config_tests;
mod connections;
mod gc;
mod jsonpath_cts;
mod layout;
mod nats;
mod partitions;
mod plan_diff;
mod postgres;
mod rejections;
mod secrets;
mod shutdown;
mod state;
mod state_damage;
mod state_plan;
mod state_rebuild;
mod status_stdin;
mod stdio_cases;
mod tooling;
mod unit_counts;
mod validate;
mod values;
