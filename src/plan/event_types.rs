//! Event types that look misspelt. An event type is a name the bus sends
//! and the configuration repeats, in every binding and test event that names
//! it; a slip in one place (`UserCreatd`) makes a binding no event reaches.
//!
//! The rule: two names are *near* when they differ by a slip within one word
//! ([`Shape::near`] says which differences are slips and which are meant),
//! and a bound type is reported (P0107) when a near type is named in more
//! places (bindings and `[[tests]]` events counted), which is taken as the
//! one meant. Names written equally often are left alone: the file gives no
//! hint which one is meant, and two distinct types are as likely. A test
//! event whose type no binding names is already reported (P0102); its hint
//! names the near bound type ([`nearest_bound`]).

use crate::config::diag::{edit_distance, Diagnostic, Kind, Span};
use crate::config::raw::RawConfig;
use serde_json::Value;
use std::collections::HashMap;

/// One event type, the places the configuration names it, and its shape.
struct Named<'r> {
    shape: Shape<'r>,
    bound: bool,
    /// Each place, and whether it is in `[[tests]]`.
    places: Vec<(Span, bool)>,
}

/// Reports every bound event type near one named in more places.
pub fn check_misspelt(raw: &RawConfig, diags: &mut Vec<Diagnostic>) {
    let mut named: Vec<Named<'_>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let bindings = raw.models.iter().flat_map(|m| &m.on).map(|b| {
        let ty = &b.event_type;
        (ty.value.as_str(), ty.span.clone(), false)
    });
    let events = raw.tests.iter().flat_map(|t| &t.events).filter_map(|e| {
        let ty = e.value.get("type").and_then(Value::as_str)?;
        Some((ty, e.span.clone(), true))
    });
    for (name, span, in_tests) in bindings.chain(events) {
        let i = *index.entry(name).or_insert_with(|| {
            named.push(Named {
                shape: Shape::new(name),
                bound: false,
                places: Vec::new(),
            });
            named.len() - 1
        });
        named[i].bound |= !in_tests;
        named[i].places.push((span, in_tests));
    }
    for this in named.iter().filter(|n| n.bound) {
        let meant = named
            .iter()
            .filter(|other| other.bound && other.places.len() > this.places.len())
            .filter(|other| this.shape.near(&other.shape))
            .min_by_key(|other| {
                (
                    edit_distance(this.shape.name, other.shape.name),
                    std::cmp::Reverse(other.places.len()),
                )
            });
        let Some(meant) = meant else { continue };
        for (span, in_tests) in &this.places {
            let mut warning = Diagnostic::warning(
                span.clone(),
                Kind::EventTypeMisspelt {
                    event_type: this.shape.name.to_owned(),
                    nearest: meant.shape.name.to_owned(),
                    places: this.places.len(),
                    nearest_places: meant.places.len(),
                },
            );
            warning.in_tests = *in_tests;
            diags.push(warning);
        }
    }
}

/// The bound type an unbound one was likely meant to be: the nearest of
/// those near it, the first in `bound` on a tie.
pub fn nearest_bound<'b>(name: &str, bound: &[&'b str]) -> Option<&'b str> {
    let shape = Shape::new(name);
    bound
        .iter()
        .filter(|b| shape.near(&Shape::new(b)))
        .min_by_key(|b| edit_distance(name, b))
        .copied()
}

/// A name, and what comparing it with others needs, made once.
struct Shape<'a> {
    name: &'a str,
    /// Without its digits.
    letters: String,
    /// Lowercase, without punctuation.
    squashed: String,
    words: Vec<&'a str>,
}

impl<'a> Shape<'a> {
    fn new(name: &'a str) -> Self {
        Shape {
            name,
            letters: name.chars().filter(|c| !c.is_ascii_digit()).collect(),
            squashed: name
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect(),
            words: words(name),
        }
    }

    /// Whether two event types differ by a slip rather than by meaning: only
    /// in letter case or punctuation (`user.created`, `user_created`), or
    /// within one of their words (`UserCreatd`), by at most max(1, n / 4)
    /// edits, `n` being the longer word's length. That is stricter than the
    /// n / 3 compilers allow when they suggest a name for an unknown one,
    /// since here both names are in use, and real types lie close:
    /// `CartCreated` and `CartCleared` (2 edits in 7 letters). Also distinct:
    /// a whole other word (`OrderCreated`, `OrderUpdated`), a word with
    /// another first letter (`Flagged`, `Tagged`, `Unflagged`), a plural
    /// (`ItemAdded`, `ItemsAdded`), and names that differ only in digits,
    /// which are versions (`OrderPaid`, `OrderPaid2`).
    fn near(&self, other: &Shape<'_>) -> bool {
        if self.name == other.name || self.letters == other.letters {
            return false;
        }
        if self.squashed == other.squashed {
            return true;
        }
        if self.words.len() != other.words.len() {
            return false;
        }
        let mut differing = self.words.iter().zip(&other.words).filter(|(x, y)| x != y);
        let (Some((x, y)), None) = (differing.next(), differing.next()) else {
            return false;
        };
        let plural = |one: &str, other: &str| other.strip_suffix('s') == Some(one);
        if x.chars().next() != y.chars().next() || plural(x, y) || plural(y, x) {
            return false;
        }
        let longer = x.chars().count().max(y.chars().count());
        edit_distance(x, y) <= (longer / 4).max(1)
    }
}

