//! What flows from input to the read models: events as read from the line
//! ([`event`]), numbers kept exact ([`number`]), strings that hold lone
//! surrogates ([`surrogate`]), and interned field names ([`name`]).

pub mod event;
pub mod float;
pub mod name;
pub mod number;
pub mod surrogate;
