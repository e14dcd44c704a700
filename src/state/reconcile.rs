//! A configuration compared with what a state holds, like a migration plan:
//! per read model, unchanged, changed, new or removed, and whether the
//! event-id rule changed; what each difference needs before events may be
//! applied, and whether the flags given (`--rebuild`, `--rebuild-all`,
//! `--drop`) do it. `projector plan` prints this; `run` and `replay` refuse
//! to start while a difference is left unresolved, so that no read model is
//! served, dropped or deduplicated by rules other than those it was built by.

use super::stored::Stored;
use crate::plan::{ModelId, Plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unchanged,
    Changed,
    /// Configured, and not in the state (for the event-id rule: a state
    /// that has recorded none).
    New,
    /// In the state, and no longer configured.
    Removed,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Unchanged => "unchanged",
            Status::Changed => "changed",
            Status::New => "new",
            Status::Removed => "removed",
        }
    }
}

/// What a difference needs before events may be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Nothing,
    /// The configured definition is recorded when a run starts: rebuilding
    /// would change nothing, since the model has no documents and no event
    /// of its types was processed (or, for the event-id rule, no event at all).
    Record,
    /// A rebuild from the event log (`replay --rebuild`): the model's
    /// documents were built by another definition, or every model's, when
    /// the processed ids were found by another event-id rule.
    Rebuild,
    /// A backfill from the event log (`replay --rebuild`): a new model
    /// whose event types have processed events.
    Backfill,
    /// Its documents dropped (`--drop`).
    Drop,
}

impl Need {
    /// Whether it takes a command: rebuilding, backfilling or dropping.
    pub fn is_action(self) -> bool {
        matches!(self, Need::Rebuild | Need::Backfill | Need::Drop)
    }

    pub fn word(self) -> Option<&'static str> {
        match self {
            Need::Nothing => None,
            Need::Record => Some("record"),
            Need::Rebuild => Some("rebuild"),
            Need::Backfill => Some("backfill"),
            Need::Drop => Some("drop"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModelPlan {
    pub name: String,
    /// Its place in the configuration; `None` when removed.
    pub id: Option<ModelId>,
    pub status: Status,
    pub documents: u64,
    /// Processed events of the types it reacts to, as configured.
    pub processed: u64,
    pub need: Need,
    /// Whether the flags given do what it needs (or it needs nothing).
    pub resolved: bool,
}

#[derive(Debug, Clone)]
pub struct RulePlan {
    /// `Unchanged`, `Changed`, or `New` for a state that records none.
    pub status: Status,
    pub stored: Option<String>,
    pub configured: String,
    /// Every processed event id, found by the stored rule.
    pub processed: u64,
    /// `Nothing`, `Record`, or `Rebuild`: every model rebuilt from the
    /// log, and the processed ids found anew by the configured rule.
    pub need: Need,
    pub resolved: bool,
}

#[derive(Debug, Clone)]
pub struct Reconciliation {
    pub event_id: RulePlan,
    /// Configured models in declaration order, then removed ones by name.
    pub models: Vec<ModelPlan>,
}

/// What a command was asked to do about the differences.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Models to rebuild (or backfill) from the log.
    pub rebuild: Vec<String>,
    /// Rebuild every model, and find the processed ids anew.
    pub rebuild_all: bool,
    /// Removed models whose documents to drop.
    pub drop: Vec<String>,
}

/// A flag that names a model it cannot apply to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// `--rebuild` of a model the configuration does not declare.
    #[error("--rebuild {0}: the configuration declares no read model \"{0}\"")]
    UnknownModel(String),
    /// `--drop` of a model that is not a removed one in the state.
    #[error("--drop {name}: {}", match .configured {
        true => format!("\"{name}\" is still configured; only a model removed from the configuration can be dropped"),
        false => format!("the state holds no read model \"{name}\""),
    })]
    NotRemoved { name: String, configured: bool },
}

impl Reconciliation {
    /// Compares `plan` with what `stored` holds, and says of each
    /// difference whether `request` resolves it. A request that names a
    /// model it cannot apply to is refused.
    pub fn new(
        plan: &Plan,
        stored: &Stored,
        request: &Request,
    ) -> Result<Reconciliation, RequestError> {
        check_request(plan, stored, request)?;
        let event_id = rule_plan(plan, stored, request);
        let rekey = event_id.need == Need::Rebuild;
        let mut models: Vec<ModelPlan> = (0..plan.model_count() as u32)
            .map(|id| model_plan(plan, stored, request, ModelId(id), rekey))
            .collect();
        for name in stored.definitions.keys() {
            if plan.model_by_name(name).is_some() {
                continue;
            }
            models.push(ModelPlan {
                name: name.clone(),
                id: None,
                status: Status::Removed,
                documents: stored.documents_of(name),
                processed: 0,
                need: Need::Drop,
                resolved: request.drop.contains(name),
            });
        }
        Ok(Reconciliation { event_id, models })
    }

