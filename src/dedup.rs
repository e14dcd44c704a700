//! The ids of processed events: checked before an event is applied, recorded
//! only after every write of that event has been made.

use std::collections::HashSet;

#[derive(Debug, Default)]
pub struct Processed {
    ids: HashSet<Box<str>>,
}

impl Processed {
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    pub fn record(&mut self, id: &str) {
        if !self.ids.contains(id) {
            self.ids.insert(id.into());
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}
