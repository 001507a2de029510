//! `mining.authorize`: a worker name, and in `username` mode the payout
//! group of the address it starts with.

use serde_json::Value;

use super::*;

impl Session {
    pub(super) fn authorize(
        &mut self,
        id: &Value,
        authorize: Authorize,
        now: Now,
        out: &mut Output,
    ) {
        let password_difficulty = authorize.difficulty;
        let known = self
            .workers
            .iter()
            .find(|w| *w.name == *authorize.username)
            .map(|w| w.group.clone());
        let group = match known {
            Some(group) => group,
            None => {
                if self.workers.len() >= MAX_WORKERS {
                    let refusal = StratumError::new(
                        ErrorCode::Unauthorized,
                        "Too many workers on one connection",
                    );
                    out.lines.push(error(id, &refusal));
                    return;
                }
                let group = match &self.manager {
                    Some(manager) => match manager.for_username(&authorize.username) {
                        Ok(group) => Some(group),
                        Err(refusal) => {
                            let refusal = StratumError {
                                code: ErrorCode::Unauthorized,
                                message: refusal.to_string().into(),
                            };
                            out.lines.push(error(id, &refusal));
                            return;
                        }
                    },
                    None => None,
                };
                let name: Arc<str> = authorize.username.into();
                self.workers.push(Worker {
                    name: name.clone(),
                    group: group.clone(),
                });
                out.events.push(Event::Authorized { worker: name });
                group
            }
        };
        out.lines.push(result(id, true));
        // The connection mines for the worker it authorized last.
        let same = |g: &Arc<Group>| {
            self.group
                .as_ref()
                .is_some_and(|now| Arc::ptr_eq(now.group(), g))
        };
        if let Some(group) = group.filter(|g| !same(g)) {
            let moved = self.group.is_some();
            let mut jobs = group.subscribe();
            self.latest = jobs.borrow_and_update().clone();
            out.group = Some(jobs);
            self.group = Some(Mining::new(group));
            if moved && self.phase == Phase::Authorized {
                // What it mines now pays another address: its old jobs
                // would only be refused for this worker.
                if let Some(job) = self.latest.clone() {
                    self.tip = None;
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