    /// Whether anything takes a command before a run may start.
    pub fn needs_action(&self) -> bool {
        self.event_id.need.is_action() || self.models.iter().any(|m| m.need.is_action())
    }

    /// Whether the flags given resolve every difference.
    pub fn is_resolved(&self) -> bool {
        self.event_id.resolved && self.models.iter().all(|m| m.resolved)
    }

    /// Whether the processed ids are to be found anew by the configured
    /// event-id rule (which takes a rebuild of every model).
    pub fn rekeys(&self) -> bool {
        self.event_id.need == Need::Rebuild
    }

    /// The removed models whose documents are dropped.
    pub fn dropped(&self) -> impl Iterator<Item = &ModelPlan> {
        self.models
            .iter()
            .filter(|m| m.need == Need::Drop && m.resolved)
    }
}

/// Refuses a `--rebuild` of a model the configuration does not declare and
/// a `--drop` of one that is not a removed model in the state.
fn check_request(plan: &Plan, stored: &Stored, request: &Request) -> Result<(), RequestError> {
    for name in &request.rebuild {
        if plan.model_by_name(name).is_none() {
            return Err(RequestError::UnknownModel(name.clone()));
        }
    }
    for name in &request.drop {
        let removed = stored.definitions.contains_key(name) && plan.model_by_name(name).is_none();
        if !removed {
            let configured = plan.model_by_name(name).is_some();
            return Err(RequestError::NotRemoved {
                name: name.clone(),
                configured,
            });
        }
    }
    Ok(())
}

/// The configured event-id rule compared with the stored one.
fn rule_plan(plan: &Plan, stored: &Stored, request: &Request) -> RulePlan {
    let configured = plan.event_id_definition();
    let processed_total = stored.processed_total();
    let (status, need) = match &stored.event_id {
        None => (Status::New, Need::Record),
        Some(rule) if *rule == configured => (Status::Unchanged, Need::Nothing),
        Some(_) if processed_total == 0 => (Status::Changed, Need::Record),
        Some(_) => (Status::Changed, Need::Rebuild),
    };
    RulePlan {
        status,
        stored: stored.event_id.clone(),
        configured,
        processed: processed_total,
        need,
        resolved: need != Need::Rebuild || request.rebuild_all,
    }
}

/// A configured model compared with what the state holds of it; `rekey`:
/// the event-id rule changed, so that every model is rebuilt.
fn model_plan(
    plan: &Plan,
    stored: &Stored,
    request: &Request,
    id: ModelId,
    rekey: bool,
) -> ModelPlan {
    let name = plan.model_name(id);
    let documents = stored.documents_of(name);
    let processed = stored.processed_of(plan.model_types(id));
    let definition = plan.model_definition(id);
    let old = stored.definitions.get(name).map(String::as_str);
    let (status, need) = model_status(old, &definition, documents, processed, rekey);
    let rebuilt = request.rebuild_all || request.rebuild.iter().any(|r| r == name);
    ModelPlan {
        name: name.to_owned(),
        id: Some(id),
        status,
        documents,
        processed,
        need,
        resolved: !need.is_action() || rebuilt,
    }
}

