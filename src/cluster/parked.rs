//! A unit's parked events, as the main schema's `rejections` keeps them
//! (see [`crate::server::parking`]): read on a connection of their own.

use crate::server::parking::{Document, OpenRow, ParkStore};
use crate::state::postgres::client as pg;
use crate::state::postgres::text::from_column;
use crate::state::postgres::Target;
use crate::state::postgres::REJECTIONS;
use crate::state::{Rejection, RejectionStatus, StateError};
use std::sync::Mutex;

pub struct Parked {
    client: Mutex<pg::Client>,
    main: Target,
    unit: String,
}

impl Parked {
    /// The parked events of `unit`, whose rejections `main`'s schema keeps.
    pub fn open(main: Target, unit: &str) -> Result<Parked, StateError> {
        Ok(Parked {
            client: Mutex::new(main.connect()?),
            main,
            unit: unit.to_owned(),
        })
    }
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked")
            .field("state", &self.main.display())
            .field("unit", &self.unit)
            .finish()
    }
}

impl ParkStore for Parked {
    fn held(&self, limit: usize) -> Result<Vec<(Document, u64)>, StateError> {
        let sql = format!(
            "SELECT d->>0, d->>1, min(position) FROM {}.{REJECTIONS},
                    jsonb_array_elements(documents) d
             WHERE unit = $1 AND status IN ('parked', 'retry')
             GROUP BY 1, 2 LIMIT $2",
            self.main.schema_ident()
        );
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let rows = client
            .query(&sql, &[&self.unit, &(limit as i64)])
            .map_err(|e| self.main.failed("reading the parked documents", e))?;
        Ok(rows
            .iter()
            .map(|row| {
                let text = |i| from_column(row.get(i)).into_owned();
                ((text(0), text(1)), row.get::<_, i64>(2) as u64)
            })
            .collect())
    }

    fn open(&self) -> Result<u64, StateError> {
        let sql = format!(
            "SELECT count(*) FROM {}.{REJECTIONS} WHERE unit = $1 AND status IN ('parked', 'retry')",
            self.main.schema_ident()
        );
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        client
            .query_one(&sql, &[&self.unit])
            .map(|row| row.get::<_, i64>(0) as u64)
            .map_err(|e| self.main.failed("counting the parked events", e))
    }

    fn asked(&self) -> Result<bool, StateError> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {}.{REJECTIONS} WHERE unit = $1 AND status = 'retry')",
            self.main.schema_ident()
        );
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        client
            .query_one(&sql, &[&self.unit])
            .map(|row| row.get(0))
            .map_err(|e| self.main.failed("asking for retries", e))
    }

    fn open_rows(&self, limit: usize) -> Result<Vec<OpenRow>, StateError> {
        let sql = format!(
            "SELECT position, id, code, error, text, status, documents::text, behind
             FROM {}.{REJECTIONS}
             WHERE unit = $1 AND status IN ('parked', 'retry')
             ORDER BY position LIMIT $2",
            self.main.schema_ident()
        );
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let rows = client
            .query(&sql, &[&self.unit, &(limit as i64)])
            .map_err(|e| self.main.failed("reading the parked events", e))?;
        let malformed = |reason: String| StateError::NotAState {
            path: self.main.path(),
            reason,
        };
        rows.iter()
            .map(|row| {
                let documents: Vec<[String; 2]> = serde_json::from_str(row.get(6))
                    .map_err(|e| malformed(format!("{REJECTIONS}.documents: {e}")))?;
                let text = |column: &str| from_column(column).into_owned();
                let status: &str = row.get(5);
                Ok(OpenRow {
                    rejection: Rejection {
                        position: row.get::<_, i64>(0) as u64,
                        id: row.get::<_, Option<&str>>(1).map(text),
                        code: row.get(2),
                        error: text(row.get(3)),
                        text: text(row.get(4)),
                        status: RejectionStatus::Parked,
                        documents: documents
                            .iter()
                            .map(|[model, key]| (text(model), text(key)))
                            .collect(),
                        behind: row.get::<_, Option<i64>>(7).map(|b| b as u64),
                    },
                    retry: status == "retry",
                })
            })
            .collect()
    }
}
