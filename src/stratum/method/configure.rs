//! `mining.configure(extensions, params)`: BIP310 extension negotiation.
//!
//! See [BIP310](https://github.com/bitcoin/bips/blob/master/bip-0310.mediawiki).

use serde_json::Value;

use super::StratumError;

const METHOD: &str = "mining.configure";

/// What the miner asked for with `version-rolling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRolling {
    /// Bits the miner would like to roll.
    pub mask: u32,
    /// Fewest bits the miner needs; informational.
    pub min_bit_count: u32,
}

/// An extension negotiation request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Configure {
    pub version_rolling: Option<VersionRolling>,
    /// Other extensions named, answered `false`.
    pub unsupported: Vec<String>,
}

impl Configure {
    pub(super) fn parse(params: &[Value]) -> Result<Configure, StratumError> {
        let Some(Value::Array(names)) = params.first() else {
            return Err(StratumError::bad_param(
                METHOD,
                "extensions must be an array",
            ));
        };
        let empty = serde_json::Map::new();
        let options = match params.get(1) {
            Some(Value::Object(map)) => map,
            None | Some(Value::Null) => &empty,
            Some(_) => return Err(StratumError::bad_param(METHOD, "params must be an object")),
        };
        let mut configure = Configure::default();
        for name in names.iter().take(16) {
            let Value::String(name) = name else {
                return Err(StratumError::bad_param(
                    METHOD,
                    "extension names must be strings",
                ));
            };
            match name.as_str() {
                "version-rolling" => {
                    configure.version_rolling = Some(VersionRolling {
                        mask: mask(options.get("version-rolling.mask"))?,
                        min_bit_count: min_bits(options.get("version-rolling.min-bit-count"))?,
                    });
                }
                other => configure.unsupported.push(super::sanitize(other, 64)),
            }
        }
        Ok(configure)
    }
}

fn mask(value: Option<&Value>) -> Result<u32, StratumError> {
    match value {
        None => Ok(u32::MAX),
        Some(Value::String(hex)) if !hex.is_empty() && hex.len() <= 8 => {
            u32::from_str_radix(hex, 16)
                .map_err(|_| StratumError::bad_param(METHOD, "version-rolling.mask is not hex"))
        }
        Some(_) => Err(StratumError::bad_param(
            METHOD,
            "version-rolling.mask must be up to 8 hex digits",
        )),
    }
}

fn min_bits(value: Option<&Value>) -> Result<u32, StratumError> {
    match value {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|&bits| bits <= 32)
            .map(|bits| bits as u32)
            .ok_or_else(|| {
                StratumError::bad_param(METHOD, "version-rolling.min-bit-count must be 0 to 32")
            }),
        Some(_) => Err(StratumError::bad_param(
            METHOD,
            "version-rolling.min-bit-count must be a number",
        )),
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
    fn antminer_configure_parses() {
        let line = r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}"#;
        assert_eq!(
            parse(line).unwrap(),
            Method::Configure(Configure {
                version_rolling: Some(VersionRolling {
                    mask: 0x1fffe000,
                    min_bit_count: 2
                }),
                unsupported: vec![],
            })
        );
    }

    #[test]
    fn other_extensions_are_listed_and_bad_masks_refused() {
        let line = r#"{"id":1,"method":"mining.configure","params":[["minimum-difficulty","version-rolling","subscribe-extranonce"],{"minimum-difficulty.value":2048,"version-rolling.mask":"ffffffff"}]}"#;
        let Method::Configure(configure) = parse(line).unwrap() else {
            panic!()
        };
        assert_eq!(configure.version_rolling.unwrap().mask, u32::MAX);
        assert_eq!(
            configure.unsupported,
            vec!["minimum-difficulty", "subscribe-extranonce"]
        );
        let bad = r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"xyz"}]}"#;
        assert!(parse(bad).unwrap_err().message.contains("not hex"));
        let not_array = r#"{"id":1,"method":"mining.configure","params":["version-rolling"]}"#;
        assert!(parse(not_array).is_err());
    }
}
