//! Reply bodies, written field by field in protocol order: `type`,
//! `in_reply_to`, then the fields of that reply in the order they are added.

use super::json;
use crate::value::event::Raw;
use serde_json::Value;

pub struct Reply<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> Reply<'o> {
    /// Starts `{"type": ty, "in_reply_to": msg_id}`; a message without a
    /// `msg_id` is answered with `"in_reply_to": null`.
    pub fn start(out: &'o mut Vec<u8>, ty: &str, msg_id: Option<&Raw<'_>>) -> Self {
        out.extend_from_slice(b"{\"type\": ");
        name(out, ty);
        out.extend_from_slice(b", \"in_reply_to\": ");
        json::raw(out, msg_id.unwrap_or(&Raw::Null));
        Reply { out }
    }

    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        self.out.extend_from_slice(b", ");
        name(self.out, key);
        self.out.extend_from_slice(b": ");
        self.out
    }

    pub fn str(mut self, key: &str, value: &str) -> Self {
        json::string(self.key(key), value);
        self
    }

    pub fn value(mut self, key: &str, value: &Value) -> Self {
        json::value(self.key(key), value);
        self
    }

    pub fn number(mut self, key: &str, n: u64) -> Self {
        crate::value::float::unsigned(self.key(key), n);
        self
    }

    pub fn strings<'s>(mut self, key: &str, items: impl IntoIterator<Item = &'s str>) -> Self {
        let out = self.key(key);
        out.push(b'[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            json::string(out, item);
        }
        out.push(b']');
        self
    }

    /// A list of items already written as JSON.
    pub fn raw_list<'s>(mut self, key: &str, items: impl IntoIterator<Item = &'s [u8]>) -> Self {
        let out = self.key(key);
        out.push(b'[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(item);
        }
        out.push(b']');
        self
    }

    /// A field whose value the caller writes as JSON text.
    pub fn with(mut self, key: &str, write: impl FnOnce(&mut Vec<u8>)) -> Self {
        write(self.key(key));
        self
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// A protocol name (a message type or a field), which never needs escaping.
fn name(out: &mut Vec<u8>, name: &str) {
    debug_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}

/// `{"type": "error", "in_reply_to": N, "code": C, "text": "..."}`.
pub fn error(out: &mut Vec<u8>, msg_id: Option<&Raw<'_>>, code: u16, text: &str) {
    Reply::start(out, "error", msg_id)
        .number("code", u64::from(code))
        .str("text", text)
        .end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_keep_protocol_order() {
        let mut out = Vec::new();
        Reply::start(&mut out, "subscribed", Some(&Raw::Number("1")))
            .strings("event_types", ["UserCreated", "UserUpdated"])
            .end();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"type": "subscribed", "in_reply_to": 1, "event_types": ["UserCreated", "UserUpdated"]}"#
        );
        let mut out = Vec::new();
        error(&mut out, None, 12, "bad");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"type": "error", "in_reply_to": null, "code": 12, "text": "bad"}"#
        );
    }
}
