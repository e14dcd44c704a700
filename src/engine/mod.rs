//! The projector's state and its answer to each message: subscriptions,
//! processed event ids, the read models, and the dispatch from a message body
//! to its reply. [`apply`] interprets one event against the document
//! stores, [`dedup`] remembers processed ids, [`subscriptions`] which types
//! are processed.

pub mod apply;
pub mod digest;
pub mod durable;
pub mod fields;
mod rebuild;
pub mod subscriptions;
pub mod testing;

pub use rebuild::Rebuilt;

use crate::engine::apply::{apply_resolved, resolve, ApplyError, Change, Meta, Resolved};
use crate::engine::digest::Digest;
use crate::engine::durable::{Budget, Durable};
use crate::engine::subscriptions::Subscriptions;
use crate::plan::binding::Binding;
use crate::plan::{scalar_text, type_name, ModelId, Plan};
use crate::protocol::code::{MALFORMED_REQUEST, NOT_SUPPORTED, PRECONDITION_FAILED};
use crate::protocol::json;
use crate::protocol::reply::{error, Reply};
use crate::state::dedup::{IdHash, Processed};
use crate::state::reader::Reader;
use crate::state::{Journal, NoJournal, Restored, StateError, Totals};
use crate::store::{DocumentStore, Key, MemoryStore};
use crate::value::event::checked_event;
use crate::value::event::Event;
use crate::value::event::Raw;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// How many documents a `query` without a `key` returns when it names no `limit`.
pub const DEFAULT_LIST_LIMIT: u64 = 100;
/// The most documents one `query` returns: a larger `limit` is cut to it,
/// and `next` goes on from there.
pub const MAX_LIST_LIMIT: u64 = 1000;

const MESSAGE_TYPES: &str = "init, subscribe, unsubscribe, event, query";

pub struct Engine {
    plan: Plan,
    /// In memory: every document, and every processed id.
    stores: Vec<MemoryStore>,
    processed: Processed,
    /// With a state: what the run holds of it (and `stores` is empty).
    durable: Option<Box<Durable>>,
    /// Processed ids, as the state will hold them once all is committed.
    processed_count: u64,
    subscriptions: Subscriptions,
    /// The subscriptions changed since the last batch was handed over:
    /// the next one records them, once, however many messages changed them.
    subscriptions_changed: bool,
    journal: Box<dyn Journal>,
    rebuild: Option<rebuild::Rebuild>,
    node_id: Option<String>,
    changes: Vec<Change>,
    warnings: Vec<String>,
    /// Messages handled so far: the position of the current one.
    position: u64,
    /// The sequence, in the source stream, of the last message handled.
    checkpoint: Option<u64>,
    /// Each model's name as a JSON string, for replies.
    model_json: Vec<Vec<u8>>,
}

/// What a message did to the state, for counting in a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Skipped,
    Refused,
    /// Left for after a rebuild (see [`Engine::rebuild`]).
    Deferred,
    /// Another unit of work's event (see [`crate::plan::units`]): not
    /// applied, not recorded, not answered.
    Elsewhere,
    /// Held, not applied, behind an event parked on one of its documents
    /// (see `--on-refused park`).
    Parked,
    Other,
}

impl Engine {
    /// An engine whose state lives and dies with the process.
    pub fn in_memory(plan: Plan) -> Self {
        let restored = Restored {
            documents: vec![0; plan.model_count()],
            ..Restored::default()
        };
        let stores = vec![MemoryStore::default(); plan.model_count()];
        Engine::new(plan, restored, Box::new(NoJournal), stores, None)
    }

    /// An engine over a state: it starts from `restored`, reads what it
    /// needs of the state through `reader`, holding no more than `budget`
    /// says, and reports what it does to `journal`.
    pub fn durable(
        plan: Plan,
        restored: Restored,
        journal: Box<dyn Journal>,
        reader: Box<dyn Reader>,
        path: std::path::PathBuf,
        budget: Budget,
    ) -> Self {
        assert_eq!(
            restored.documents.len(),
            plan.model_count(),
            "one count per read model"
        );
        let models: Vec<&str> = plan.model_names().collect();
        let durable = Durable::new(reader, path, &restored, &models, budget);
        Engine::new(plan, restored, journal, Vec::new(), Some(Box::new(durable)))
    }

