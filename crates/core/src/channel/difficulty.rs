//! A channel's difficulty: the port's bounds, the miner's floor, the user
//! agent table, vardiff, and what was last sent.

use super::{Channel, Event, Feed, Now};

impl<F: Feed> Channel<F> {
    /// `difficulty` within the pool's bounds and above this miner's floor.
    pub(crate) fn bounded(&self, difficulty: f64) -> f64 {
        let v = &self.config.vardiff;
        // The floor is within the bounds of the config it was set under; a
        // reload may have moved them since.
        let low = self.floor.map_or(v.min, |floor| floor.clamp(v.min, v.max));
        difficulty.clamp(low, v.max)
    }

    /// The miner asked for a starting difficulty (`mining.suggest_difficulty`).
    pub fn suggest_difficulty(&mut self, difficulty: f64, now: Now) {
        self.asked = true;
        self.difficulty = self.bounded(difficulty);
        self.vardiff.reset(now.instant);
    }

    /// Sets the miner's floor (and raises its difficulty to it); `start`
    /// when it is a start as well (`d=N`).
    pub fn set_floor(&mut self, floor: f64, start: bool, now: Now) {
        self.floor = Some(floor);
        // `d=N` is a start as well; a floor alone leaves the table's start.
        self.asked |= start;
        self.difficulty = self.bounded(if start { floor } else { self.difficulty });
        self.vardiff.reset(now.instant);
    }

    /// A known family's start instead of the port's (unless the miner
    /// asked for one), and its floor under any the miner set.
    pub fn start_for_agent(&mut self, agent: Option<&str>) {
        let Some(agent) = agent else {
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

    /// An accepted share: vardiff's new difficulty, when it chose one, to
    /// announce at once.
    pub(super) fn after_share(&mut self, now: Now, events: &mut Vec<Event>) -> Option<f64> {
        self.restart_stale_window(now);
        let next = self.vardiff.on_share(self.mined_at(), now.instant)?;
        self.difficulty = self.bounded(next);
        self.difficulty_to_send(true, events)
    }

    /// The difficulty the miner mines at: the one last sent, which a cap
    /// (the network's, or a pool's on its jobs) may hold below vardiff's
    /// choice. Vardiff retargets from it: from its own choice, each
    /// retarget under a cap would multiply a difficulty the miner never
    /// mined at, and a miner moved off the cap (off a pool's route, or a
    /// pool's difficulty raised) would be sent one many times too high.
    pub(super) fn mined_at(&self) -> f64 {
        self.sent_difficulty.unwrap_or(self.difficulty)
    }

    /// Starts vardiff's window again when the difficulty mined changed
    /// since it began for another reason than vardiff: shares from before
    /// and after are not one rate.
    pub(super) fn restart_stale_window(&mut self, now: Now) {
        if std::mem::take(&mut self.window_stale) {
            self.vardiff.reset(now.instant);
        }
    }

    /// The difficulty to announce now, if it is not the one last sent:
    /// vardiff's choice, capped at the network's and rounded as the port
    /// says. `vardiff` when vardiff chose it.
    pub fn difficulty_to_send(&mut self, vardiff: bool, events: &mut Vec<Event>) -> Option<f64> {
        let cap = self
            .latest
            .as_ref()
            .map_or(f64::INFINITY, |job| job.network_difficulty);
        let difficulty = self.config.vardiff.rounding.apply(self.difficulty.min(cap));
        if self.sent_difficulty == Some(difficulty) {
            return None;
        }
        events.push(Event::Difficulty {
            difficulty,
            vardiff,
        });
        self.window_stale |= !vardiff && self.sent_difficulty.is_some();
        self.sent_difficulty = Some(difficulty);
        Some(difficulty)
    }
}
