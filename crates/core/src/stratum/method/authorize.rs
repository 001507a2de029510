//! `mining.authorize(username, password)`.

use serde_json::Value;

use super::{optional_str, required_str, StratumError};

/// Longest worker name NDAS accepts.
pub const MAX_WORKER_NAME: usize = 128;

/// Why `name` cannot be a worker's name (every wire's: Stratum V1's
/// username, Stratum V2's `user_identity`), if it cannot.
pub fn worker_name_issue(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("username is empty")
    } else if name.len() > MAX_WORKER_NAME {
        Some("username is longer than 128 bytes")
    } else if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("username has control or space characters")
    } else {
        None
    }
}

/// An authorization request for a worker, conventionally `account.worker`.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorize {
    pub username: String,
    /// `d=N` or `diff=N` in the password: the start and least difficulty
    /// the operator wants for this worker (a common pool convention).
    pub difficulty: Option<f64>,
}

impl Authorize {
    pub(super) fn parse(params: &[Value]) -> Result<Authorize, StratumError> {
        let method = "mining.authorize";
        let username = required_str(method, params, 0, "username")?;
        // The password is conventionally "x"; it must still be a string if
        // present, and may carry `d=N`.
        let password = optional_str(method, params, 1, "password")?;
        if let Some(why) = worker_name_issue(username) {
            return Err(StratumError::bad_param(method, why));
        }
        Ok(Authorize {
            username: username.to_owned(),
            difficulty: password.and_then(password_difficulty),
        })
    }
}

/// The difficulty of a `d=N` or `diff=N` among the password's fields
/// (separated by `,`, `;`, `&` or spaces); `None` when there is none or it
/// is not a finite number above zero.
fn password_difficulty(password: &str) -> Option<f64> {
    password
        .split([',', ';', '&', ' '])
        .filter_map(|field| field.split_once('='))
        .find(|(key, _)| key.eq_ignore_ascii_case("d") || key.eq_ignore_ascii_case("diff"))
        .and_then(|(_, value)| value.trim().parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stratum::{Method, Request};

    fn parse(line: &str) -> Result<Method, StratumError> {
        Method::parse(&Request::parse(line).unwrap())
    }

    #[test]
    fn a_difficulty_in_the_password_is_read() {
        let with = |password: &str| {
            let line =
                format!(r#"{{"id":1,"method":"mining.authorize","params":["a.b","{password}"]}}"#);
            let Method::Authorize(authorize) = parse(&line).unwrap() else {
                panic!()
            };
            authorize.difficulty
        };
        assert_eq!(with("d=1024"), Some(1024.0));
        assert_eq!(with("x,diff=65536"), Some(65536.0));
        assert_eq!(with("x;D=0.5"), Some(0.5));
        for none in ["x", "", "d=", "d=-5", "d=inf", "d=NaN", "dd=4"] {
            assert_eq!(with(none), None, "{none:?}");
        }
    }

    #[test]
    fn account_dot_worker_names_parse() {
        let line =
            r#"{"params": ["bc1qexample.rig01", "x"], "id": 2, "method": "mining.authorize"}"#;
        assert_eq!(
            parse(line).unwrap(),
            Method::Authorize(Authorize {
                username: "bc1qexample.rig01".into(),
                difficulty: None,
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
