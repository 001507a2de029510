//! A session's difficulty: the port's bounds, the miner's floor, the user
//! agent table, and what is sent.

use super::{Event, Feed, Now, Output, Phase, Session};
use crate::stratum::notify::set_difficulty;

impl<F: Feed> Session<F> {
    /// `difficulty` within the pool's bounds and above this miner's floor.
    pub(super) fn bounded(&self, difficulty: f64) -> f64 {
        let v = &self.config.vardiff;
        // The floor is within the bounds of the config it was set under; a
        // reload may have moved them since.
        let low = self.floor.map_or(v.min, |floor| floor.clamp(v.min, v.max));
        difficulty.clamp(low, v.max)
    }

    /// Sets the miner's floor (and raises its difficulty to it); announced
    /// at once when it is mining.
    pub(super) fn set_floor(&mut self, floor: f64, start: bool, now: Now, out: &mut Output) {
        self.floor = Some(floor);
        // `d=N` is a start as well; a floor alone leaves the table's start.
        self.asked |= start;
        self.difficulty = self.bounded(if start { floor } else { self.difficulty });
        self.vardiff.reset(now.instant);
        if self.phase == Phase::Authorized {
            self.send_difficulty(false, out);
        }
    }

    /// A known family's start instead of the port's (unless the miner
    /// asked for one), and its floor under any the miner set.
    pub(super) fn start_for_agent(&mut self) {
        let Some(agent) = self.user_agent.as_deref() else {
            return;
        };
        let Some(family) = self.config.agents.iter().find(|f| f.matches(agent)) else {
            return;
        };
        let (start, min) = (family.start, family.min);
        if let Some(min) = min {
            let floor = self.floor.map_or(min, |floor| floor.max(min));
            self.floor = Some(self.bounded(floor));
        }
        let wanted = if self.asked { self.difficulty } else { start };
        self.difficulty = self.bounded(wanted);
    }

    pub(super) fn send_difficulty(&mut self, vardiff: bool, out: &mut Output) {
        let cap = self
            .latest
            .as_ref()
            .map_or(f64::INFINITY, |job| job.network_difficulty);
        let difficulty = self.config.vardiff.rounding.apply(self.difficulty.min(cap));
        if self.sent_difficulty != Some(difficulty) {
            out.lines.push(set_difficulty(difficulty));
            out.events.push(Event::Difficulty {
                difficulty,
                vardiff,
            });
            self.sent_difficulty = Some(difficulty);
        }
    }
}
