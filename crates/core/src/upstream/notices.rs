//! What the pool sends unasked: difficulty, jobs, a new extranonce or
//! version mask, a request to reconnect, a message. Each is checked and
//! bounded before it becomes an [`Event`]; methods NDAS does not know are
//! ignored, as a miner ignores them.

use serde_json::Value;

use super::wire::{self, bounded, protocol};
use super::REQUESTED_VERSION_MASK;
use super::{Event, Now, Refusal, UpstreamSession};
use super::{MAX_BRANCH_STEPS, MAX_COINBASE_PART_BYTES, MAX_JOB_ID_CHARS, MAX_RECONNECT_WAIT};
use crate::client::parse_notify;

/// The longest host name DNS allows.
const MAX_HOST_CHARS: usize = 253;

impl<T> UpstreamSession<T> {
    pub(super) fn notice(
        &mut self,
        method: &str,
        params: &Value,
        now: Now,
        events: &mut Vec<Event<T>>,
    ) -> Result<(), Refusal> {
        match method {
            "mining.set_difficulty" => self.set_difficulty(params, now, events),
            "mining.notify" => self.notify(params, events),
            "mining.set_extranonce" => self.set_extranonce(params, events),
            "mining.set_version_mask" => {
                let mask = wire::mask(params.get(0), "mining.set_version_mask")?;
                self.version_mask = mask & REQUESTED_VERSION_MASK;
                events.push(Event::VersionMask(self.version_mask));
                Ok(())
            }
            "client.reconnect" => {
                events.push(reconnect(params)?);
                Ok(())
            }
            "client.show_message" => {
                if let Some(text) = params.get(0).and_then(Value::as_str) {
                    events.push(Event::Message(bounded(text)));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A positive, finite difficulty; a change past the minute's allowance
    /// is a flood (each change reaches every miner's vardiff and the
    /// share path).
    fn set_difficulty(
        &mut self,
        params: &Value,
        now: Now,
        events: &mut Vec<Event<T>>,
    ) -> Result<(), Refusal> {
        let difficulty = params
            .get(0)
            .and_then(Value::as_f64)
            .filter(|d| d.is_finite() && *d > 0.0)
            .ok_or_else(|| {
                protocol("mining.set_difficulty: the difficulty is not a positive number")
            })?;
        if self.difficulty == Some(difficulty) {
            return Ok(());
        }
        let per_minute = self.settings.limits.difficulty_changes_per_minute;
        if !super::paced(&mut self.changes, per_minute, now) {
            return Err(Refusal::FloodsDifficulty(per_minute));
        }
        self.difficulty = Some(difficulty);
        events.push(Event::Difficulty(difficulty));
        Ok(())
    }

    /// A job, after the subscription (its coinbase needs the extranonce1),
    /// bounded before it is decoded.
    fn notify(&mut self, params: &Value, events: &mut Vec<Event<T>>) -> Result<(), Refusal> {
        if self.extranonce.is_none() {
            return Err(protocol("mining.notify before the subscribe answer"));
        }
        check_notify(params)?;
        let work = parse_notify(params).map_err(|e| protocol(format!("mining.notify: bad {e}")))?;
        let clean = work.clean;
        self.jobs.add(&work.job_id, clean);
        events.push(Event::Job { work, clean });
        Ok(())
    }

    /// A new extranonce1 (and size): every job before it is invalid.
    fn set_extranonce(
        &mut self,
        params: &Value,
        events: &mut Vec<Event<T>>,
    ) -> Result<(), Refusal> {
        if self.extranonce.is_none() {
            return Err(protocol(
                "mining.set_extranonce before the subscribe answer",
            ));
        }
        let needed = self.settings.min_extranonce2;
        let (extranonce1, extranonce2_size) = wire::extranonce(
            params.get(0),
            params.get(1),
            needed,
            "mining.set_extranonce",
        )?;
        self.jobs.clear();
        self.extranonce = Some((extranonce1.clone(), extranonce2_size));
        events.push(Event::Extranonce {
            extranonce1,
            extranonce2_size,
        });
        Ok(())
    }
}

/// The bounds on a `mining.notify`'s params, checked before anything is
/// decoded: the job id, the merkle branch and the coinbase halves.
fn check_notify(params: &Value) -> Result<(), Refusal> {
    let params = params
        .as_array()
        .filter(|p| p.len() >= 9)
        .ok_or_else(|| protocol("mining.notify: fewer than 9 params"))?;
    let job_id = params[0]
        .as_str()
        .ok_or_else(|| protocol("mining.notify: the job id is not a string"))?;
    if job_id.is_empty() || job_id.len() > MAX_JOB_ID_CHARS {
        return Err(protocol(format!(
            "mining.notify: a job id of {} characters (1 to {MAX_JOB_ID_CHARS})",
            job_id.len()
        )));
    }
    if !job_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(protocol("mining.notify: a job id with spaces or controls"));
    }
    for (i, half) in [(2, "coinb1"), (3, "coinb2")] {
        let length = params[i].as_str().map_or(0, str::len);
        if length > 2 * MAX_COINBASE_PART_BYTES {
            return Err(protocol(format!(
                "mining.notify: {half} is over {MAX_COINBASE_PART_BYTES} bytes"
            )));
        }
    }
    let steps = params[4].as_array().map_or(0, Vec::len);
    if steps > MAX_BRANCH_STEPS {
        return Err(protocol(format!(
            "mining.notify: a merkle branch of {steps} steps (at most {MAX_BRANCH_STEPS})"
        )));
    }
    Ok(())
}

/// `client.reconnect [host, port, wait]`, each optional: no host means
/// where NDAS is now; ckpool sends the port as a string, others as a
/// number; the wait is in seconds, cut to [`MAX_RECONNECT_WAIT`].
fn reconnect<T>(params: &Value) -> Result<Event<T>, Refusal> {
    let host = match params.get(0) {
        None | Some(Value::Null) => None,
        Some(Value::String(host)) if host.is_empty() => None,
        Some(Value::String(host))
            if host.len() <= MAX_HOST_CHARS && host.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Some(host.clone())
        }
        Some(_) => return Err(protocol("client.reconnect: the host is not a host name")),
    };
    let port = match params.get(1) {
        None | Some(Value::Null) => None,
        Some(given) => {
            let port = match given {
                Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
                Value::String(s) => s.trim().parse::<u16>().ok(),
                _ => None,
            };
            let port = port.filter(|p| *p != 0);
            Some(port.ok_or_else(|| protocol("client.reconnect: the port is not 1 to 65535"))?)
        }
    };
    let wait = match params.get(2) {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| protocol("client.reconnect: the wait is not whole seconds"))?,
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| protocol("client.reconnect: the wait is not whole seconds"))?,
        Some(_) => return Err(protocol("client.reconnect: the wait is not whole seconds")),
    };
    Ok(Event::Reconnect {
        host,
        port,
        wait: std::time::Duration::from_secs(wait).min(MAX_RECONNECT_WAIT),
    })
}
