//! The pool's fields read and bounded once, and NDAS's requests written:
//! everything here takes another party's JSON and returns a value or a
//! [`Refusal`] that names the field.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{Refusal, UpstreamShare, MAX_EXTRANONCE1_BYTES, MAX_EXTRANONCE2_SIZE};

/// A pool's text (a reason, a message) is cut to this before it is kept:
/// it ends up in logs and the operator's pages.
const MAX_TEXT_CHARS: usize = 256;

/// Why the pool rejected something, as it said it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolError {
    /// The Stratum error code (21 stale job, 23 low difficulty, ...), when
    /// the pool gave one.
    pub code: Option<i64>,
    pub message: String,
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) => write!(f, "{} ({code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// `{"id":…,"method":…,"params":…}` and a newline.
pub(super) fn request(id: u64, method: &str, params: Value) -> Bytes {
    let mut line = json!({"id": id, "method": method, "params": params}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// `mining.submit`'s params: 5, or 6 with rolled version bits.
pub(super) fn submit_params(user: &str, share: &UpstreamShare) -> Value {
    crate::client::submit_fields(
        user,
        &share.job_id,
        &share.extranonce2,
        share.ntime,
        share.nonce,
        share.version_bits,
    )
}

pub(super) fn protocol(what: impl Into<String>) -> Refusal {
    Refusal::Protocol(what.into())
}

/// `text` cut to [`MAX_TEXT_CHARS`] characters.
pub(super) fn bounded(text: &str) -> String {
    text.chars().take(MAX_TEXT_CHARS).collect()
}

/// The error of an answer, in each shape pools send it: `[code, message,
/// traceback]` (the Stratum convention, code as a number or a string),
/// `{"code", "message"}`, a bare string, or ckpool's `reject-reason` beside
/// a `false` result. `None` when the answer carries none.
pub(super) fn pool_error(answer: &Map<String, Value>) -> Option<PoolError> {
    let code = |value: Option<&Value>| match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(bounded);
    let reject_reason = text(answer.get("reject-reason"));
    let error = match answer.get("error") {
        Some(Value::Array(parts)) => Some(PoolError {
            code: code(parts.first()),
            message: text(parts.get(1)).unwrap_or_default(),
        }),
        Some(Value::Object(fields)) => Some(PoolError {
            code: code(fields.get("code")),
            message: text(fields.get("message")).unwrap_or_default(),
        }),
        Some(Value::String(message)) => Some(PoolError {
            code: None,
            message: bounded(message),
        }),
        _ => None,
    };
    match (error, reject_reason) {
        (Some(error), _) if !error.message.is_empty() => Some(error),
        (Some(error), Some(reason)) => Some(PoolError {
            message: reason,
            ..error
        }),
        (None, Some(reason)) => Some(PoolError {
            code: None,
            message: reason,
        }),
        (error, None) => error,
    }
}

/// A pool's reason for refusing, or a plain one when it gave none.
pub(super) fn reason(answer: &Map<String, Value>) -> String {
    pool_error(answer)
        .filter(|e| !e.message.is_empty() || e.code.is_some())
        .map_or_else(|| "no reason given".into(), |e| e.to_string())
}

/// extranonce1 (hex) and extranonce2 size, as the subscribe answer and
/// `mining.set_extranonce` give them, checked against what NDAS needs.
pub(super) fn extranonce(
    extranonce1: Option<&Value>,
    size: Option<&Value>,
    needed: usize,
    what: &str,
) -> Result<(Vec<u8>, usize), Refusal> {
    let hex1 = extranonce1
        .and_then(Value::as_str)
        .ok_or_else(|| protocol(format!("{what}: extranonce1 is not a string")))?;
    if hex1.len() > 2 * MAX_EXTRANONCE1_BYTES {
        return Err(protocol(format!(
            "{what}: extranonce1 is longer than {MAX_EXTRANONCE1_BYTES} bytes"
        )));
    }
    let extranonce1 = hex::decode(hex1).map_err(|_| {
        protocol(format!(
            "{what}: extranonce1 {:?} is not hex",
            bounded(hex1)
        ))
    })?;
    let given = size
        .and_then(Value::as_u64)
        .ok_or_else(|| protocol(format!("{what}: extranonce2_size is not a whole number")))?;
    if given > MAX_EXTRANONCE2_SIZE as u64 {
        return Err(protocol(format!(
            "{what}: extranonce2_size {given} is over {MAX_EXTRANONCE2_SIZE}"
        )));
    }
    let given = given as usize;
    if given < needed {
        return Err(Refusal::ExtranonceTooSmall { given, needed });
    }
    Ok((extranonce1, given))
}

/// A version mask as pools write it: 8 hex digits.
pub(super) fn mask(value: Option<&Value>, what: &str) -> Result<u32, Refusal> {
    value
        .and_then(Value::as_str)
        .filter(|text| text.len() <= 8)
        .and_then(|text| u32::from_str_radix(text, 16).ok())
        .ok_or_else(|| protocol(format!("{what}: the mask is not 8 hex digits")))
}
