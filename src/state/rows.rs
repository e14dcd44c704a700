//! How many rows a state's tables held at the last commit: written with
//! every batch, and checked when the state is read back.

use std::collections::BTreeMap;

/// How many rows each table held when the last batch committed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rows {
    pub documents: BTreeMap<String, u64>,
    pub processed: u64,
    /// Processed ids per event type; `None` in a state written before they
    /// were counted (they are counted once when it is opened).
    pub types: Option<BTreeMap<String, u64>>,
}

impl Rows {
    pub fn to_json(&self) -> String {
        let mut json =
            serde_json::json!({"documents": self.documents, "processed_events": self.processed});
        if let Some(types) = &self.types {
            json["processed_types"] = serde_json::json!(types);
        }
        json.to_string()
    }

    /// The counts once a batch is committed that processed `ids` (ids and
    /// their types), leaving `totals`; `rekeyed`, the ids per type that
    /// replace the processed ones before it (a rebuild's swap).
    pub fn after<'a>(
        &self,
        models: &[String],
        totals: &super::Totals,
        ids: impl Iterator<Item = (&'a str, &'a str)>,
        rekeyed: Option<&BTreeMap<String, u64>>,
    ) -> Rows {
        let mut rows = self.clone();
        for (name, n) in models.iter().zip(&totals.documents) {
            rows.documents.insert(name.clone(), *n);
        }
        rows.processed = totals.processed;
        let types = rows.types.get_or_insert_with(BTreeMap::new);
        if let Some(rekeyed) = rekeyed {
            types.clone_from(rekeyed);
        }
        for (_, ty) in ids {
            match types.get_mut(ty) {
                Some(n) => *n += 1,
                None => {
                    types.insert(ty.to_owned(), 1);
                }
            }
        }
        rows
    }

    /// The counts once `opening` is written: the dropped models' documents
    /// gone, the recorded ones counted (none, for a new model).
    pub fn after_opening(&self, opening: &super::open::Opening) -> Rows {
        let mut rows = self.clone();
        for (name, _) in &opening.dropped {
            rows.documents.remove(name);
        }
        for (name, _) in &opening.recorded {
            rows.documents.entry(name.clone()).or_insert(0);
        }
        rows
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
        let types = match value.get("processed_types") {
            None => None,
            Some(types) => Some(
                types
                    .as_object()?
                    .iter()
                    .map(|(name, n)| Some((name.clone(), n.as_u64()?)))
                    .collect::<Option<_>>()?,
            ),
        };
        Some(Rows {
            documents,
            processed,
            types,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Rows;

    #[test]
    fn row_counts_read_back_as_written_and_nothing_else_reads_as_them() {
        let mut rows = Rows {
            documents: [("a".to_owned(), 3), ("b".to_owned(), 0)].into(),
            processed: 7,
            types: None,
        };
        assert_eq!(
            rows.to_json(),
            r#"{"documents":{"a":3,"b":0},"processed_events":7}"#
        );
        assert_eq!(Rows::from_json(&rows.to_json()), Some(rows.clone()));
        rows.types = Some([("T".to_owned(), 7)].into());
        assert_eq!(Rows::from_json(&rows.to_json()), Some(rows));
        assert_eq!(
            Rows::from_json(r#"{"documents":{"a":-1},"processed_events":7}"#),
            None
        );
        assert_eq!(Rows::from_json(r#"{"documents":{}}"#), None);
    }
}
