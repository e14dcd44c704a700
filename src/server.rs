//! The stdio loop: one message per input line, one reply line per message.
//!
//! Replies are buffered and flushed whenever the reader is about to wait for
//! input, so a peer that sends one line and waits gets its answer at once,
//! while a piped stream is written in large blocks.

use crate::engine::Engine;
use crate::lines::{Line, LineReader};
use crate::plan::type_name;
use crate::protocol::code::MALFORMED_REQUEST;
use crate::protocol::{json, reply};
use crate::store::DocumentStore;
use serde_json::{Map, Value};
use std::io::{self, BufWriter, Read, Write};

/// The default bound on one input line: 16 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Options {
    /// Wrap each reply as `{"src", "dest", "body"}` instead of printing the body alone.
    pub envelope: bool,
    pub max_line_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            envelope: false,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// Serves messages from `input` until it ends. Replies go to `output`, log
/// lines to `log`. Only I/O errors end the loop; a bad message gets an
/// error reply and the next line is served.
pub fn serve<S: DocumentStore>(
    engine: &mut Engine<S>,
    input: impl Read,
    output: impl Write,
    mut log: impl Write,
    options: &Options,
) -> io::Result<()> {
    let mut lines = LineReader::new(input, options.max_line_bytes);
    let mut out = BufWriter::with_capacity(64 * 1024, output);
    let mut body = Vec::with_capacity(256);
    let mut line_no = 0usize;
    while let Some(line) = lines.next_line(|| out.flush())? {
        line_no += 1;
        body.clear();
        let envelope = match line {
            Line::TooLong { blank: true, .. } => continue,
            Line::TooLong { len, .. } => {
                let text = format!(
                    "input line {line_no} is {len} bytes long, over the limit of {} bytes (--max-line-bytes)",
                    options.max_line_bytes
                );
                reply::error(&mut body, None, MALFORMED_REQUEST, &text);
                None
            }
            Line::Text(bytes) => {
                let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match parse(bytes, line_no) {
                    Ok(Value::Object(message)) => answer(engine, message, line_no, &mut body),
                    Ok(other) => {
                        let text = format!(
                            "input line {line_no} must be a JSON object, found {}",
                            type_name(&other)
                        );
                        reply::error(&mut body, None, MALFORMED_REQUEST, &text);
                        None
                    }
                    Err(text) => {
                        reply::error(&mut body, None, MALFORMED_REQUEST, &text);
                        None
                    }
                }
            }
        };
        for warning in engine.take_warnings() {
            // A log that cannot be written is no reason to stop serving.
            let _ = writeln!(log, "projector: warning: {warning}");
        }
        if options.envelope {
            let envelope = envelope.unwrap_or_default();
            out.write_all(b"{\"src\": ")?;
            let mut head = Vec::new();
            let src = match (engine.node_id(), envelope.get("dest")) {
                (Some(node), _) => Value::String(node.to_owned()),
                (None, Some(dest)) => dest.clone(),
                (None, None) => Value::String("projector".to_owned()),
            };
            json::value(&mut head, &src);
            head.extend_from_slice(b", \"dest\": ");
            json::value(&mut head, envelope.get("src").unwrap_or(&Value::Null));
            head.extend_from_slice(b", \"body\": ");
            out.write_all(&head)?;
            out.write_all(&body)?;
            out.write_all(b"}\n")?;
        } else {
            out.write_all(&body)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

/// Answers one message, a bare body or an envelope (a `body` and no `type`
/// of its own); returns the envelope's other fields.
fn answer<S: DocumentStore>(
    engine: &mut Engine<S>,
    mut message: Map<String, Value>,
    line_no: usize,
    out: &mut Vec<u8>,
) -> Option<Map<String, Value>> {
    let inner = match message.contains_key("type") {
        true => None,
        false => message.remove("body"),
    };
    match inner {
        None => {
            engine.handle(&message, out);
            None
        }
        Some(Value::Object(inner)) => {
            engine.handle(&inner, out);
            Some(message)
        }
        Some(other) => {
            let text = format!(
                "input line {line_no}: the envelope's \"body\" must be an object, found {}",
                type_name(&other)
            );
            reply::error(out, None, MALFORMED_REQUEST, &text);
            Some(message)
        }
    }
}

/// One line as JSON, or an error text that says what is wrong and where.
fn parse(bytes: &[u8], line_no: usize) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "input line {line_no} is not valid UTF-8 at column {}",
            e.valid_up_to() + 1
        )
    })?;
    serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => &message[..i],
            None => &message,
        };
        format!(
            "input line {line_no} is not valid JSON: {message} at column {}",
            e.column()
        )
    })
}
