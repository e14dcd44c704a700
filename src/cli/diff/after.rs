//! The documents after a change: the new configuration's plan applied by
//! the engine, in memory, to the events of the followed documents alone.
//!
//! Which documents are followed is known before the events are read (the
//! live ones), or, for a read model with none, settled as they come: the
//! first ones its events make. An event that touches no followed document
//! is not applied at all, so what is held is those documents, what their
//! events wrote and their ids, however long the stream. An event touching
//! one is applied to every read model it binds, as a run applies it: all
//! or nothing, once per id.

use projector::engine::digest::{Digest, Digester};
use projector::engine::{Engine, Outcome};
use projector::input::reader::Prepared;
use projector::input::scan::EventMessage;
use projector::plan::{ModelId, Plan};
use projector::server::parking::{body_of, documents_of_event};
use projector::store::{Document, DocumentStore, Key};
use projector::value::event::{Event, Raw};
use serde_json::Value;
use std::collections::HashSet;

pub struct Followed {
    engine: Engine,
    /// By model: the keys of the documents followed.
    keys: Vec<HashSet<String>>,
    /// By model: how many more documents it follows as its events make
    /// them.
    open: Vec<usize>,
    /// Whether subscription messages say which events are applied: they do
    /// for a state of its own, never for a stream instance.
    subscriptions: bool,
    /// Events applied.
    pub applied: u64,
    reply: Vec<u8>,
}

impl Followed {
    /// Follows nothing yet, with `plan`.
    pub fn new(plan: Plan, subscriptions: bool) -> Followed {
        let models = plan.model_count();
        Followed {
            engine: Engine::in_memory(plan),
            keys: vec![HashSet::new(); models],
            open: vec![0; models],
            subscriptions,
            applied: 0,
            reply: Vec::new(),
        }
    }

    /// Follows the documents of `model` with these keys.
    pub fn follow(&mut self, model: ModelId, keys: impl IntoIterator<Item = String>) {
        self.keys[model.0 as usize].extend(keys);
    }

    /// Follows the first `n` documents the events of `model` make.
    pub fn follow_first(&mut self, model: ModelId, n: usize) {
        self.open[model.0 as usize] = n;
    }

    /// What prepares the lines for [`Followed::line`].
    pub fn digester(&self) -> Digester {
        self.engine.digester()
    }

    /// The keys followed of `model`, in key order.
    pub fn keys(&self, model: ModelId) -> Vec<String> {
        let mut keys: Vec<String> = self.keys[model.0 as usize].iter().cloned().collect();
        keys.sort_unstable();
        keys
    }

    /// A followed document as the events made it; `None`: none.
    pub fn document(&self, model: ModelId, key: &str) -> Option<&Document> {
        self.engine.store(model).get(&Key::new(key))
    }

    /// Applies the line's message when it is an event that touches a
    /// followed document, or a subscription change that counts.
    pub fn line(&mut self, line: &mut Prepared<'_>) {
        match line {
            Prepared::Event(message, digest) => self.event(message, digest.as_mut()),
            Prepared::Other(text) if self.subscriptions => self.subscription(text),
            _ => {}
        }
    }

    /// An event without a digest is malformed or has no id: the engine
    /// refuses it, so it changes nothing.
    fn event(&mut self, message: &mut EventMessage<'_>, digest: Option<&mut Digest<'_>>) {
        let Some(digest) = digest else {
            return;
        };
        let event = Event::new(std::mem::replace(&mut message.event, Raw::Null));
        if self.touches(digest, &event) {
            self.reply.clear();
            let handled = self.engine.handle_event(
                message.msg_id.as_ref(),
                &event,
                Some(digest),
                &mut self.reply,
            );
            if matches!(handled, Ok(Outcome::Applied)) {
                self.applied += 1;
                self.take_made();
            }
        }
        message.event = event.into_root();
    }

    /// Whether the event writes a followed document, or one of a model
    /// that still takes the documents its events make.
    fn touches(&self, digest: &Digest<'_>, event: &Event<'_>) -> bool {
        let Some(ty) = digest.ty else {
            return false;
        };
        let plan = self.engine.plan();
        let wanted = |model: ModelId, key: &str| {
            let m = model.0 as usize;
            self.open[m] > 0 || self.keys[m].contains(key)
        };
        match &digest.resolved {
            Some(Ok(resolved)) => resolved.iter().any(|r| {
                let (model, key) = r.document(plan.bindings(ty));
                wanted(model, key.as_str())
            }),
            // Refused whole: nothing changes.
            Some(Err(_)) => false,
            // Its bindings read its position: the engine resolves them.
            None => documents_of_event(plan, event).iter().any(|(model, key)| {
                plan.model_by_name(model)
                    .is_some_and(|model| wanted(model, key))
            }),
        }
    }

    /// Follows the documents the event just applied made, of the models
    /// that still take them.
    fn take_made(&mut self) {
        for change in self.engine.changed() {
            let m = change.model.0 as usize;
            if self.open[m] > 0 && self.keys[m].insert(change.key.as_str().to_owned()) {
                self.open[m] -= 1;
            }
        }
    }

    fn subscription(&mut self, text: &str) {
        let Ok(message) =
            serde_json::from_str::<Value>(&projector::value::surrogate::prepare(text))
        else {
            return;
        };
        let Some(Value::Object(body)) = body_of(&message) else {
            return;
        };
        if matches!(
            body.get("type").and_then(Value::as_str),
            Some("subscribe" | "unsubscribe")
        ) {
            self.reply.clear();
            // In memory, handling a subscription cannot fail.
            let _ = self.engine.handle(body, &mut self.reply);
        }
    }
}
