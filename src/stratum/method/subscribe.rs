//! `mining.subscribe(user_agent?, session_id?)`.

use serde_json::Value;

use super::{optional_str, sanitize, StratumError};

/// Longest user agent NDAS keeps.
pub const MAX_USER_AGENT: usize = 64;

/// A subscription request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscribe {
    /// The miner's software and version, sanitized, for the stats API.
    pub user_agent: Option<String>,
}

impl Subscribe {
    pub(super) fn parse(params: &[Value]) -> Result<Subscribe, StratumError> {
        let user_agent = optional_str("mining.subscribe", params, 0, "user agent")?
            .map(|agent| sanitize(agent, MAX_USER_AGENT));
        Ok(Subscribe { user_agent })
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
    fn real_miner_subscribes_parse() {
        let antminer =
            r#"{"id": 1, "method": "mining.subscribe", "params": ["bmminer/2.0.0", null]}"#;
        assert_eq!(
            parse(antminer).unwrap(),
            Method::Subscribe(Subscribe {
                user_agent: Some("bmminer/2.0.0".into())
            })
        );
        let bare = r#"{"id":1,"method":"mining.subscribe","params":[]}"#;
        assert_eq!(
            parse(bare).unwrap(),
            Method::Subscribe(Subscribe::default())
        );
        let bitaxe =
            r#"{"id": 1, "method": "mining.subscribe", "params": ["bitaxe/BM1366/v2.4.0"]}"#;
        assert!(matches!(parse(bitaxe), Ok(Method::Subscribe(_))));
    }

    #[test]
    fn control_characters_are_dropped_from_user_agents() {
        let line = r#"{"id":1,"method":"mining.subscribe","params":["evil\u001b[31m\nagent"]}"#;
        let Method::Subscribe(subscribe) = parse(line).unwrap() else {
            panic!()
        };
        assert_eq!(subscribe.user_agent.as_deref(), Some("evil[31magent"));
        let wrong = r#"{"id":1,"method":"mining.subscribe","params":[42]}"#;
        assert_eq!(
            parse(wrong).unwrap_err().code,
            crate::stratum::ErrorCode::Other
        );
    }
}
