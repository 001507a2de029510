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
    /// The subscription id of the miner's previous connection (cgminer,
    /// cpuminer and NiceHash-style clients send it to resume): NDAS's ids
    /// are its 4-byte extranonce1 values in hex. Anything else is ignored.
    pub session_id: Option<[u8; 4]>,
}

impl Subscribe {
    pub(super) fn parse(params: &[Value]) -> Result<Subscribe, StratumError> {
        let user_agent = optional_str("mining.subscribe", params, 0, "user agent")?
            .map(|agent| sanitize(agent, MAX_USER_AGENT));
        let session_id = params.get(1).and_then(Value::as_str).and_then(|id| {
            let mut bytes = [0u8; 4];
            hex::decode_to_slice(id, &mut bytes).ok().map(|()| bytes)
        });
        Ok(Subscribe {
            user_agent,
            session_id,
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
    fn real_miner_subscribes_parse() {
        let antminer =
            r#"{"id": 1, "method": "mining.subscribe", "params": ["bmminer/2.0.0", null]}"#;
        assert_eq!(
            parse(antminer).unwrap(),
            Method::Subscribe(Subscribe {
                user_agent: Some("bmminer/2.0.0".into()),
                session_id: None,
            })
        );
        // cgminer and cpuminer resuming: the previous subscription id.
        let resuming =
            r#"{"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.12.1", "09000a1b"]}"#;
        let Method::Subscribe(subscribe) = parse(resuming).unwrap() else {
            panic!()
        };
        assert_eq!(subscribe.session_id, Some([9, 0, 0x0a, 0x1b]));
        for other in [r#"42"#, r#""xyz""#, r#""0900""#, r#""09000a1b00""#] {
            let line = format!(r#"{{"id":1,"method":"mining.subscribe","params":["a",{other}]}}"#);
            let Method::Subscribe(subscribe) = parse(&line).unwrap() else {
                panic!()
            };
            assert_eq!(subscribe.session_id, None, "{other}");
        }
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
