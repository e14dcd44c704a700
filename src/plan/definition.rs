//! A read model's definition, and the event-id rule, as canonical text, so
//! that a stored state can tell what changed since it was written.

use super::binding::{Action, Binding, FieldMap, Missing, Source};
use super::{ModelId, Plan};
use serde_json::{json, Map, Value};

impl Plan {
    /// The model's name, keys, bindings and mappings as compact JSON, with
    /// event types in sorted order: the same for the same meaning, however
    /// the TOML is laid out.
    pub fn model_definition(&self, model: ModelId) -> String {
        let mut on = Map::new();
        for (ty, bindings) in self.type_names.iter().zip(&self.routes) {
            for b in bindings.iter().filter(|b| b.model == model) {
                on.insert(ty.clone(), binding(b));
            }
        }
        json!({"name": self.model_name(model), "on": on}).to_string()
    }

    /// The event-id rule as compact JSON: `{"path": ..., "derive": null}`,
    /// or with `derive` as `{"from", "pattern", "template"}`. It can be
    /// compiled again ([`super::event_id::EventIdRule::from_definition`]).
    pub fn event_id_definition(&self) -> String {
        let rule = &self.event_id;
        let derive = rule.derive.as_ref().map(|d| {
            json!({"from": d.from.as_str(), "pattern": d.pattern.as_str(), "template": d.template})
        });
        json!({"path": rule.path.as_str(), "derive": derive}).to_string()
    }
}

fn binding(b: &Binding) -> Value {
    let mut out = Map::new();
    out.insert("key".into(), b.key.as_str().into());
    out.insert("optional".into(), b.optional.into());
    let when: Vec<Value> = b
        .when
        .iter()
        .map(|c| json!([c.path.as_str(), format!("{:?}", c.test)]))
        .collect();
    out.insert("when".into(), when.into());
    match &b.action {
        Action::Delete => {
            out.insert("delete".into(), true.into());
        }
        Action::Write { put, ops, unset } => {
            if let Some(put) = put {
                out.insert("put".into(), fields(put.iter().map(|f| ("put", f))));
            }
            out.insert(
                "ops".into(),
                fields(ops.iter().map(|(op, f)| (op.name(), f))),
            );
            let unset: Vec<&str> = unset.iter().map(|f| f.text.as_str()).collect();
            out.insert("unset".into(), unset.into());
        }
    }
    Value::Object(out)
}

fn fields<'a>(fields: impl Iterator<Item = (&'static str, &'a FieldMap)>) -> Value {
    let mut out: Vec<Value> = fields
        .map(|(op, f)| {
            let source = match &f.source {
                Source::Path(p) => json!({"path": p.as_str()}),
                Source::Literal(v) => json!({"value": v}),
                Source::Meta(m) => json!({"meta": m.word()}),
            };
            let missing = match f.missing {
                Missing::Skip => "skip",
                Missing::Null => "null",
                Missing::Fail => "fail",
            };
            json!([f.field.text, op, source, missing])
        })
        .collect();
    out.sort_by(|a, b| a[0].as_str().cmp(&b[0].as_str()));
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    fn definitions(toml: &str) -> Vec<String> {
        let plan = crate::load(toml).unwrap().0;
        (0..plan.model_count())
            .map(|i| plan.model_definition(super::ModelId(i as u32)))
            .collect()
    }

    #[test]
    fn layout_does_not_change_a_definition_but_meaning_does() {
        let a = definitions(
            "[[model]]\nname = \"m\"\nkey = \"$.payload.id\"\non.B = { delete = true }\non.A = { merge = { x = \"$.payload.x\", y = 1 } }\n",
        );
        let b = definitions(
            "[[model]]\nname = \"m\"\n[model.on.A]\nkey = \"$.payload.id\"\nmerge = { y = 1, x = \"$.payload.x\" }\n[model.on.B]\nkey = \"$.payload.id\"\ndelete = true\n",
        );
        let c = definitions(
            "[[model]]\nname = \"m\"\nkey = \"$.payload.id\"\non.B = { delete = true }\non.A = { merge = { x = \"$.payload.x\", y = 2 } }\n",
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn the_event_id_rule_is_recorded_as_text_that_compiles_back_to_it() {
        let plan = crate::load(
            "[event_id]\npath = \"$.meta.eid\"\n[event_id.derive]\nfrom = \"$.payload.id\"\npattern = '-([0-9]+)$'\ntemplate = \"e$1\"\n[[model]]\nname = \"m\"\nkey = \"$.payload.id\"\non.A = { delete = true }\n",
        )
        .unwrap()
        .0;
        let text = plan.event_id_definition();
        assert_eq!(
            text,
            r#"{"derive":{"from":"$.payload.id","pattern":"-([0-9]+)$","template":"e$1"},"path":"$.meta.eid"}"#
        );
        let rule = super::super::event_id::EventIdRule::from_definition(&text).unwrap();
        let event = serde_json::json!({"payload": {"id": "u-42"}});
        assert_eq!(rule.resolve(&event).unwrap(), "e42");
        assert!(super::super::event_id::EventIdRule::from_definition("{\"path\": 1}").is_none());
        let default = crate::load(
            "[[model]]\nname = \"m\"\nkey = \"$.payload.id\"\non.A = { delete = true }\n",
        )
        .unwrap()
        .0;
        assert_eq!(
            default.event_id_definition(),
            r#"{"derive":null,"path":"$.id"}"#
        );
    }
}
