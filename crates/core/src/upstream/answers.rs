//! The pool's answers, by request id: the handshake's three (configure,
//! subscribe, authorize) and each submit's. An answer to an id NDAS is not
//! waiting on (a repeat, a submit already given up) is ignored.

use serde_json::{Map, Value};

use super::wire::{self, pool_error, reason};
use super::{Event, Now, Refusal, State, UpstreamSession, REQUESTED_VERSION_MASK};
use super::{AUTHORIZE_ID, CONFIGURE_ID, SUBSCRIBE_ID};

type Answer = Map<String, Value>;

/// Whether an answer says yes: `"result": true` and no error.
fn is_true(answer: &Answer) -> bool {
    let error = answer.get("error").unwrap_or(&Value::Null);
    answer.get("result") == Some(&Value::Bool(true)) && error.is_null()
}

impl<T> UpstreamSession<T> {
    pub(super) fn answer(
        &mut self,
        answer: &Answer,
        now: Now,
        events: &mut Vec<Event<T>>,
    ) -> Result<(), Refusal> {
        // NDAS's ids are numbers; a pool that echoes them otherwise answers
        // nothing NDAS asked.
        let Some(id) = answer.get("id").and_then(Value::as_u64) else {
            return Ok(());
        };
        match id {
            CONFIGURE_ID => self.configured(answer, events),
            SUBSCRIBE_ID => self.subscribed(answer, events),
            AUTHORIZE_ID => self.authorized(answer, events),
            _ => {
                self.submit_answered(id, answer, now, events);
                Ok(())
            }
        }
    }

    /// `mining.configure`'s answer: the version bits granted, within the
    /// ones asked for. A pool that does not know the method (an error, or
    /// `version-rolling: false`) grants none.
    fn configured(&mut self, answer: &Answer, events: &mut Vec<Event<T>>) -> Result<(), Refusal> {
        if std::mem::replace(&mut self.configured, true) {
            return Ok(());
        }
        let result = answer.get("result").and_then(Value::as_object);
        let granted = result.and_then(|r| r.get("version-rolling")) == Some(&Value::Bool(true));
        let mask = match result {
            Some(result) if granted => {
                let given = result.get("version-rolling.mask");
                wire::mask(given, "configure answer")? & REQUESTED_VERSION_MASK
            }
            _ => 0,
        };
        self.version_mask = mask;
        if self.state == State::Ready {
            events.push(Event::VersionMask(mask));
        }
        Ok(())
    }

    /// `mining.subscribe`'s answer: `[subscriptions, extranonce1,
    /// extranonce2_size]`, refused when the extranonce2 is too small to
    /// slice.
    fn subscribed(&mut self, answer: &Answer, events: &mut Vec<Event<T>>) -> Result<(), Refusal> {
        if self.extranonce.is_some() {
            return Ok(());
        }
        let result = match answer.get("result") {
            Some(Value::Array(result)) if answer.get("error").is_none_or(Value::is_null) => result,
            _ => return Err(Refusal::Unsubscribed(reason(answer))),
        };
        let needed = self.settings.min_extranonce2;
        let extranonce =
            wire::extranonce(result.get(1), result.get(2), needed, "subscribe answer")?;
        self.extranonce = Some(extranonce);
        if self.state == State::Connecting {
            self.state = State::Subscribed;
        }
        self.ready_if_done(events);
        Ok(())
    }

    /// `mining.authorize`'s answer: `true`, or the pool's refusal.
    fn authorized(&mut self, answer: &Answer, events: &mut Vec<Event<T>>) -> Result<(), Refusal> {
        if self.authorized {
            return Ok(());
        }
        if !is_true(answer) {
            return Err(Refusal::Unauthorized(reason(answer)));
        }
        self.authorized = true;
        self.ready_if_done(events);
        Ok(())
    }

    /// A submit's answer, credited to the tag it was sent with.
    fn submit_answered(&mut self, id: u64, answer: &Answer, now: Now, events: &mut Vec<Event<T>>) {
        let Some(submit) = self.in_flight.remove(&id) else {
            return;
        };
        let accepted = is_true(answer);
        let reason = if accepted {
            self.counts.accepted += 1;
            None
        } else {
            self.counts.rejected += 1;
            Some(pool_error(answer).unwrap_or_else(|| wire::PoolError {
                code: None,
                message: "rejected with no reason given".into(),
            }))
        };
        events.push(Event::Answered {
            tag: submit.tag,
            accepted,
            reason,
            latency: now.instant.saturating_duration_since(submit.sent),
        });
    }
}
