//! A worker name authorized, and in `username` mode the payout group of
//! the address it starts with.

use std::sync::Arc;

use super::{Announce, Channel, Event, Feed, SentJob, Worker, MAX_WORKERS};
use crate::work::groups::{JoinError, Mining};
use crate::work::payout::Payout;

/// Why a worker was not authorized.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The channel has [`MAX_WORKERS`] names already.
    TooManyWorkers,
    /// Its name cannot be paid, or a payout group bound is reached
    /// (reported as [`Event::PayoutRefused`]).
    Payout(JoinError),
}

/// A worker authorized.
#[derive(Debug)]
pub struct Authorized<'a> {
    /// The channel now mines for another payout group: its jobs come from
    /// [`Channel::take_moved`]'s receiver from now on.
    pub moved: bool,
    /// The new group's job, when the channel was mining already.
    pub announce: Announce<'a>,
}

impl<F: Feed> Channel<F> {
    /// Whether the channel's jobs pay `payout` now.
    fn mining_for(&self, payout: &Payout) -> bool {
        self.group
            .as_ref()
            .is_some_and(|m| m.group().payout.script == payout.script)
    }

    /// Authorizes `username` (again: a name authorized again is resolved
    /// again, its group joined back if the channel mines for another now).
    /// The channel mines for the worker it authorized last; `mining` when
    /// it is sent jobs already (the new group's goes out at once).
    pub fn authorize(
        &mut self,
        username: String,
        mining: bool,
        events: &mut Vec<Event>,
    ) -> Result<Authorized<'_>, Refused> {
        let known = self.workers.iter().any(|w| *w.name == *username);
        if !known && self.workers.len() >= MAX_WORKERS {
            return Err(Refused::TooManyWorkers);
        }
        let (group, fallback) = match &self.manager {
            Some(manager) => match manager.resolve(&username, self.source) {
                Ok(resolved) => (Some(resolved.group), resolved.fallback),
                Err(refusal) => {
                    events.push(Event::PayoutRefused {
                        reason: refusal.label(),
                    });
                    return Err(Refused::Payout(refusal));
                }
            },
            None => (None, None),
        };
        if !known {
            let name: Arc<str> = username.into();
            self.workers.push(Worker {
                name: name.clone(),
                payout: group.as_ref().map(|g| g.payout.clone()),
            });
            events.push(Event::Authorized {
                worker: name.clone(),
            });
            if let Some(why) = fallback {
                events.push(Event::FellBack {
                    worker: name,
                    why: why.to_string().into(),
                });
            }
        }
        let Some(group) = group.filter(|g| !self.mining_for(&g.payout)) else {
            return Ok(Authorized {
                moved: false,
                announce: Announce::default(),
            });
        };
        let moved = self.group.is_some();
        let (jobs, current) = group.feed.subscribe();
        self.latest = current;
        self.moved_to = Some(jobs);
        // Jobs sent before (another worker's, or a resumed session's
        // parked ones) that pay another address: the next job goes out
        // with `clean_jobs`, so the miner drops them.
        let other = |sent: &SentJob| sent.job.payout.script != group.payout.script;
        if self.jobs.iter().any(other) {
            self.tip = None;
        }
        self.group = Some(Mining::new(group));
        let announce = match self.latest.clone() {
            Some(job) if moved && mining => self.send_job(job, false, events),
            _ => Announce::default(),
        };
        Ok(Authorized {
            moved: true,
            announce,
        })
    }
}
