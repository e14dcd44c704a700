//! How many units a cluster works on, said one way by the logs, `projector
//! status` and `projector plan`: the serving version's units and the
//! version being built's, each unit once (a unit whose definition did not
//! change is shared by both versions, in one schema), and how many of them
//! are being built (in a schema the serving version does not have).

use super::registry::{Listed, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Units, each once.
    pub units: usize,
    /// Of them, the units only the version being built has.
    pub building: usize,
}

impl Tally {
    /// The units of the serving version and of the one being built.
    pub fn of(serving: &[Listed], building: &[Listed]) -> Tally {
        let built = building
            .iter()
            .filter(|b| !serving.iter().any(|s| s.schema == b.schema))
            .count();
        Tally {
            units: serving.len() + built,
            building: built,
        }
    }

    /// The units only the version being built has: those it builds.
    pub fn built<'a>(serving: &[Listed], building: &'a [Listed]) -> Vec<&'a Listed> {
        building
            .iter()
            .filter(|b| !serving.iter().any(|s| s.schema == b.schema))
            .collect()
    }
}

/// What the coordinator says of the versions it works on: `serving
/// version 1 of the configuration: 6 units, 1 of them being built: A, B;
/// building version 2 beside it: C (each from its checkpoint: …)`, with the
/// names of the units it serves and of those it builds.
pub fn said(versions: &[Version], serving: &[&str], built: &[&str]) -> String {
    let units = |building: bool| {
        versions
            .iter()
            .find(|v| v.building == building)
            .map_or(&[][..], |v| &v.units[..])
    };
    let mut text = format!(
        "serving version {} of the configuration: {}: {}",
        versions
            .iter()
            .find(|v| !v.building)
            .map_or(0, |v| v.number),
        Tally::of(units(false), units(true)),
        serving.join(", ")
    );
    if let Some(building) = versions.iter().find(|v| v.building) {
        text.push_str(&format!(
            "; building version {} beside it: {} (each from its checkpoint: the stream's start for a new one)",
            building.number,
            built.join(", ")
        ));
    }
    text
}

impl std::fmt::Display for Tally {
    /// `5 units`, `6 units, 1 of them being built`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let units = match self.units {
            1 => "1 unit".to_owned(),
            n => format!("{n} units"),
        };
        match self.building {
            0 => write!(f, "{units}"),
            n => write!(f, "{units}, {n} of them being built"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, schema: &str) -> Listed {
        Listed {
            name: name.to_owned(),
            schema: schema.to_owned(),
            models: vec![name.to_owned()],
        }
    }

    #[test]
    fn a_unit_both_versions_have_is_counted_once() {
        let serving = [unit("a", "s_a_1"), unit("b", "s_b_1")];
        let building = [unit("a", "s_a_1"), unit("b", "s_b_2"), unit("c", "s_c_2")];
        let tally = Tally::of(&serving, &building);
        assert_eq!(tally.to_string(), "4 units, 2 of them being built");
        let built: Vec<&str> = Tally::built(&serving, &building)
            .iter()
            .map(|u| u.schema.as_str())
            .collect();
        assert_eq!(built, ["s_b_2", "s_c_2"]);
        assert_eq!(Tally::of(&serving, &[]).to_string(), "2 units");
        assert_eq!(Tally::of(&serving[..1], &[]).to_string(), "1 unit");
    }

    #[test]
    fn the_coordinator_says_both_versions_in_one_line() {
        let version = |number, building, units: &[Listed]| Version {
            number,
            config: String::new(),
            building,
            views: !building,
            units: units.to_vec(),
        };
        let serving = [unit("a", "s_a_1"), unit("b", "s_b_1")];
        let building = [unit("a", "s_a_1"), unit("b", "s_b_2")];
        let versions = [version(1, false, &serving), version(2, true, &building)];
        assert_eq!(
            said(&versions, &["a", "b"], &["b"]),
            "serving version 1 of the configuration: 3 units, 1 of them being built: a, b; building version 2 beside it: b (each from its checkpoint: the stream's start for a new one)"
        );
        assert_eq!(
            said(&versions[..1], &["a", "b"], &[]),
            "serving version 1 of the configuration: 2 units: a, b"
        );
    }
}
