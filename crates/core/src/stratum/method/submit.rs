//! `mining.submit(worker, job_id, extranonce2, ntime, nonce, version_bits?)`.

use std::fmt;

use serde_json::Value;

use super::{required_str, StratumError};
use crate::stratum::ErrorCode;

const METHOD: &str = "mining.submit";

/// A job id as NDAS issues it: a counter written in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// The miner's part of the extranonce, at most 16 bytes (longer is never valid).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Extranonce2 {
    bytes: [u8; 16],
    len: u8,
}

impl Extranonce2 {
    /// The bytes as the miner rolled them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// From raw bytes; `None` above 16 bytes.
    pub fn from_bytes(raw: &[u8]) -> Option<Extranonce2> {
        let mut bytes = [0u8; 16];
        bytes.get_mut(..raw.len())?.copy_from_slice(raw);
        Some(Extranonce2 {
            bytes,
            len: raw.len() as u8,
        })
    }
}

impl fmt::Debug for Extranonce2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Extranonce2({})", hex::encode(self.as_bytes()))
    }
}

/// A share submission, every field parsed from hex once, here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    pub worker: String,
    /// `None` when the id is not one NDAS could have issued: answered "job not found".
    pub job_id: Option<JobId>,
    pub extranonce2: Extranonce2,
    pub ntime: u32,
    pub nonce: u32,
    /// BIP310 rolled version bits, when the miner sends the sixth param.
    pub version_bits: Option<u32>,
}

impl Submit {
    pub(super) fn parse(params: &[Value]) -> Result<Submit, StratumError> {
        if params.len() < 5 || params.len() > 6 {
            return Err(StratumError::bad_param(METHOD, "expected 5 or 6 params"));
        }
        let worker = required_str(METHOD, params, 0, "worker")?;
        let job_id = required_str(METHOD, params, 1, "job id")?;
        let extranonce2 = required_str(METHOD, params, 2, "extranonce2")?;
        let ntime = required_str(METHOD, params, 3, "ntime")?;
        let nonce = required_str(METHOD, params, 4, "nonce")?;
        let version_bits = match params.get(5) {
            None | Some(Value::Null) => None,
            Some(Value::String(bits)) => Some(short_hex_u32(bits, "version bits")?),
            Some(_) => {
                return Err(StratumError::bad_param(
                    METHOD,
                    "version bits must be a string",
                ))
            }
        };
        let job_id = (!job_id.is_empty() && job_id.len() <= 16)
            .then(|| u64::from_str_radix(job_id, 16).ok())
            .flatten()
            .map(JobId);
        Ok(Submit {
            worker: worker.to_owned(),
            job_id,
            extranonce2: parse_extranonce2(extranonce2)?,
            ntime: hex_u32(ntime, "ntime")?,
            nonce: short_hex_u32(nonce, "nonce")?,
            version_bits,
        })
    }
}

fn parse_extranonce2(text: &str) -> Result<Extranonce2, StratumError> {
    let error = || StratumError::bad_param(METHOD, "extranonce2 must be hex of at most 16 bytes");
    if text.len() > 32 || !text.len().is_multiple_of(2) {
        return Err(error());
    }
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(text, &mut bytes[..text.len() / 2]).map_err(|_| error())?;
    Ok(Extranonce2 {
        bytes,
        len: (text.len() / 2) as u8,
    })
}

/// A 32-bit field sent as 8 hex digits, big-endian as displayed.
fn hex_u32(text: &str, name: &str) -> Result<u32, StratumError> {
    if text.len() != 8 {
        return Err(StratumError {
            code: ErrorCode::Other,
            message: format!("{METHOD}: {name} must be 8 hex digits").into(),
        });
    }
    u32::from_str_radix(text, 16)
        .map_err(|_| StratumError::bad_param(METHOD, &format!("{name} must be 8 hex digits")))
}

/// A 32-bit number as 1 to 8 hex digits: NerdMiner writes its nonce with
/// Arduino's `String(nonce, HEX)`, without leading zeros (and in capitals),
/// and the value is unambiguous. ckpool refuses such a nonce.
fn short_hex_u32(text: &str, name: &str) -> Result<u32, StratumError> {
    if text.is_empty() || text.len() > 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StratumError::bad_param(
            METHOD,
            &format!("{name} must be 1 to 8 hex digits"),
        ));
    }
    u32::from_str_radix(text, 16)
        .map_err(|_| StratumError::bad_param(METHOD, &format!("{name} must be 1 to 8 hex digits")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stratum::{Method, Request};

    fn parse(line: &str) -> Result<Method, StratumError> {
        Method::parse(&Request::parse(line).unwrap())
    }

    #[test]
    fn five_and_six_param_submits_parse() {
        let five = r#"{"params": ["slush.miner1", "bf", "00000001", "504e86ed", "b2957c02"], "id": 4, "method": "mining.submit"}"#;
        let Method::Submit(submit) = parse(five).unwrap() else {
            panic!()
        };
        assert_eq!(submit.worker, "slush.miner1");
        assert_eq!(submit.job_id, Some(JobId(0xbf)));
        assert_eq!(submit.extranonce2.as_bytes(), &[0, 0, 0, 1]);
        assert_eq!(submit.ntime, 0x504e86ed);
        assert_eq!(submit.nonce, 0xb2957c02);
        assert_eq!(submit.version_bits, None);
        let six = r#"{"id":5,"method":"mining.submit","params":["w","1a","0000000000000000","6743f1a2","0badf00d","1fffe000"]}"#;
        let Method::Submit(submit) = parse(six).unwrap() else {
            panic!()
        };
        assert_eq!(submit.version_bits, Some(0x1fffe000));
    }

    #[test]
    fn nerdminer_unpadded_capital_nonces_parse_to_the_same_value() {
        // NerdMiner: String(nonce, HEX), no leading zeros.
        let line = r#"{"id":7,"method":"mining.submit","params":["bc1q.nerd","1a","00000001","6743f1a2","2F1C"]}"#;
        let Method::Submit(submit) = parse(line).unwrap() else {
            panic!()
        };
        assert_eq!(submit.nonce, 0x0000_2f1c);
        for bad in ["", "123456789", "+1234567", "12 4"] {
            let line = format!(
                r#"{{"id":1,"method":"mining.submit","params":["w","1","00","504e86ed","{bad}"]}}"#
            );
            assert!(
                parse(&line)
                    .unwrap_err()
                    .message
                    .contains("nonce must be 1 to 8 hex digits"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn malformed_fields_are_refused_and_foreign_job_ids_are_unknown() {
        let cases = [
            (r#"["w","1","zz","504e86ed","b2957c02"]"#, "extranonce2"),
            (r#"["w","1","00","504e86e","b2957c02"]"#, "ntime"),
            (r#"["w","1","00","504e86ed","b2957c0g"]"#, "nonce"),
            (r#"["w","1","00","504e86ed"]"#, "5 or 6"),
            (r#"["w","1","00","504e86ed","b2957c02",7]"#, "version bits"),
            (r#"[1,"1","00","504e86ed","b2957c02"]"#, "worker"),
        ];
        for (params, what) in cases {
            let line = format!(r#"{{"id":1,"method":"mining.submit","params":{params}}}"#);
            let error = parse(&line).unwrap_err();
            assert!(error.message.contains(what), "{params}: {}", error.message);
        }
        let foreign = r#"{"id":1,"method":"mining.submit","params":["w","not-hex-id","00","504e86ed","b2957c02"]}"#;
        let Method::Submit(submit) = parse(foreign).unwrap() else {
            panic!()
        };
        assert_eq!(submit.job_id, None);
    }
}
