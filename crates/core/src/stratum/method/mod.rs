//! One file per stratum method, each with typed params parsed once at the edge.

mod authorize;
mod configure;
mod submit;
mod subscribe;
mod suggest_difficulty;

pub use authorize::{worker_name_issue, Authorize, MAX_WORKER_NAME};
pub use configure::{Configure, VersionRolling};
pub use submit::{Extranonce2, JobId, Submit};
pub use subscribe::Subscribe;
pub use suggest_difficulty::SuggestDifficulty;

use serde_json::Value;

use super::{Request, StratumError};

/// A parsed request from a miner.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    Subscribe(Subscribe),
    Authorize(Authorize),
    Configure(Configure),
    Submit(Submit),
    SuggestDifficulty(SuggestDifficulty),
    /// `mining.extranonce.subscribe`: the miner accepts `mining.set_extranonce`.
    ExtranonceSubscribe,
    /// A method NDAS does not serve, kept for the error message.
    Unknown(String),
}

impl Method {
    /// Parses the request's method and params; wrong params get a stratum error.
    pub fn parse(request: &Request) -> Result<Method, StratumError> {
        let params = params(&request.method, &request.params)?;
        Ok(match request.method.as_str() {
            "mining.subscribe" => Method::Subscribe(Subscribe::parse(params)?),
            "mining.authorize" => Method::Authorize(Authorize::parse(params)?),
            "mining.configure" => Method::Configure(Configure::parse(params)?),
            "mining.submit" => Method::Submit(Submit::parse(params)?),
            "mining.suggest_difficulty" => {
                Method::SuggestDifficulty(SuggestDifficulty::parse(params)?)
            }
            "mining.extranonce.subscribe" => Method::ExtranonceSubscribe,
            other => Method::Unknown(other.chars().take(64).collect()),
        })
    }
}

/// The params array; a missing or null params is an empty array.
fn params<'a>(method: &str, params: &'a Value) -> Result<&'a [Value], StratumError> {
    match params {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(&[]),
        _ => Err(StratumError::bad_param(method, "params must be an array")),
    }
}

/// A string param at `index`, or `None` when absent or null.
fn optional_str<'a>(
    method: &str,
    params: &'a [Value],
    index: usize,
    name: &str,
) -> Result<Option<&'a str>, StratumError> {
    match params.get(index) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(StratumError::bad_param(
            method,
            &format!("{name} must be a string"),
        )),
    }
}

/// A required string param at `index`.
fn required_str<'a>(
    method: &str,
    params: &'a [Value],
    index: usize,
    name: &str,
) -> Result<&'a str, StratumError> {
    optional_str(method, params, index, name)?
        .ok_or_else(|| StratumError::bad_param(method, &format!("{name} is missing")))
}

/// Text from a miner made safe to keep and log: printable characters only,
/// at most `max` of them.
pub fn sanitize(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}