    fn new(
        plan: Plan,
        restored: Restored,
        journal: Box<dyn Journal>,
        stores: Vec<MemoryStore>,
        durable: Option<Box<Durable>>,
    ) -> Self {
        Engine {
            subscriptions: Subscriptions::from_names(&plan, restored.subscriptions.as_deref()),
            subscriptions_changed: false,
            stores,
            processed: Processed::default(),
            durable,
            processed_count: restored.processed,
            journal,
            rebuild: None,
            plan,
            node_id: None,
            changes: Vec::new(),
            warnings: Vec::new(),
            position: 0,
            checkpoint: restored.checkpoint,
            model_json: Vec::new(),
        }
        .with_model_json()
    }

    /// The sequence, in the source stream, of the last message handled:
    /// committed with the next batch.
    pub fn set_checkpoint(&mut self, sequence: u64) {
        self.checkpoint = Some(sequence);
    }

    /// Keeps an event refused with the next batch (see
    /// [`crate::state::Rejection`]).
    pub fn record_rejection(
        &mut self,
        rejection: crate::state::Rejection,
    ) -> Result<(), StateError> {
        self.journal.record_rejection(rejection)
    }

    /// Where in the source stream the state stands.
    pub fn checkpoint(&self) -> Option<u64> {
        self.checkpoint
    }

