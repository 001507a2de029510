//! `mining.suggest_difficulty(difficulty)`.

use serde_json::Value;

use super::StratumError;

/// The difficulty a miner would like; clamped to the configured bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuggestDifficulty {
    pub difficulty: f64,
}

impl SuggestDifficulty {
    pub(super) fn parse(params: &[Value]) -> Result<SuggestDifficulty, StratumError> {
        let method = "mining.suggest_difficulty";
        let difficulty = match params.first() {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.parse::<f64>().ok(),
            _ => None,
        }
        .ok_or_else(|| StratumError::bad_param(method, "difficulty must be a number"))?;
        if !difficulty.is_finite() || difficulty <= 0.0 {
            return Err(StratumError::bad_param(
                method,
                "difficulty must be positive and finite",
            ));
        }
        Ok(SuggestDifficulty { difficulty })
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
    fn numbers_and_numeric_strings_parse() {
        let line = r#"{"id":3,"method":"mining.suggest_difficulty","params":[512]}"#;
        assert_eq!(
            parse(line).unwrap(),
            Method::SuggestDifficulty(SuggestDifficulty { difficulty: 512.0 })
        );
        let text = r#"{"id":3,"method":"mining.suggest_difficulty","params":["0.001"]}"#;
        assert!(parse(text).is_ok());
    }

    #[test]
    fn negative_zero_nan_and_huge_are_refused() {
        for bad in ["-1", "0", "\"NaN\"", "\"inf\"", "1e400", "null"] {
            let line =
                format!(r#"{{"id":3,"method":"mining.suggest_difficulty","params":[{bad}]}}"#);
            let parsed = Request::parse(&line).map(|request| Method::parse(&request));
            assert!(!matches!(parsed, Ok(Ok(_))), "{bad} accepted");
        }
    }
}