/// How a configured model differs from the one stored (`old`: its stored
/// definition, if any), and what that needs, from its counts alone.
fn model_status(
    old: Option<&str>,
    definition: &str,
    documents: u64,
    processed: u64,
    rekey: bool,
) -> (Status, Need) {
    let empty = documents == 0 && processed == 0;
    let (status, need) = match old {
        Some(old) if old == definition => (Status::Unchanged, Need::Nothing),
        Some(_) if empty => (Status::Changed, Need::Record),
        Some(_) => (Status::Changed, Need::Rebuild),
        None if processed == 0 => (Status::New, Need::Record),
        None => (Status::New, Need::Backfill),
    };
    let need = match need {
        Need::Nothing | Need::Record if rekey => Need::Rebuild,
        need => need,
    };
    (status, need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_needs_what_its_counts_and_the_rule_say() {
        use Need::*;
        use Status::*;
        let cases = [
            (Some("d"), 5, 5, false, (Unchanged, Nothing)),
            (Some("d"), 5, 5, true, (Unchanged, Rebuild)),
            (Some("e"), 0, 0, false, (Changed, Record)),
            (Some("e"), 0, 0, true, (Changed, Rebuild)),
            (Some("e"), 0, 1, false, (Changed, Rebuild)),
            (None, 3, 0, false, (New, Record)),
            (None, 0, 2, false, (New, Backfill)),
            (None, 0, 2, true, (New, Backfill)),
        ];
        for (old, documents, processed, rekey, expected) in cases {
            assert_eq!(
                model_status(old, "d", documents, processed, rekey),
                expected
            );
        }
    }

    const CONFIG: &str = r#"
[[model]]
name = "a"
key = "$.payload.id"
on.A = { merge = { x = "$.payload.x" } }

[[model]]
name = "b"
key = "$.payload.id"
on.B = { merge = { x = "$.payload.x" } }
"#;

    fn stored(plan: &Plan) -> Stored {
        let mut stored = Stored {
            event_id: Some(plan.event_id_definition()),
            ..Stored::default()
        };
        for (i, name) in plan.model_names().enumerate() {
            let def = plan.model_definition(ModelId(i as u32));
            stored.definitions.insert(name.to_owned(), def);
            stored.documents.insert(name.to_owned(), 3);
        }
        stored.processed.insert("A".to_owned(), 5);
        stored
    }

    fn needs(r: &Reconciliation) -> Vec<(String, &'static str, Option<&'static str>, bool)> {
        r.models
            .iter()
            .map(|m| (m.name.clone(), m.status.word(), m.need.word(), m.resolved))
            .collect()
    }

    #[test]
    fn an_unchanged_state_needs_nothing() {
        let plan = crate::load(CONFIG).unwrap().0;
        let r = Reconciliation::new(&plan, &stored(&plan), &Request::default()).unwrap();
        assert!(!r.needs_action() && r.is_resolved() && !r.rekeys());
        assert_eq!(r.event_id.status, Status::Unchanged);
    }

    #[test]
    fn each_difference_needs_its_command_until_a_flag_gives_it() {
        let plan = crate::load(CONFIG).unwrap().0;
        let mut old = stored(&plan);
        old.definitions.insert("a".into(), "{}".into());
        old.definitions.insert("gone".into(), "{}".into());
        old.definitions.remove("b");
        old.documents.remove("b");
        old.processed.insert("B".into(), 1);
        let r = Reconciliation::new(&plan, &old, &Request::default()).unwrap();
        assert!(r.needs_action() && !r.is_resolved());
        assert_eq!(
            needs(&r),
            [
                ("a".into(), "changed", Some("rebuild"), false),
                ("b".into(), "new", Some("backfill"), false),
                ("gone".into(), "removed", Some("drop"), false),
            ]
        );
        let request = Request {
            rebuild: vec!["a".into(), "b".into()],
            drop: vec!["gone".into()],
            ..Request::default()
        };
        let r = Reconciliation::new(&plan, &old, &request).unwrap();
        assert!(r.is_resolved());
        assert_eq!(
            r.dropped().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["gone"]
        );
    }

    #[test]
    fn differences_that_a_rebuild_would_not_change_are_recorded() {
        let plan = crate::load(CONFIG).unwrap().0;
        let mut old = stored(&plan);
        old.definitions.insert("b".into(), "{}".into());
        old.documents.insert("b".into(), 0);
        old.event_id = None;
        let r = Reconciliation::new(&plan, &old, &Request::default()).unwrap();
        assert!(!r.needs_action() && r.is_resolved());
        assert_eq!(needs(&r)[1], ("b".into(), "changed", Some("record"), true));
        assert_eq!(r.event_id.need, Need::Record);
    }

    #[test]
    fn another_event_id_rule_takes_a_rebuild_of_every_model() {
        let plan = crate::load(CONFIG).unwrap().0;
        let mut old = stored(&plan);
        old.event_id = Some("{\"path\":\"$.eid\"}".into());
        let r = Reconciliation::new(&plan, &old, &Request::default()).unwrap();
        assert!(r.rekeys() && !r.is_resolved());
        assert!(r.models.iter().all(|m| m.need == Need::Rebuild));
        let request = Request {
            rebuild: vec!["a".into(), "b".into()],
            ..Request::default()
        };
        let r = Reconciliation::new(&plan, &old, &request).unwrap();
        assert!(
            !r.is_resolved(),
            "the processed ids are found anew only by --rebuild-all"
        );
        let request = Request {
            rebuild_all: true,
            ..Request::default()
        };
        assert!(Reconciliation::new(&plan, &old, &request)
            .unwrap()
            .is_resolved());
    }

    #[test]
    fn flags_must_name_models_they_apply_to() {
        let plan = crate::load(CONFIG).unwrap().0;
        let old = stored(&plan);
        let request = |rebuild: &str, drop: &str| Request {
            rebuild: [rebuild]
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(Into::into)
                .collect(),
            drop: [drop]
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(Into::into)
                .collect(),
            rebuild_all: false,
        };
        let err = |r: Request| {
            Reconciliation::new(&plan, &old, &r)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(request("x", "")),
            "--rebuild x: the configuration declares no read model \"x\""
        );
        assert_eq!(
            err(request("", "x")),
            "--drop x: the state holds no read model \"x\""
        );
        assert!(err(request("", "a")).contains("\"a\" is still configured"));
    }
}
