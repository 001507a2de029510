//! Errors as miners see them: the conventional stratum codes.

use std::borrow::Cow;

/// Stratum error codes (from the original slush pool protocol, used by
/// ckpool, cgminer and ASIC firmware alike).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Other = 20,
    JobNotFound = 21,
    DuplicateShare = 22,
    LowDifficulty = 23,
    Unauthorized = 24,
    NotSubscribed = 25,
}

/// An error answered to a miner: `[code, message, null]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StratumError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
}

impl StratumError {
    /// An error with a fixed message.
    pub const fn new(code: ErrorCode, message: &'static str) -> Self {
        StratumError {
            code,
            message: Cow::Borrowed(message),
        }
    }

    /// An error whose message names what was wrong.
    pub fn other(message: impl Into<String>) -> Self {
        StratumError {
            code: ErrorCode::Other,
            message: Cow::Owned(message.into()),
        }
    }

    /// A parameter that is missing or of the wrong type.
    pub fn bad_param(method: &str, what: &str) -> Self {
        Self::other(format!("{method}: {what}"))
    }
}

impl std::fmt::Display for StratumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code as i32)
    }
}
