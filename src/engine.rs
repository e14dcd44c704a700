//! The projector's state and its answer to each message: subscriptions,
//! processed event ids, the read models, and the dispatch from a message body
//! to its reply.

use crate::apply::apply;
use crate::dedup::Processed;
use crate::plan::{scalar_text, type_name, ModelId, Plan};
use crate::protocol::code::{MALFORMED_REQUEST, NOT_SUPPORTED, PRECONDITION_FAILED};
use crate::protocol::json;
use crate::protocol::reply::{error, Reply};
use crate::store::{DocumentStore, MemoryStore};
use crate::subscriptions::Subscriptions;
use serde_json::{Map, Value};

/// How many documents a `query` without a `key` returns when it names no `limit`.
pub const DEFAULT_LIST_LIMIT: u64 = 100;

const MESSAGE_TYPES: &str = "init, subscribe, unsubscribe, event, query";

pub struct Engine<S = MemoryStore> {
    plan: Plan,
    stores: Vec<S>,
    processed: Processed,
    subscriptions: Subscriptions,
    node_id: Option<String>,
    updated: Vec<ModelId>,
    warnings: Vec<String>,
}

impl Engine<MemoryStore> {
    pub fn in_memory(plan: Plan) -> Self {
        let stores = vec![MemoryStore::default(); plan.model_count()];
        Engine::new(plan, stores)
    }
}

