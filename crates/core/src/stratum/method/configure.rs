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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Configure {
    pub version_rolling: Option<VersionRolling>,
    /// BIP310 `minimum-difficulty`: the least difficulty the miner wants
    /// (`None` when asked without a usable `minimum-difficulty.value`).
    pub minimum_difficulty: Option<f64>,
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
                        mask: mask(options.get("version-rolling.mask")),
                        min_bit_count: min_bits(options.get("version-rolling.min-bit-count")),
                    });
                }
                "minimum-difficulty" => match positive(options.get("minimum-difficulty.value")) {
                    Some(value) => configure.minimum_difficulty = Some(value),
                    None => configure.unsupported.push(name.clone()),
                },
                other => configure.unsupported.push(super::sanitize(other, 64)),
            }
        }
        Ok(configure)
    }
}

/// The mask the miner asks for; one that does not parse asks for every bit
/// (the pool grants its own mask either way, as ckpool does), so a sloppy
/// field never costs the miner its version rolling.
fn mask(value: Option<&Value>) -> u32 {
    match value {
        Some(Value::String(hex)) if !hex.is_empty() && hex.len() <= 8 => {
            u32::from_str_radix(hex, 16).unwrap_or(u32::MAX)
        }
        _ => u32::MAX,
    }
}

/// A finite difficulty above zero, as a number or a string of one.
fn positive(value: Option<&Value>) -> Option<f64> {
    let number = match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }?;
    (number.is_finite() && number > 0.0).then_some(number)
}

/// Fewest bits the miner needs, as a number or a string of digits (both are
/// seen in the field); anything else is ignored.
fn min_bits(value: Option<&Value>) -> u32 {
    let bits = match value {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(text)) => text.trim().parse().ok(),
        _ => None,
    };
    bits.filter(|&bits| bits <= 32)
        .map_or(0, |bits| bits as u32)
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
                minimum_difficulty: None,
                unsupported: vec![],
            })
        );
    }

    #[test]
    fn sloppy_fields_are_ignored_not_fatal() {
        let rolling = |options: &str| {
            let line = format!(
                r#"{{"id":1,"method":"mining.configure","params":[["version-rolling"],{options}]}}"#
            );
            let Method::Configure(configure) = parse(&line).unwrap() else {
                panic!()
            };
            configure.version_rolling.unwrap()
        };
        // A count as a string (seen in the field) is read; garbage is ignored.
        let as_string =
            rolling(r#"{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":"2"}"#);
        assert_eq!((as_string.mask, as_string.min_bit_count), (0x1fffe000, 2));
        let garbage =
            rolling(r#"{"version-rolling.mask":"xyz","version-rolling.min-bit-count":{"x":1}}"#);
        assert_eq!((garbage.mask, garbage.min_bit_count), (u32::MAX, 0));
        let negative = rolling(r#"{"version-rolling.min-bit-count":-3}"#);
        assert_eq!(negative.min_bit_count, 0);
        // ESP-Miner sends the mask alone.
        let esp = rolling(r#"{"version-rolling.mask":"ffffffff"}"#);
        assert_eq!((esp.mask, esp.min_bit_count), (u32::MAX, 0));
    }

    #[test]
    fn other_extensions_are_listed() {
        let line = r#"{"id":1,"method":"mining.configure","params":[["minimum-difficulty","version-rolling","subscribe-extranonce"],{"minimum-difficulty.value":2048,"version-rolling.mask":"ffffffff"}]}"#;
        let Method::Configure(configure) = parse(line).unwrap() else {
            panic!()
        };
        assert_eq!(configure.version_rolling.unwrap().mask, u32::MAX);
        assert_eq!(configure.minimum_difficulty, Some(2048.0));
        assert_eq!(configure.unsupported, vec!["subscribe-extranonce"]);
        let unusable = r#"{"id":1,"method":"mining.configure","params":[["minimum-difficulty"],{"minimum-difficulty.value":-1}]}"#;
        let Method::Configure(configure) = parse(unusable).unwrap() else {
            panic!()
        };
        assert_eq!(configure.minimum_difficulty, None);
        assert_eq!(configure.unsupported, vec!["minimum-difficulty"]);
        let not_array = r#"{"id":1,"method":"mining.configure","params":["version-rolling"]}"#;
        assert!(parse(not_array).is_err());
    }
}
