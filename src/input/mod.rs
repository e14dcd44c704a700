//! Input: the lines a run reads, from where they come to what the engine
//! takes.
//!
//! A [`source::Input`] is where lines come from (stdin, a log file, a stream
//! a signal stops); [`lines`] splits them, bounded, and [`multiline`] joins
//! a message written over several; the [`reader`] thread does this ahead of
//! the engine, scanning each event line ([`scan`]) and working out what the
//! engine needs of it ([`crate::engine::digest`]). A stream is read from
//! NATS JetStream ([`nats`]), by one [`hub`] per process, over the
//! process's one [`connection`] to the broker, and [`handoff`] hands what
//! it read to the threads that apply it; what the broker does not answer is
//! a [`broker::BrokerError`].

pub mod broker;
pub mod connection;
pub mod handoff;
pub mod hub;
pub mod lines;
pub mod multiline;
pub mod nats;
pub mod reader;
pub mod scan;
pub mod source;
