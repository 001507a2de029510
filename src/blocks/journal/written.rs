//! The templates whose transactions are in the log now: a block found on
//! one journals only its header and coinbase, and is submitted with the hex
//! kept here. Kept by the journal rather than on the template, so the core's
//! `Template` knows nothing of where it is stored.

use std::sync::{Arc, Weak};

use ndas_core::template::Template;

use super::entry::JournaledTransactions;

/// Each live template whose transactions were written, by identity. A weak
/// reference keeps the template's address from being reused while it is
/// listed, and lets its transactions go with it: gone ones are dropped at
/// the next insert, so the list is as long as the templates miners hold.
#[derive(Debug, Default)]
pub(super) struct Written(Vec<(Weak<Template>, JournaledTransactions)>);

impl Written {
    /// Where `template`'s transactions are in the log, if they are.
    pub fn get(&self, template: &Arc<Template>) -> Option<&JournaledTransactions> {
        let wanted = Arc::as_ptr(template);
        self.0
            .iter()
            .find(|(listed, _)| listed.as_ptr() == wanted)
            .map(|(_, transactions)| transactions)
    }

    /// Lists `template` (once: a second write of the same one is a no-op).
    pub fn insert(&mut self, template: &Arc<Template>, transactions: JournaledTransactions) {
        self.0.retain(|(listed, _)| listed.strong_count() > 0);
        if self.get(template).is_none() {
            self.0.push((Arc::downgrade(template), transactions));
        }
    }
}
