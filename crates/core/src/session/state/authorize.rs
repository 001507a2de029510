//! `mining.authorize`: a worker name (its payout group is the channel's
//! to find), and `d=N` in the password.

use serde_json::Value;

use super::*;
use crate::channel::Refused;

impl<F: Feed> Session<F> {
    pub(super) fn authorize(
        &mut self,
        id: &Value,
        authorize: Authorize,
        now: Now,
        out: &mut Output,
    ) {
        let mining = self.phase == Phase::Authorized;
        let authorized = self
            .channel
            .authorize(authorize.username, mining, &mut out.events);
        match authorized {
            Ok(authorized) => {
                out.lines.push(result(id, true));
                out.moved |= authorized.moved;
                send(authorized.announce, out);
            }
            Err(Refused::TooManyWorkers) => {
                let refusal = StratumError::new(
                    ErrorCode::Unauthorized,
                    "Too many workers on one connection",
                );
                return out.lines.push(error(id, &refusal));
            }
            Err(Refused::Payout(refusal)) => {
                let line = StratumError {
                    code: ErrorCode::Unauthorized,
                    message: refusal.to_string().into(),
                };
                return out.lines.push(error(id, &line));
            }
        }
        // `d=N`: this connection's start and least difficulty.
        if let Some(difficulty) = authorize.difficulty {
            self.channel.set_floor(difficulty, true, now);
            self.announce_difficulty(out);
        }
        if self.phase == Phase::Subscribed {
            self.start_work(now, out);
        }
    }
}
