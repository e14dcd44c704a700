//! How many rows a state's tables held at the last commit: written with
//! every batch, and checked when the state is read back.

use std::collections::BTreeMap;

/// How many rows each table held when the last batch committed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rows {
    pub documents: BTreeMap<String, u64>,
    pub processed: u64,
}

impl Rows {
    pub fn to_json(&self) -> String {
        serde_json::json!({"documents": self.documents, "processed_events": self.processed})
            .to_string()
    }

    pub fn from_json(text: &str) -> Option<Rows> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let documents = value
            .get("documents")?
            .as_object()?
            .iter()
            .map(|(name, n)| Some((name.clone(), n.as_u64()?)))
            .collect::<Option<_>>()?;
        let processed = value.get("processed_events")?.as_u64()?;
        Some(Rows {
            documents,
            processed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Rows;

    #[test]
    fn row_counts_read_back_as_written_and_nothing_else_reads_as_them() {
        let rows = Rows {
            documents: [("a".to_owned(), 3), ("b".to_owned(), 0)].into(),
            processed: 7,
        };
        assert_eq!(
            rows.to_json(),
            r#"{"documents":{"a":3,"b":0},"processed_events":7}"#
        );
        assert_eq!(Rows::from_json(&rows.to_json()), Some(rows));
        assert_eq!(
            Rows::from_json(r#"{"documents":{"a":-1},"processed_events":7}"#),
            None
        );
        assert_eq!(Rows::from_json(r#"{"documents":{}}"#), None);
    }
}
