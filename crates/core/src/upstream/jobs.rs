//! The pool's recent job ids, bounded: a share is sent only on one of
//! them, since the pool would reject any other as stale.

use std::collections::VecDeque;

/// Job ids, oldest first, at most `max`.
#[derive(Debug)]
pub(super) struct Jobs {
    ids: VecDeque<String>,
    max: usize,
}

impl Jobs {
    pub(super) fn new(max: usize) -> Jobs {
        Jobs {
            ids: VecDeque::new(),
            max: max.max(1),
        }
    }

    /// Keeps `id` as the newest job; on `clean` it is the only one. A
    /// repeated id is the pool's new job under that name.
    pub(super) fn add(&mut self, id: &str, clean: bool) {
        if clean {
            self.ids.clear();
        }
        self.ids.retain(|kept| kept != id);
        if self.ids.len() >= self.max {
            self.ids.pop_front();
        }
        self.ids.push_back(id.to_owned());
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.ids.iter().any(|kept| kept == id)
    }

    /// Every job is invalid (a new extranonce1).
    pub(super) fn clear(&mut self) {
        self.ids.clear();
    }
}