    fn with_model_json(mut self) -> Self {
        self.model_json = self
            .plan
            .model_names()
            .map(|name| {
                let mut out = Vec::new();
                json::string(&mut out, name);
                out
            })
            .collect();
        self
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// A read model's documents, in memory (not over a state).
    pub fn store(&self, model: ModelId) -> &MemoryStore {
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

    /// Ends the engine as the process exits: the state, if any, is closed;
    /// the documents and processed ids are left for the operating system to
    /// reclaim, which takes no time, where freeing them one allocation at a
    /// time takes a noticeable share of a large run.
    pub fn close(self) {
        let Engine {
            journal,
            stores,
            processed,
            durable,
            ..
        } = self;
        // The state's reader closes before its writer, which, closing
        // last, leaves the state whole (SQLite folds its log back in).
        let cache = durable.map(|d| d.close());
        drop(journal);
        std::mem::forget(stores);
        std::mem::forget(processed);
        std::mem::forget(cache);
    }

    /// The documents the last applied event changed: what a reply of
    /// `read_models_updated` lists, document by document. (Other messages
    /// leave it as it was.)
    pub fn changed(&self) -> &[Change] {
        &self.changes
    }

    /// Whether models are being rebuilt (see [`Engine::rebuild`]).
    pub fn is_rebuilding(&self) -> bool {
        self.rebuild.is_some()
    }

    /// Whether the batch being collected is to be handed over now: the
    /// cache of a durable run is full of what is not committed yet.
    pub fn must_submit(&self) -> bool {
        self.durable.as_ref().is_some_and(|d| d.is_full())
    }

    /// What works out the digests of events for this engine, on the
    /// reading thread.
    pub fn digester(&self) -> digest::Digester {
        let old_rule = self.rebuild.as_ref().and_then(|r| r.old_rule.clone());
        digest::Digester::new(&self.plan, self.rebuild.is_some()).with_old_rule(old_rule)
    }

    /// Whether the state outlives the process.
    pub fn is_durable(&self) -> bool {
        self.journal.is_durable()
    }

    /// Hands every change so far to be made durable (a no-op in memory,
    /// and while rebuilding: a rebuild is committed whole by
    /// [`Engine::swap`]), after waiting for the changes handed over before.
    /// Returns without waiting for these: see [`Engine::wait`].
    pub fn submit(&mut self) -> Result<(), StateError> {
        if std::mem::take(&mut self.subscriptions_changed) && self.journal.is_durable() {
            let accepted = self.subscriptions.names(&self.plan);
            self.journal.record_subscriptions(accepted.as_deref())?;
        }
        let totals = Totals {
            documents: (0..self.plan.model_count() as u32)
                .map(|m| self.document_count(ModelId(m)))
                .collect(),
            processed: self.processed_count,
            checkpoint: self.checkpoint,
        };
        match &mut self.durable {
            None => self.journal.submit(totals, &mut self.stores),
            Some(durable) => {
                if let Some(write) = durable.filter_write() {
                    self.journal.record_filter(write);
                }
                self.journal.submit(totals, &mut **durable)?;
                durable.submitted();
                Ok(())
            }
        }
    }

    /// How many documents a read model has, committed or not.
    fn document_count(&self, model: ModelId) -> u64 {
        match &self.durable {
            None => self.stores[model.0 as usize].len() as u64,
            Some(durable) => durable.stores[model.0 as usize].len() as u64,
        }
    }

    /// Waits until every change submitted is durable. Replies to the
    /// messages handled before the last submit may be written once this
    /// returns.
    pub fn wait(&mut self) -> Result<(), StateError> {
        self.journal.wait()?;
        if let Some(durable) = &mut self.durable {
            durable.committed();
        }
        Ok(())
    }

    /// Commits everything handled so far, and waits for it.
    fn flush(&mut self) -> Result<(), StateError> {
        self.submit()?;
        self.wait()
    }

    /// Writes every read model to `out` as `{"model": {"key": document}}`,
    /// sorted by model and key. Over a state, everything is committed first
    /// and the documents are read back a page at a time.
    pub fn dump(&mut self, out: &mut dyn std::io::Write) -> Result<(), DumpError> {
        let mut models: Vec<(&str, ModelId)> = self
            .plan
            .model_names()
            .enumerate()
            .map(|(i, name)| (name, ModelId(i as u32)))
            .collect();
        models.sort_by_key(|(name, _)| *name);
        let models: Vec<(String, ModelId)> =
            models.into_iter().map(|(n, m)| (n.to_owned(), m)).collect();
        if self.durable.is_some() {
            self.flush()?;
        }
        let mut buf = Vec::new();
        buf.push(b'{');
        for (i, (name, model)) in models.iter().enumerate() {
            if i > 0 {
                buf.extend_from_slice(b", ");
            }
            json::string(&mut buf, name);
            buf.extend_from_slice(b": ");
            match &mut self.durable {
                None => json::documents(
                    &mut buf,
                    self.stores[model.0 as usize].page(None, usize::MAX),
                ),
                Some(durable) => {
                    buf.push(b'{');
                    let mut after: Option<String> = None;
                    let mut first = true;
                    loop {
                        let page = durable.page(*model, after.as_deref(), DUMP_PAGE)?;
                        for (key, doc) in &page {
                            if !std::mem::take(&mut first) {
                                buf.extend_from_slice(b", ");
                            }
                            json::string(&mut buf, key);
                            buf.extend_from_slice(b": ");
                            json::document(&mut buf, doc.iter());
                        }
                        out.write_all(&buf)?;
                        buf.clear();
                        match page.len() < DUMP_PAGE {
                            true => break,
                            false => after = page.last().map(|(k, _)| k.clone()),
                        }
                    }
                    buf.push(b'}');
                }
            }
        }
        buf.extend_from_slice(b"}\n");
        out.write_all(&buf)?;
        Ok(())
    }

    /// Answers one message body, writing the reply body to `out`. An error
    /// here is the state failing to record what happened: the caller must stop.
    pub fn handle(
        &mut self,
        body: &Map<String, Value>,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, StateError> {
        self.position += 1;
        let msg_id = body.get("msg_id").map(Raw::from);
        let msg_id = msg_id.as_ref();
        let ty = match body.get("type") {
            Some(Value::String(ty)) => ty.as_str(),
            Some(other) => {
                let text = format!(
                    "the message's \"type\" must be a string, found {}",
                    type_name(other)
                );
                error(out, msg_id, MALFORMED_REQUEST, &text);
                return Ok(Outcome::Refused);
            }
            None => {
                error(
                    out,
                    msg_id,
                    MALFORMED_REQUEST,
                    "the message has no \"type\"",
                );
                return Ok(Outcome::Refused);
            }
        };
        match ty {
            "event" => {
                return match body.get("event") {
                    Some(event) => self.event(&Event::from(event), None, msg_id, out),
                    None => {
                        let text = "the event message has no \"event\"";
                        error(out, msg_id, MALFORMED_REQUEST, text);
                        Ok(Outcome::Refused)
                    }
                }
            }
            // A rebuild applies only events already processed; what came
            // after them, subscriptions too, is handled after the swap.
            "subscribe" | "unsubscribe" if self.rebuild.is_some() => return Ok(Outcome::Deferred),
            "subscribe" | "unsubscribe" => self.subscription(ty, body, msg_id, out)?,
            "query" => self.query(body, msg_id, out)?,
            "init" => self.init(body, msg_id, out),
            other => {
                let mut quoted = Vec::new();
                json::string(&mut quoted, other);
                let text = format!(
                    "unsupported message type {}; this projector handles {MESSAGE_TYPES}",
                    String::from_utf8_lossy(&quoted)
                );
                error(out, msg_id, NOT_SUPPORTED, &text);
                return Ok(Outcome::Refused);
            }
        }
        Ok(Outcome::Other)
    }

    fn init(&mut self, body: &Map<String, Value>, msg_id: Option<&Raw<'_>>, out: &mut Vec<u8>) {
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
        msg_id: Option<&Raw<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<(), StateError> {
        let names: Option<Vec<&str>> = match body.get("event_types") {
            Some(Value::Array(items)) => items.iter().map(Value::as_str).collect(),
            _ => None,
        };
        let Some(names) = names else {
            let text = format!("{ty}: \"event_types\" must be an array of event type names");
            error(out, msg_id, MALFORMED_REQUEST, &text);
            return Ok(());
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
        self.subscriptions_changed = true;
        let reply = if ty == "subscribe" {
            "subscribed"
        } else {
            "unsubscribed"
        };
        Reply::start(out, reply, msg_id)
            .strings("event_types", names)
            .end();
        Ok(())
    }

    /// Starts loading the memory that handling the event of `digest` will
    /// read first: where its id is looked up among the processed ones,
    /// where each document it writes is looked up in its store, and the
    /// operations resolved for those documents.
    pub fn prefetch(&self, digest: &Digest<'_>) {
        if let Some(Ok(resolved)) = &digest.resolved {
            resolved.iter().for_each(Resolved::prefetch);
        }
        match &self.durable {
            None => {
                self.processed.prefetch(digest.id);
                for (model, key) in self.documents(digest) {
                    self.stores[model.0 as usize].prefetch(key);
                }
            }
            Some(durable) => {
                durable.prefetch_id(digest.id, &digest.id_text);
                for (model, key) in self.documents(digest) {
                    durable.prefetch_key(model, key);
                }
            }
        }
    }

    /// Starts loading the fields of the documents the event of `digest`
    /// will change, once [`Engine::prefetch`] has loaded where they are.
    pub fn prefetch_fields(&self, digest: &Digest<'_>) {
        for (model, key) in self.documents(digest) {
            let doc = match &self.durable {
                None => self.stores[model.0 as usize].get(key),
                Some(durable) => durable.stores[model.0 as usize].resident(key),
            };
            if let Some(doc) = doc {
                doc.prefetch();
            }
        }
    }

    /// Over a state: reads what the events of `lines` need that the cache
    /// does not hold (see [`Durable::preload`]), with one query for their
    /// ids and one per read model for their documents.
    pub fn preload<'a>(
        &mut self,
        digests: impl Iterator<Item = &'a Digest<'a>> + Clone,
    ) -> Result<(), StateError> {
        let Some(durable) = &mut self.durable else {
            return Ok(());
        };
        let mine = digests.filter(|d| d.mine);
        let ids: Vec<(IdHash, &str)> = mine.clone().map(|d| (d.id, &*d.id_text)).collect();
        let rebuilt = self.rebuild.as_ref().map(|r| r.models());
        if let Some(rebuild) = &self.rebuild {
            // Whether the state processed them, by the rule it found them by.
            let state_ids: Vec<(IdHash, &str)> = match rebuild.old_rule {
                None => ids.clone(),
                Some(_) => mine
                    .clone()
                    .filter_map(|d| d.old_id.as_deref())
                    .map(|old| (IdHash::of(old), old))
                    .collect(),
            };
            durable.preload_state_ids(&state_ids)?;
        }
        let plan = &self.plan;
        let documents = mine.flat_map(|digest| {
            let resolved = match (digest.ty, &digest.resolved) {
                (Some(ty), Some(Ok(resolved))) => Some((plan.bindings(ty), resolved)),
                _ => None,
            };
            resolved
                .into_iter()
                .flat_map(|(bindings, resolved)| resolved.iter().map(|r| r.document(bindings)))
        });
        // While models are rebuilt, only theirs are written.
        let documents = documents.filter(|(model, _)| rebuilt.is_none_or(|r| r.contains(model)));
        durable.preload(&ids, documents)
    }

    /// Whether the event with this id was processed.
    /// Whether the event with this id was processed; `preloaded` when
    /// [`Engine::preload`] read what it needs.
    fn is_processed(
        &mut self,
        hash: IdHash,
        id: &str,
        preloaded: bool,
    ) -> Result<bool, StateError> {
        match &mut self.durable {
            None => Ok(self.processed.contains(hash)),
            Some(durable) => durable.is_processed(hash, id, preloaded),
        }
    }

    /// The event with this id was applied.
    fn record_processed(&mut self, hash: IdHash, id: &str) {
        self.processed_count += 1;
        match &mut self.durable {
            None => self.processed.record(hash),
            Some(durable) => durable.record(hash, id),
        }
    }

    /// The read models and keys of the documents a digest's event writes.
    fn documents<'a>(
        &'a self,
        digest: &'a Digest<'_>,
    ) -> impl Iterator<Item = (ModelId, &'a crate::store::Key)> + 'a {
        let resolved = match (digest.ty, &digest.resolved) {
            (Some(ty), Some(Ok(resolved))) => Some((self.plan.bindings(ty), resolved)),
            _ => None,
        };
        resolved
            .into_iter()
            .flat_map(|(bindings, resolved)| resolved.iter().map(|r| r.document(bindings)))
    }

    /// Answers an event message given its `msg_id` and `event`, parsed by
    /// the caller: the path a stream of events takes. `digest`, when given,
    /// is the event's, made by a [`crate::engine::digest::Digester`] of this plan.
    pub fn handle_event(
        &mut self,
        msg_id: Option<&Raw<'_>>,
        event: &Event<'_>,
        digest: Option<&mut Digest<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, StateError> {
        self.position += 1;
        self.event(event, digest, msg_id, out)
    }

    fn event(
        &mut self,
        event: &Event<'_>,
        digest: Option<&mut Digest<'_>>,
        msg_id: Option<&Raw<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, StateError> {
        let refuse = |out: &mut Vec<u8>, code: u16, text: &str| {
            error(out, msg_id, code, text);
            Ok(Outcome::Refused)
        };
        if self.elsewhere(event, digest.as_deref()) {
            return Ok(Outcome::Elsewhere);
        }
        // With a digest the event's tree, built on the reading thread, need
        // not be read here at all.
        // Events that come with a digest were preloaded (see
        // [`Engine::preload`]): their ids asked of the state, if need be.
        let preloaded = digest.is_some();
        let (hash, id, type_name, ty, resolved) = match digest {
            Some(Digest {
                id,
                id_text,
                type_name,
                ty,
                resolved,
                ..
            }) => (
                *id,
                Cow::Borrowed(&**id_text),
                *type_name,
                *ty,
                resolved.as_mut(),
            ),
            None => {
                let type_name = match checked_event(event.root()) {
                    Ok(type_name) => type_name,
                    Err(text) => return refuse(out, MALFORMED_REQUEST, &text),
                };
                let id = match self.plan.event_id.resolve_event(event) {
                    Ok(id) => id,
                    Err(e) => return refuse(out, MALFORMED_REQUEST, &e.to_string()),
                };
                let ty = self.plan.event_type(type_name);
                (IdHash::of(&id), id, type_name, ty, None)
            }
        };
        if self.rebuild.is_some() {
            return self.rebuild_event(event, hash, &id, type_name, ty, msg_id, preloaded, out);
        }
        if self.is_processed(hash, &id, preloaded)? {
            skipped(out, msg_id, &id, "already_processed");
            return Ok(Outcome::Skipped);
        }
        if !self.subscriptions.accepts(ty, type_name) {
            skipped(out, msg_id, &id, "not_subscribed");
            return Ok(Outcome::Skipped);
        }
        let meta = Meta {
            id: &id,
            event_type: type_name,
            position: self.position,
        };
        self.apply_new(event, (hash, &meta, ty), resolved, msg_id, out)
    }

    /// Whether this engine's unit of work leaves `event` to another unit.
    fn elsewhere(&self, event: &Event<'_>, digest: Option<&Digest<'_>>) -> bool {
        let Some(partition) = self.plan.partition() else {
            return false;
        };
        !match digest {
            Some(digest) => digest.mine,
            None => partition.takes_undigested(&self.plan, event),
        }
    }

    /// Applies an event not processed yet, of type `ty`, to the read models
    /// that react to it, with its bindings `resolved` ahead when they were;
    /// answers it.
    fn apply_new(
        &mut self,
        event: &Event<'_>,
        (hash, meta, ty): (IdHash, &Meta<'_>, Option<crate::plan::TypeId>),
        resolved: Option<&mut Result<Vec<Resolved>, ApplyError>>,
        msg_id: Option<&Raw<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, StateError> {
        let (id, type_name) = (meta.id, meta.event_type);
        let bindings = ty.map_or(&[][..], |ty| self.plan.bindings(ty));
        let mut target = Target {
            stores: &mut self.stores,
            durable: self.durable.as_deref_mut(),
            changes: &mut self.changes,
        };
        let applied = match resolved {
            // Made resident by the preload of its run of lines.
            Some(Ok(resolved)) => target.apply_preloaded(bindings, resolved),
            Some(Err(e)) => Err(e.clone()),
            None => match resolve(bindings, event, meta) {
                Ok(mut resolved) => target.apply(bindings, &mut resolved)?,
                Err(e) => {
                    self.changes.clear();
                    Err(e)
                }
            },
        };
        if let Err(e) = applied {
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
            return Ok(Outcome::Refused);
        }
        self.journal
            .record_event(Some((id, type_name)), &self.changes)?;
        self.record_processed(hash, id);
        self.updated(out, msg_id, id);
        Ok(Outcome::Applied)
    }

    /// The reply to an applied event: the models it changed.
    fn updated(&self, out: &mut Vec<u8>, msg_id: Option<&Raw<'_>>, id: &str) {
        let names = &self.model_json;
        Reply::start(out, "read_models_updated", msg_id)
            .str("event_id", id)
            .raw_list(
                "updated_models",
                self.changes
                    .iter()
                    .map(|c| names[c.model.0 as usize].as_slice()),
            )
            .end();
    }

    fn query(
        &mut self,
        body: &Map<String, Value>,
        msg_id: Option<&Raw<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<(), StateError> {
        let malformed = |out: &mut Vec<u8>, text: &str| {
            error(out, msg_id, MALFORMED_REQUEST, text);
            Ok(())
        };
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
        let Some(key) = body.get("key") else {
            return match page_asked(body) {
                Ok((limit, after)) => self.page(model, name, limit, after.as_deref(), msg_id, out),
                Err(text) => malformed(out, &text),
            };
        };
        let Some(key) = scalar_text(key) else {
            let text = format!(
                "query: \"key\" must be a string or a number, found {}",
                type_name(key)
            );
            return malformed(out, &text);
        };
        let k = Key::new(&key);
        let doc = match &mut self.durable {
            None => self.stores[model.0 as usize].get(&k),
            Some(durable) => {
                durable.ensure(model, &k)?;
                durable.stores[model.0 as usize].get(&k)
            }
        };
        Reply::start(out, "query_result", msg_id)
            .str("model", name)
            .str("key", &key)
            .with("document", |o| match doc {
                Some(d) => json::document(o, d.iter()),
                None => o.extend_from_slice(b"null"),
            })
            .end();
        Ok(())
    }

    /// Answers a query for a page of `model`'s documents: at most `limit`,
    /// from the first key after `after`.
    fn page(
        &mut self,
        model: ModelId,
        name: &str,
        limit: usize,
        after: Option<&str>,
        msg_id: Option<&Raw<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<(), StateError> {
        let total = self.document_count(model);
        let owned;
        let mut page = match &mut self.durable {
            None => self.stores[model.0 as usize].page(after, limit.saturating_add(1)),
            Some(_) => {
                // What the state holds is all there is once everything is committed.
                self.flush()?;
                let durable = self.durable.as_mut().expect("durable");
                owned = durable.page(model, after, limit.saturating_add(1))?;
                owned.iter().map(|(k, d)| (k.as_str(), d)).collect()
            }
        };
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more {
            page.last().map(|(k, _)| *k)
        } else {
            None
        };
        Reply::start(out, "query_result", msg_id)
            .str("model", name)
            .with("documents", |o| json::documents(o, page.iter().copied()))
            .number("total", total)
            .with("next", |o| match next {
                Some(k) => json::string(o, k),
                None => o.extend_from_slice(b"null"),
            })
            .end();
        Ok(())
    }
}

/// The page a query without a key asks for: its `limit` (cut to
/// [`MAX_LIST_LIMIT`]) and the key it starts `after`; or what is wrong.
fn page_asked(body: &Map<String, Value>) -> Result<(usize, Option<Cow<'_, str>>), String> {
    let limit = match body.get("limit") {
        None => Some(DEFAULT_LIST_LIMIT),
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Some(_) => None,
    };
    let Some(limit) = limit.filter(|l| *l >= 1) else {
        return Err(format!(
            "query: \"limit\" must be a whole number from 1 to {MAX_LIST_LIMIT} (a larger one is cut to {MAX_LIST_LIMIT})"
        ));
    };
    let after = match body.get("after") {
        None | Some(Value::Null) => None,
        Some(v) => match scalar_text(v) {
            Some(after) => Some(after),
            None => return Err("query: \"after\" must be a key (a string or a number)".to_owned()),
        },
    };
    Ok((limit.min(MAX_LIST_LIMIT) as usize, after))
}

/// Documents read from a state by a dump, a page at a time.
const DUMP_PAGE: usize = 1000;

/// Why a dump could not be written.
#[derive(Debug)]
pub enum DumpError {
    State(StateError),
    Io(std::io::Error),
}

impl From<StateError> for DumpError {
    fn from(e: StateError) -> Self {
        DumpError::State(e)
    }
}

impl From<std::io::Error> for DumpError {
    fn from(e: std::io::Error) -> Self {
        DumpError::Io(e)
    }
}

impl std::fmt::Display for DumpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DumpError::State(e) => write!(f, "{e}"),
            DumpError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Where an event's writes go: the stores in memory, or the cache of a
/// state, whose documents are made resident first.
pub(crate) struct Target<'e> {
    pub stores: &'e mut Vec<MemoryStore>,
    pub durable: Option<&'e mut Durable>,
    pub changes: &'e mut Vec<Change>,
}

impl Target<'_> {
    /// Checks and writes `resolved` (see [`apply_resolved`]); a failure
    /// to read the state is the outer error.
    pub fn apply(
        &mut self,
        bindings: &[Binding],
        resolved: &mut [Resolved],
    ) -> Result<Result<(), ApplyError>, StateError> {
        let Some(durable) = self.durable.as_deref_mut() else {
            return Ok(apply_resolved(
                bindings,
                resolved,
                self.stores,
                self.changes,
            ));
        };
        for r in resolved.iter() {
            let (model, key) = r.document(bindings);
            durable.ensure(model, key)?;
        }
        Ok(self.apply_preloaded(bindings, resolved))
    }

    /// [`Target::apply`] of an event whose documents are resident: one
    /// [`Engine::preload`] read them.
    pub fn apply_preloaded(
        &mut self,
        bindings: &[Binding],
        resolved: &mut [Resolved],
    ) -> Result<(), ApplyError> {
        let Some(durable) = self.durable.as_deref_mut() else {
            return apply_resolved(bindings, resolved, self.stores, self.changes);
        };
        let applied = apply_resolved(bindings, resolved, &mut durable.stores, self.changes);
        if applied.is_ok() {
            durable.wrote(self.changes);
        }
        applied
    }
}

/// The reply to an event that was not applied, and why.
fn skipped(out: &mut Vec<u8>, msg_id: Option<&Raw<'_>>, id: &str, reason: &str) {
    Reply::start(out, "event_skipped", msg_id)
        .str("event_id", id)
        .str("reason", reason)
        .end();
}
