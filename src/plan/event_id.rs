//! How an event's id is found: a path into the event, and an optional rule
//! that derives an id from another field when the event carries none.

use super::path::JsonPath;
use crate::value::event::Event;
use regex::Regex;
use serde_json::Value;
use std::borrow::Cow;

#[derive(Debug, Clone)]
pub struct EventIdRule {
    pub path: JsonPath,
    pub derive: Option<Derive>,
}

/// `id = template` filled from the captures of `pattern` matched against `from`.
#[derive(Debug, Clone)]
pub struct Derive {
    pub from: JsonPath,
    pub pattern: Regex,
    pub template: String,
}

/// Why an event has no usable id.
#[derive(Debug, Clone, PartialEq)]
pub enum IdError {
    /// The id field holds something that is not a string or a number.
    NotScalar { path: String, found: &'static str },
    /// No id, and none could be derived.
    Missing {
        path: String,
        derive: Option<String>,
    },
}

impl std::fmt::Display for IdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdError::NotScalar { path, found } => {
                write!(
                    f,
                    "the event id at {path} must be a string or a number, found {found}"
                )
            }
            IdError::Missing { path, derive: None } => {
                write!(f, "the event has no id at {path}")
            }
            IdError::Missing {
                path,
                derive: Some(why),
            } => write!(f, "the event has no id at {path}, and {why}"),
        }
    }
}

impl EventIdRule {
    /// The rule a [`crate::plan::Plan::event_id_definition`] text describes;
    /// `None` when the text is not one.
    pub fn from_definition(text: &str) -> Option<EventIdRule> {
        let rule: Value = serde_json::from_str(text).ok()?;
        let path = JsonPath::parse(rule.get("path")?.as_str()?).ok()?;
        let derive = match rule.get("derive")? {
            Value::Null => None,
            d => Some(Derive {
                from: JsonPath::parse(d.get("from")?.as_str()?).ok()?,
                pattern: Regex::new(d.get("pattern")?.as_str()?).ok()?,
                template: d.get("template")?.as_str()?.to_owned(),
            }),
        };
        Some(EventIdRule { path, derive })
    }

    /// The id of `event`, found or derived.
    pub fn resolve<'e>(&self, event: &'e Value) -> Result<Cow<'e, str>, IdError> {
        self.resolve_event(&Event::from(event))
    }

    /// [`Self::resolve`] for an event as the interpreter reads it.
    pub fn resolve_event<'a>(&self, event: &Event<'a>) -> Result<Cow<'a, str>, IdError> {
        match self.path.text(event) {
            Ok(None) => {}
            Ok(Some(id)) => return Ok(id),
            Err(found) => {
                return Err(IdError::NotScalar {
                    path: self.path.as_str().to_owned(),
                    found,
                })
            }
        }
        let missing = |derive: Option<String>| IdError::Missing {
            path: self.path.as_str().to_owned(),
            derive,
        };
        let Some(d) = &self.derive else {
            return Err(missing(None));
        };
        let source = match d.from.text(event) {
            Ok(Some(s)) => s,
            Ok(None) | Err(_) => {
                return Err(missing(Some(format!(
                    "none can be derived: {} is not a string or number",
                    d.from.as_str()
                ))))
            }
        };
        match d.pattern.captures(&source) {
            Some(caps) => {
                let mut id = String::new();
                caps.expand(&d.template, &mut id);
                Ok(Cow::Owned(id))
            }
            None => Err(missing(Some(format!(
                "none can be derived: {} = \"{}\" does not match /{}/",
                d.from.as_str(),
                source,
                d.pattern.as_str()
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(derive: bool) -> EventIdRule {
        EventIdRule {
            path: JsonPath::parse("$.id").unwrap(),
            derive: derive.then(|| Derive {
                from: JsonPath::parse("$.payload.id").unwrap(),
                pattern: Regex::new(r"-(\d+)$").unwrap(),
                template: "evt-$1".to_owned(),
            }),
        }
    }

    #[test]
    fn a_carried_id_wins() {
        let e = json!({"id": "evt-9", "payload": {"id": "user-1"}});
        assert_eq!(rule(true).resolve(&e).unwrap(), "evt-9");
        assert_eq!(rule(true).resolve(&json!({"id": 42})).unwrap(), "42");
    }

    #[test]
    fn an_absent_id_is_derived() {
        let e = json!({"payload": {"id": "user-123"}});
        assert_eq!(rule(true).resolve(&e).unwrap(), "evt-123");
        assert_eq!(
            rule(true)
                .resolve(&json!({"id": null, "payload": {"id": "a-7"}}))
                .unwrap(),
            "evt-7"
        );
    }

    #[test]
    fn no_id_and_nothing_to_derive_is_an_error() {
        assert_eq!(
            rule(false)
                .resolve(&json!({"payload": {}}))
                .unwrap_err()
                .to_string(),
            "the event has no id at $.id"
        );
        assert_eq!(
            rule(true).resolve(&json!({"payload": {"id": "anna"}})).unwrap_err().to_string(),
            "the event has no id at $.id, and none can be derived: $.payload.id = \"anna\" does not match /-(\\d+)$/"
        );
        assert!(matches!(
            rule(true).resolve(&json!({"id": {"a": 1}})),
            Err(IdError::NotScalar { .. })
        ));
    }
}
