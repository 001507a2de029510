//! `mining.authorize(username, password)`.

use serde_json::Value;

use super::{optional_str, required_str, StratumError};

/// Longest worker name NDAS accepts.
pub const MAX_WORKER_NAME: usize = 128;

/// An authorization request for a worker, conventionally `account.worker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorize {
    pub username: String,
}

impl Authorize {
    pub(super) fn parse(params: &[Value]) -> Result<Authorize, StratumError> {
        let method = "mining.authorize";
        let username = required_str(method, params, 0, "username")?;
        // The password is conventionally ignored ("x"); it must still be a string if present.
        optional_str(method, params, 1, "password")?;
        if username.is_empty() {
            return Err(StratumError::bad_param(method, "username is empty"));
        }
        if username.len() > MAX_WORKER_NAME {
            return Err(StratumError::bad_param(
                method,
                "username is longer than 128 bytes",
            ));
        }
        if username
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(StratumError::bad_param(
                method,
                "username has control or space characters",
            ));
        }
        Ok(Authorize {
            username: username.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stratum::{Method, Request};

    fn parse(line: &str) -> Result<Method, StratumError> {
        Method::parse(&Request::parse(line).unwrap())
    }

    #[test]
    fn account_dot_worker_names_parse() {
        let line =
            r#"{"params": ["bc1qexample.rig01", "x"], "id": 2, "method": "mining.authorize"}"#;
        assert_eq!(
            parse(line).unwrap(),
            Method::Authorize(Authorize {
                username: "bc1qexample.rig01".into()
            })
        );
        let no_password = r#"{"id":2,"method":"mining.authorize","params":["w"]}"#;
        assert!(parse(no_password).is_ok());
    }

    #[test]
    fn empty_huge_and_control_names_are_refused() {
        let huge = format!(
            r#"{{"id":2,"method":"mining.authorize","params":["{}","x"]}}"#,
            "a".repeat(10_000)
        );
        assert!(parse(&huge)
            .unwrap_err()
            .message
            .contains("longer than 128"));
        let empty = r#"{"id":2,"method":"mining.authorize","params":["","x"]}"#;
        assert!(parse(empty).unwrap_err().message.contains("empty"));
        let control = r#"{"id":2,"method":"mining.authorize","params":["a\u0007b","x"]}"#;
        assert!(parse(control).unwrap_err().message.contains("control"));
        let number = r#"{"id":2,"method":"mining.authorize","params":[5,"x"]}"#;
        assert!(parse(number)
            .unwrap_err()
            .message
            .contains("must be a string"));
    }
}
