//! `mining.authorize`: a worker name, and in `username` mode the payout
//! group of the address it starts with.

use serde_json::Value;

use super::*;
use crate::work::groups::JoinError;

/// Answers an authorize that cannot be paid, with the reason, and counts it.
fn refuse(id: &Value, refusal: &JoinError, out: &mut Output) {
    let line = StratumError {
        code: ErrorCode::Unauthorized,
        message: refusal.to_string().into(),
    };
    out.lines.push(error(id, &line));
    out.events.push(Event::PayoutRefused {
        reason: refusal.label(),
    });
}

impl<F: Feed> Session<F> {
    /// Whether the connection's jobs pay `payout` now.
    fn mining_for(&self, payout: &Payout) -> bool {
        self.group
            .as_ref()
            .is_some_and(|m| m.group().payout.script == payout.script)
    }

    pub(super) fn authorize(
        &mut self,
        id: &Value,
        authorize: Authorize,
        now: Now,
        out: &mut Output,
    ) {
        let password_difficulty = authorize.difficulty;
        let known = self.workers.iter().any(|w| *w.name == *authorize.username);
        if !known && self.workers.len() >= MAX_WORKERS {
            let refusal = StratumError::new(
                ErrorCode::Unauthorized,
                "Too many workers on one connection",
            );
            out.lines.push(error(id, &refusal));
            return;
        }
        // A name authorized again is resolved again: the same address, its
        // group joined back if the connection mines for another now.
        let (group, fallback) = match &self.manager {
            Some(manager) => match manager.resolve(&authorize.username, self.source) {
                Ok(resolved) => (Some(resolved.group), resolved.fallback),
                Err(refusal) => return refuse(id, &refusal, out),
            },
            None => (None, None),
        };
        if !known {
            let name: Arc<str> = authorize.username.into();
            self.workers.push(Worker {
                name: name.clone(),
                payout: group.as_ref().map(|g| g.payout.clone()),
            });
            out.events.push(Event::Authorized {
                worker: name.clone(),
            });
            if let Some(why) = fallback {
                out.events.push(Event::FellBack {
                    worker: name,
                    why: why.to_string().into(),
                });
            }
        }
        out.lines.push(result(id, true));
        // The connection mines for the worker it authorized last.
        if let Some(group) = group.filter(|g| !self.mining_for(&g.payout)) {
            let moved = self.group.is_some();
            let (jobs, current) = group.feed.subscribe();
            self.latest = current;
            self.moved_to = Some(jobs);
            out.moved = true;
            // Jobs sent before (another worker's, or a resumed session's
            // parked ones) that pay another address: the next job goes out
            // with `clean_jobs`, so the miner drops them.
            let other = |sent: &SentJob| sent.job.payout.script != group.payout.script;
            if self.jobs.iter().any(other) {
                self.tip = None;
            }
            self.group = Some(Mining::new(group));
            if moved && self.phase == Phase::Authorized {
                if let Some(job) = self.latest.clone() {
                    self.send_job(job, false, out);
                }
            }
        }
        // `d=N`: this connection's start and least difficulty.
        if let Some(difficulty) = password_difficulty {
            self.set_floor(difficulty, true, now, out);
        }
        if self.phase == Phase::Subscribed {
            self.start_work(now, out);
        }
    }
}
