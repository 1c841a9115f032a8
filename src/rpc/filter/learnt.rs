//! The UUID → name map, learnt only from the daemon's answers (listings, lookups, stats,
//! events), never from what a client sends. A UUID not in it is a domain the key has not
//! reached; an entry serves a read while it is [`FRESH`], and the map is bounded by
//! [`MAX_LEARNT`].

use std::time::Instant;

use crate::rpc::remote::{Domain, Uuid};

use super::{FRESH, Filter, MAX_LEARNT};

/// The name the daemon gave a UUID, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Learnt {
    pub(super) name: String,
    pub(super) at: Instant,
}

impl Filter {
    /// Whether the name the daemon gave this UUID is known (for tests and the fuzzer's
    /// invariant).
    pub fn learnt_name(&self, uuid: &Uuid) -> Option<&str> {
        self.learnt.get(uuid).map(|l| l.name.as_str())
    }

    pub(super) fn known_name(&self, uuid: &Uuid) -> Option<String> {
        self.learnt.get(uuid).map(|l| l.name.clone())
    }

    pub(super) fn learn(&mut self, dom: &Domain, now: Instant) {
        if self.learnt.len() >= MAX_LEARNT && !self.learnt.contains_key(&dom.uuid) {
            // Forget what is stale first; if all is fresh, forget all: a forgotten UUID
            // is only asked again.
            self.learnt
                .retain(|_, l| now.saturating_duration_since(l.at) < FRESH);
            if self.learnt.len() >= MAX_LEARNT {
                self.learnt.clear();
            }
        }
        self.learnt.insert(
            dom.uuid,
            Learnt {
                name: dom.name.clone(),
                at: now,
            },
        );
    }
}