/// The words of a name: split at punctuation, where a lowercase letter meets
/// an uppercase one, where an acronym meets a word (`HTTPRequest`), and
/// around digits.
fn words(name: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = name.char_indices().collect();
    let mut out = Vec::new();
    let mut start = None;
    for (k, &(i, c)) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if let Some(s) = start.take() {
                out.push(&name[s..i]);
            }
            continue;
        }
        let boundary = match (k.checked_sub(1).map(|p| chars[p].1), chars.get(k + 1)) {
            (Some(prev), next) if prev.is_alphanumeric() => {
                (prev.is_lowercase() && c.is_uppercase())
                    || (prev.is_ascii_digit() != c.is_ascii_digit())
                    || (prev.is_uppercase()
                        && c.is_uppercase()
                        && next.is_some_and(|&(_, n)| n.is_lowercase()))
            }
            _ => false,
        };
        match start {
            Some(s) if boundary => {
                out.push(&name[s..i]);
                start = Some(i);
            }
            Some(_) => {}
            None => start = Some(i),
        }
    }
    if let Some(s) = start {
        out.push(&name[s..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(a: &str, b: &str) -> bool {
        Shape::new(a).near(&Shape::new(b))
    }

    #[test]
    fn names_split_into_words() {
        assert_eq!(words("UserCreated"), ["User", "Created"]);
        assert_eq!(words("HTTPRequestSent"), ["HTTP", "Request", "Sent"]);
        assert_eq!(words("order_paid.v2"), ["order", "paid", "v", "2"]);
        assert_eq!(words("OrderPaid2"), ["Order", "Paid", "2"]);
        assert_eq!(words("-"), Vec::<&str>::new());
    }

    #[test]
    fn slips_are_near_and_other_words_are_not() {
        for (a, b) in [
            ("UserCreatd", "UserCreated"),
            ("UserCraeted", "UserCreated"),
            ("UserCreatedd", "UserCreated"),
            ("Usercreated", "UserCreated"),
            ("user.created", "user_created"),
            ("OrderPayd2", "OrderPaid2"),
            ("PaymentAcknowledged", "PaymentAcknowldeged"),
            ("PaymentAcknowledged", "PaymentAknowlegded"),
        ] {
            assert!(near(a, b), "{a} {b}");
            assert!(near(b, a), "{b} {a}");
        }
        for (a, b) in [
            ("OrderCreated", "OrderUpdated"),
            ("OrderCreated", "OrderDeleted"),
            ("MessageSent", "MessageSeen"),
            ("ItemAdded", "ItemEnded"),
            ("OrderPaid", "OrderPaid2"),
            ("OrderPaidV2", "OrderPaidV3"),
            ("UserCreated", "UserCreated"),
            ("UserCreated", "AccountCreated"),
            ("UserCreated", "UserCreatedTwice"),
            ("CartCreated", "CartCleared"),
            ("Flagged", "Tagged"),
            ("Flagged", "Unflagged"),
            ("ItemAdded", "ItemsAdded"),
        ] {
            assert!(!near(a, b), "{a} {b}");
        }
    }

    /// The P0107 warnings of a configuration: type, type meant, in tests.
    fn misspelt(toml: &str) -> Vec<(String, String, bool)> {
        let (_, diags) = crate::load(toml).unwrap();
        diags
            .into_iter()
            .filter_map(|d| match d.kind {
                Kind::EventTypeMisspelt {
                    event_type,
                    nearest,
                    ..
                } => Some((event_type, nearest, d.in_tests)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_spelling_named_in_fewer_places_is_the_slip() {
        let model = |name: &str, ty: &str| {
            format!("[[model]]\nname = \"{name}\"\nkey = \"$.id\"\non.{ty} = {{ delete = true }}\n")
        };
        let test =
            |ty: &str| format!("[[tests]]\nname = \"t\"\nevents = [{{ type = \"{ty}\" }}]\n");
        let slip = || ("UserCreatd".to_owned(), "UserCreated".to_owned());
        let both = model("a", "UserCreated") + &model("b", "UserCreatd");
        assert_eq!(misspelt(&both), []);
        assert_eq!(
            misspelt(&(both.clone() + &test("UserCreated"))),
            [(slip().0, slip().1, false)]
        );
        assert_eq!(
            misspelt(
                &(both.clone()
                    + &model("c", "UserCreated")
                    + &model("d", "UserCreated")
                    + &test("UserCreatd"))
            ),
            [(slip().0, slip().1, false), (slip().0, slip().1, true)]
        );
        // A type only tests send is not bound: P0102 names the type meant.
        assert_eq!(
            misspelt(&(model("a", "UserCreated") + &test("UserCreatd"))),
            []
        );
    }

    #[test]
    fn an_unbound_type_is_pointed_to_the_nearest_bound_one() {
        let bound = ["UserCreated", "UserDeleted", "OrderPaid"];
        assert_eq!(nearest_bound("UserCreatd", &bound), Some("UserCreated"));
        assert_eq!(nearest_bound("UserDeletd", &bound), Some("UserDeleted"));
        assert_eq!(nearest_bound("OrderPaid2", &bound), None);
        assert_eq!(nearest_bound("UserRenamed", &bound), None);
    }
}