impl<S: DocumentStore> Engine<S> {
    /// An engine over one store per read model, in model order.
    pub fn new(plan: Plan, stores: Vec<S>) -> Self {
        assert_eq!(stores.len(), plan.model_count(), "one store per read model");
        Engine {
            plan,
            stores,
            processed: Processed::default(),
            subscriptions: Subscriptions::default(),
            node_id: None,
            updated: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn store(&self, model: ModelId) -> &S {
        &self.stores[model.0 as usize]
    }

    /// The node id given by `init`, if any.
    pub fn node_id(&self) -> Option<&str> {
        self.node_id.as_deref()
    }

    /// Warnings produced since the last call, for the log.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Answers one message body, writing the reply body to `out`.
    pub fn handle(&mut self, body: &Map<String, Value>, out: &mut Vec<u8>) {
        let msg_id = body.get("msg_id");
        let ty = match body.get("type") {
            Some(Value::String(ty)) => ty.as_str(),
            Some(other) => {
                let text = format!(
                    "the message's \"type\" must be a string, found {}",
                    type_name(other)
                );
                return error(out, msg_id, MALFORMED_REQUEST, &text);
            }
            None => {
                return error(
                    out,
                    msg_id,
                    MALFORMED_REQUEST,
                    "the message has no \"type\"",
                )
            }
        };
        match ty {
            "event" => self.event(body, msg_id, out),
            "subscribe" | "unsubscribe" => self.subscription(ty, body, msg_id, out),
            "query" => self.query(body, msg_id, out),
            "init" => self.init(body, msg_id, out),
            other => {
                let mut quoted = Vec::new();
                json::string(&mut quoted, other);
                let text = format!(
                    "unsupported message type {}; this projector handles {MESSAGE_TYPES}",
                    String::from_utf8_lossy(&quoted)
                );
                error(out, msg_id, NOT_SUPPORTED, &text)
            }
        }
    }

    fn init(&mut self, body: &Map<String, Value>, msg_id: Option<&Value>, out: &mut Vec<u8>) {
        match body.get("node_id") {
            Some(Value::String(id)) => self.node_id = Some(id.clone()),
            None => {}
            Some(other) => {
                let text = format!(
                    "init: \"node_id\" must be a string, found {}",
                    type_name(other)
                );
                return error(out, msg_id, MALFORMED_REQUEST, &text);
            }
        }
        Reply::start(out, "init_ok", msg_id).end();
    }

    fn subscription(
        &mut self,
        ty: &str,
        body: &Map<String, Value>,
        msg_id: Option<&Value>,
        out: &mut Vec<u8>,
    ) {
        let names: Option<Vec<&str>> = match body.get("event_types") {
            Some(Value::Array(items)) => items.iter().map(Value::as_str).collect(),
            _ => None,
        };
        let Some(names) = names else {
            let text = format!("{ty}: \"event_types\" must be an array of event type names");
            return error(out, msg_id, MALFORMED_REQUEST, &text);
        };
        for name in &names {
            if ty == "subscribe" {
                if self.plan.event_type(name).is_none() {
                    self.warnings.push(format!(
                        "subscribed to \"{name}\", which no read model reacts to: its events will update nothing"
                    ));
                }
                self.subscriptions.subscribe(&self.plan, name);
            } else {
                self.subscriptions.unsubscribe(&self.plan, name);
            }
        }
        let reply = if ty == "subscribe" {
            "subscribed"
        } else {
            "unsubscribed"
        };
        Reply::start(out, reply, msg_id)
            .strings("event_types", names)
            .end();
    }

    fn event(&mut self, body: &Map<String, Value>, msg_id: Option<&Value>, out: &mut Vec<u8>) {
        let malformed = |out: &mut Vec<u8>, text: &str| error(out, msg_id, MALFORMED_REQUEST, text);
        let event = match body.get("event") {
            Some(event @ Value::Object(fields)) => {
                match fields.get("type") {
                    Some(Value::String(_)) => {}
                    None => return malformed(out, "the event has no \"type\""),
                    Some(other) => {
                        let text = format!(
                            "the event's \"type\" must be a string, found {}",
                            type_name(other)
                        );
                        return malformed(out, &text);
                    }
                }
                if !fields.contains_key("payload") {
                    return malformed(out, "the event has no \"payload\"");
                }
                event
            }
            Some(other) => {
                let text = format!("\"event\" must be an object, found {}", type_name(other));
                return malformed(out, &text);
            }
            None => return malformed(out, "the event message has no \"event\""),
        };
        let type_name = event["type"].as_str().unwrap_or_default();
        let id = match self.plan.event_id.resolve(event) {
            Ok(id) => id,
            Err(e) => return malformed(out, &e.to_string()),
        };
        if self.processed.contains(&id) {
            return skipped(out, msg_id, &id, "already_processed");
        }
        let ty = self.plan.event_type(type_name);
        if !self.subscriptions.accepts(ty, type_name) {
            return skipped(out, msg_id, &id, "not_subscribed");
        }
        let bindings = ty.map_or(&[][..], |ty| self.plan.bindings(ty));
        match apply(bindings, event, &mut self.stores, &mut self.updated) {
            Ok(()) => {
                self.processed.record(&id);
                let plan = &self.plan;
                Reply::start(out, "read_models_updated", msg_id)
                    .str("event_id", &id)
                    .strings(
                        "updated_models",
                        self.updated.iter().map(|m| plan.model_name(*m)),
                    )
                    .end();
            }
            Err(e) => {
                let code = if e.is_precondition() {
                    PRECONDITION_FAILED
                } else {
                    MALFORMED_REQUEST
                };
                let text = format!(
                    "event {id} ({type_name}) was not applied, and no read model changed: {}",
                    e.describe(&self.plan)
                );
                error(out, msg_id, code, &text);
            }
        }
    }

    fn query(&mut self, body: &Map<String, Value>, msg_id: Option<&Value>, out: &mut Vec<u8>) {
        let malformed = |out: &mut Vec<u8>, text: &str| error(out, msg_id, MALFORMED_REQUEST, text);
        let name = match body.get("model") {
            Some(Value::String(name)) => name.as_str(),
            _ => return malformed(out, "query: \"model\" must name a read model"),
        };
        let Some(model) = self.plan.model_by_name(name) else {
            let known: Vec<&str> = self.plan.model_names().collect();
            let text = format!(
                "query: unknown read model \"{name}\"; the read models are: {}",
                known.join(", ")
            );
            return malformed(out, &text);
        };
        let store = &self.stores[model.0 as usize];
        if let Some(key) = body.get("key") {
            let Some(key) = scalar_text(key) else {
                let text = format!(
                    "query: \"key\" must be a string or a number, found {}",
                    type_name(key)
                );
                return malformed(out, &text);
            };
            let doc = store.get(&key);
            return Reply::start(out, "query_result", msg_id)
                .str("model", name)
                .str("key", &key)
                .with("document", |o| match doc {
                    Some(d) => json::object(o, d),
                    None => o.extend_from_slice(b"null"),
                })
                .end();
        }
        let limit = match body.get("limit") {
            None => Some(DEFAULT_LIST_LIMIT),
            Some(Value::Number(n)) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            }),
            Some(_) => None,
        };
        let Some(limit) = limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)) else {
            return malformed(out, "query: \"limit\" must be a non-negative integer");
        };
        let after = match body.get("after") {
            None | Some(Value::Null) => None,
            Some(v) => match scalar_text(v) {
                Some(after) => Some(after),
                None => {
                    return malformed(out, "query: \"after\" must be a key (a string or a number)")
                }
            },
        };
        let mut page = store.page(after.as_deref(), limit.saturating_add(1));
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more {
            page.last().map(|(k, _)| *k)
        } else {
            None
        };
        Reply::start(out, "query_result", msg_id)
            .str("model", name)
            .with("documents", |o| {
                o.push(b'{');
                for (i, (key, doc)) in page.iter().enumerate() {
                    if i > 0 {
                        o.extend_from_slice(b", ");
                    }
                    json::string(o, key);
                    o.extend_from_slice(b": ");
                    json::object(o, doc);
                }
                o.push(b'}');
            })
            .number("total", store.len() as u64)
            .with("next", |o| match next {
                Some(k) => json::string(o, k),
                None => o.extend_from_slice(b"null"),
            })
            .end();
    }
}

fn skipped(out: &mut Vec<u8>, msg_id: Option<&Value>, id: &str, reason: &str) {
    Reply::start(out, "event_skipped", msg_id)
        .str("event_id", id)
        .str("reason", reason)
        .end();
}
