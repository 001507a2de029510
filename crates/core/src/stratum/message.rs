//! Stratum lines: requests in, responses and notifications out.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StratumError;

/// A request from a miner. The id is any JSON value and is echoed back as sent.
#[derive(Debug, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub id: Value,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

/// A line that is not a stratum request.
#[derive(Debug, thiserror::Error)]
#[error("not a stratum request: {0}")]
pub struct ParseError(String);

impl Request {
    /// Parses one line. serde_json bounds nesting depth, so a nesting bomb is
    /// an error, not a stack overflow.
    pub fn parse(line: &str) -> Result<Request, ParseError> {
        serde_json::from_str(line).map_err(|e| ParseError(e.to_string()))
    }
}

#[derive(Serialize)]
struct Response<'a, T: Serialize> {
    id: &'a Value,
    result: T,
    error: Option<(i32, &'a str, Option<()>)>,
}

#[derive(Serialize)]
struct Notification<'a, T: Serialize> {
    id: Option<()>,
    method: &'a str,
    params: T,
}

fn line(value: &impl Serialize) -> Bytes {
    // Serializing plain data to a Vec cannot fail.
    let mut out = serde_json::to_vec(value).expect("stratum messages serialize");
    out.push(b'\n');
    Bytes::from(out)
}

/// `{"id":…,"result":…,"error":null}` and a newline.
pub fn result(id: &Value, result: impl Serialize) -> Bytes {
    line(&Response {
        id,
        result,
        error: None,
    })
}

/// `{"id":…,"result":null,"error":[code,"message",null]}` and a newline.
pub fn error(id: &Value, error: &StratumError) -> Bytes {
    line(&Response::<Option<()>> {
        id,
        result: None,
        error: Some((error.code as i32, &error.message, None)),
    })
}

/// `{"id":null,"method":…,"params":…}` and a newline.
pub fn notification(method: &str, params: impl Serialize) -> Bytes {
    line(&Notification {
        id: None,
        method,
        params,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::stratum::ErrorCode;

    #[test]
    fn ids_of_any_json_kind_are_echoed() {
        for id in [json!(1), json!("abc"), json!(null)] {
            let request = Request::parse(&format!(
                r#"{{"id":{id},"method":"mining.subscribe","params":[]}}"#
            ))
            .unwrap();
            let answer: Value = serde_json::from_slice(&result(&request.id, true)).unwrap();
            assert_eq!(answer, json!({"id": id, "result": true, "error": null}));
        }
    }

    #[test]
    fn errors_are_code_message_null_triples() {
        let sent = error(
            &json!(7),
            &StratumError::new(ErrorCode::DuplicateShare, "Duplicate share"),
        );
        assert_eq!(
            std::str::from_utf8(&sent).unwrap(),
            "{\"id\":7,\"result\":null,\"error\":[22,\"Duplicate share\",null]}\n"
        );
    }

    #[test]
    fn nesting_bombs_and_garbage_are_parse_errors() {
        let bomb = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(Request::parse(&bomb).is_err());
        assert!(Request::parse("{\"id\":1}").is_err());
        assert!(Request::parse("not json").is_err());
    }
}
