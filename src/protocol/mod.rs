//! The wire protocol: JSON lines in, one reply line out per message.
//!
//! Replies are written the way the reference harness prints JSON: `", "` and
//! `": "` separators, keys in a fixed order (`type`, `in_reply_to`, then the
//! rest), non-ASCII escaped as `\uXXXX`. See [`json`] for the formatting and
//! [`reply`] for the reply bodies.

pub mod json;
pub mod reply;

/// Maelstrom error codes used in `error` replies.
pub mod code {
    /// The message type is not one this node handles.
    pub const NOT_SUPPORTED: u16 = 10;
    /// The message (or the event in it) is malformed or lacks what is needed.
    pub const MALFORMED_REQUEST: u16 = 12;
    /// The stored documents do not allow the write (e.g. incrementing text).
    pub const PRECONDITION_FAILED: u16 = 22;
}
