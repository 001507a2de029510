//! What the nodes' answers to `submitblock` mean: a final outcome or an
//! error worth retrying, the best of several nodes' verdicts, and whether
//! a "duplicate" was in fact our own earlier attempt.

use serde_json::Value;

use super::journal::{NodeOutcome, Outcome};
use crate::node::nodes::Node;
use crate::node::rpc::RpcError;

/// The best of the nodes' verdicts: accepted, then duplicate, then
/// inconclusive, then a rejection.
pub(super) fn best_of(verdicts: &[NodeOutcome]) -> Outcome {
    let rank = |o: &Outcome| match o {
        Outcome::Accepted => 0,
        Outcome::Duplicate => 1,
        Outcome::Inconclusive => 2,
        Outcome::Rejected(_) => 3,
    };
    verdicts
        .iter()
        .map(|v| &v.outcome)
        .min_by_key(|o| rank(o))
        .cloned()
        .expect("settled by at least one verdict")
}

/// "duplicate" for a block whose earlier attempt may have reached the
/// node: accepted if it is on the node's active chain (the earlier attempt
/// was taken), a duplicate otherwise.
pub(super) async fn judge_duplicate(node: &Node, hash: &str) -> Outcome {
    let header = node
        .rpc
        .call::<Value>("getblockheader", serde_json::json!([hash]))
        .await;
    match header {
        Ok(header) if header["confirmations"].as_i64().is_some_and(|c| c >= 1) => {
            tracing::info!(node = %node.name, %hash, "the node already had the block from an attempt that timed out: accepted");
            Outcome::Accepted
        }
        _ => Outcome::Duplicate,
    }
}

/// Maps `submitblock`'s answer to a final outcome, or an error worth retrying.
pub fn verdict(answer: Result<Value, RpcError>) -> Result<Outcome, RpcError> {
    match answer {
        Ok(Value::Null) => Ok(Outcome::Accepted),
        Ok(Value::String(text)) => Ok(match text.as_str() {
            "duplicate" => Outcome::Duplicate,
            // BIP22: already known, its validity not yet decided: no rejection.
            "inconclusive" | "duplicate-inconclusive" => Outcome::Inconclusive,
            other => Outcome::Rejected(ndas_core::stratum::method::sanitize(other, 200)),
        }),
        Ok(other) => Ok(Outcome::Rejected(ndas_core::stratum::method::sanitize(
            &other.to_string(),
            200,
        ))),
        // -28 warming up, -9 not connected, -10 initial download, -25 a
        // verification error the node may not repeat: tried again.
        Err(RpcError::Rpc { message, code, .. }) if !matches!(code, -28 | -9 | -10 | -25) => {
            Ok(Outcome::Rejected(format!("{message} (code {code})")))
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc_error(code: i64) -> RpcError {
        RpcError::Rpc {
            method: "submitblock".into(),
            code,
            message: "m".into(),
        }
    }

    #[test]
    fn a_block_settles_with_the_best_verdict_any_node_gave() {
        let of = |outcomes: &[Outcome]| {
            let verdicts: Vec<NodeOutcome> = outcomes
                .iter()
                .map(|o| NodeOutcome {
                    node: "n".into(),
                    outcome: o.clone(),
                })
                .collect();
            best_of(&verdicts)
        };
        let rejected = Outcome::Rejected("prev-blk-not-found".into());
        assert_eq!(
            of(&[rejected.clone(), Outcome::Accepted]),
            Outcome::Accepted
        );
        assert_eq!(
            of(&[Outcome::Duplicate, rejected.clone()]),
            Outcome::Duplicate
        );
        assert_eq!(
            of(&[rejected.clone(), Outcome::Inconclusive]),
            Outcome::Inconclusive
        );
        assert_eq!(of(std::slice::from_ref(&rejected)), rejected);
    }

    #[test]
    fn the_nodes_answers_map_to_outcomes_or_retries() {
        assert_eq!(verdict(Ok(Value::Null)).unwrap(), Outcome::Accepted);
        assert_eq!(verdict(Ok("duplicate".into())).unwrap(), Outcome::Duplicate);
        for unknown in ["inconclusive", "duplicate-inconclusive"] {
            assert_eq!(verdict(Ok(unknown.into())).unwrap(), Outcome::Inconclusive);
        }
        assert_eq!(
            verdict(Ok("duplicate-invalid".into())).unwrap(),
            Outcome::Rejected("duplicate-invalid".into())
        );
        assert_eq!(
            verdict(Ok("bad-txnmrklroot".into())).unwrap(),
            Outcome::Rejected("bad-txnmrklroot".into())
        );
        for retried in [-28, -9, -10, -25] {
            assert!(verdict(Err(rpc_error(retried))).is_err(), "{retried}");
        }
        assert!(matches!(
            verdict(Err(rpc_error(-22))),
            Ok(Outcome::Rejected(_))
        ));
    }
}
