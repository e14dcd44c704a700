//! Events to and from NATS JetStream: a stream as the command line names
//! it (`nats://HOST:PORT/STREAM`), and input lines as `publish` sends them.

use crate::plan::event_id::EventIdRule;
use serde_json::Value;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAddress {
    /// `HOST:PORT`, as the client connects to it.
    pub server: String,
    pub stream: String,
}

impl StreamAddress {
    /// Reads `nats://HOST:PORT/STREAM`; says what is wrong otherwise.
    pub fn parse(text: &str) -> Result<StreamAddress, String> {
        let rest = text
            .strip_prefix("nats://")
            .ok_or_else(|| format!("{text:?} is not a nats://HOST:PORT/STREAM address"))?;
        let (server, stream) = rest
            .split_once('/')
            .ok_or_else(|| format!("{text:?} names no stream: nats://HOST:PORT/STREAM"))?;
        if server.is_empty() {
            return Err(format!("{text:?} names no server: nats://HOST:PORT/STREAM"));
        }
        // JetStream's rule for stream names.
        let bad = |c: char| c.is_whitespace() || c.is_control() || ".*>/\\".contains(c);
        if stream.is_empty() || stream.chars().any(bad) {
            return Err(format!(
                "{stream:?} cannot name a JetStream stream: a name is not empty and has no spaces, '.', '*', '>', '/' or '\\'"
            ));
        }
        let server = match server.contains(':') {
            true => server.to_owned(),
            false => format!("{server}:4222"),
        };
        Ok(StreamAddress {
            server,
            stream: stream.to_owned(),
        })
    }

    /// The subject the projector publishes a stream's events on, when it
    /// creates the stream.
    pub fn subject(&self) -> String {
        format!("{}.events", self.stream)
    }
}

impl fmt::Display for StreamAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nats://{}/{}", self.server, self.stream)
    }
}

/// A line of input, as `publish` takes it.
#[derive(Debug, PartialEq)]
pub enum Line {
    /// An event: the message to publish (an event message as `run` reads
    /// it, exactly as written; a bare event wrapped in one), and its id
    /// when the event-id rule finds one.
    Event {
        message: String,
        id: Option<String>,
    },
    /// Another message (`init`, `subscribe`, `query`, ...): its type.
    Other(String),
    Blank,
    /// Not JSON, or neither a message nor an event: why.
    Bad(String),
}

impl Line {
    pub fn read(line: &str, rule: &EventIdRule) -> Line {
        if line.trim().is_empty() {
            return Line::Blank;
        }
        let value: Value = match serde_json::from_str(&crate::value::surrogate::prepare(line)) {
            Ok(value) => value,
            Err(e) => return Line::Bad(format!("not valid JSON: {e}")),
        };
        let envelope = value.get("body").filter(|b| b.is_object());
        let body = envelope.unwrap_or(&value);
        let (message, event) = match (body.get("type"), body.get("event")) {
            (Some(Value::String(t)), Some(event)) if t == "event" => {
                (line.trim().to_owned(), event)
            }
            (Some(Value::String(t)), _) if envelope.is_some() || body.get("msg_id").is_some() => {
                return Line::Other(t.clone())
            }
            (Some(Value::String(_)), _) => (
                format!("{{\"type\":\"event\",\"event\":{}}}", line.trim()),
                &value,
            ),
            _ => {
                return Line::Bad(
                    "neither a message nor an event (an object with a \"type\")".to_owned(),
                )
            }
        };
        if !event.is_object() {
            return Line::Bad("its event is not a JSON object".to_owned());
        }
        let id = rule.resolve(event).ok().map(|id| id.into_owned());
        Line::Event { message, id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_a_server_and_a_stream() {
        let a = StreamAddress::parse("nats://127.0.0.1:4222/ORDERS").unwrap();
        assert_eq!(
            (a.server.as_str(), a.stream.as_str()),
            ("127.0.0.1:4222", "ORDERS")
        );
        assert_eq!(a.to_string(), "nats://127.0.0.1:4222/ORDERS");
        assert_eq!(a.subject(), "ORDERS.events");
        assert_eq!(
            StreamAddress::parse("nats://db/S").unwrap().server,
            "db:4222"
        );
        for bad in [
            "http://x/S",
            "nats://x",
            "nats:///S",
            "nats://x/",
            "nats://x/a.b",
            "nats://x/a b",
        ] {
            assert!(StreamAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_are_events_other_messages_or_refused() {
        let rule = EventIdRule::from_definition(r#"{"derive":null,"path":"$.id"}"#).unwrap();
        let read = |line: &str| Line::read(line, &rule);
        let event = |message: &str, id: Option<&str>| Line::Event {
            message: message.to_owned(),
            id: id.map(str::to_owned),
        };
        let message = r#"{"type":"event","msg_id":1,"event":{"type":"T","id":"e1","n":1.50}}"#;
        assert_eq!(read(message), event(message, Some("e1")));
        let envelope = format!(r#"{{"src":"bus","dest":"p","body":{message}}}"#);
        assert_eq!(read(&envelope), event(&envelope, Some("e1")));
        // A bare event is wrapped as written, lone surrogate escapes and all.
        assert_eq!(
            read(r#"{"type":"T","id":7,"s":"\ud800"}"#),
            event(
                r#"{"type":"event","event":{"type":"T","id":7,"s":"\ud800"}}"#,
                Some("7")
            )
        );
        assert_eq!(
            read(r#"{"type":"T"}"#),
            event(r#"{"type":"event","event":{"type":"T"}}"#, None)
        );
        assert_eq!(
            read(r#"{"type":"subscribe","msg_id":2,"event_types":["T"]}"#),
            Line::Other("subscribe".to_owned())
        );
        assert_eq!(read("  "), Line::Blank);
        assert!(matches!(read("{"), Line::Bad(_)));
        assert!(matches!(read("[1]"), Line::Bad(_)));
        assert!(matches!(
            read(r#"{"type":"event","msg_id":1,"event":3}"#),
            Line::Bad(_)
        ));
    }
}
