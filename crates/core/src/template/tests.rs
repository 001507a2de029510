use bitcoin::consensus::deserialize;
use bitcoin::hashes::Hash;
use serde_json::{json, Value};

use super::*;
use crate::chain::merkle;

fn fixture_template() -> Value {
    serde_json::from_str(include_str!(
        "../../../../tests/fixtures/core-regtest-gbt-height121-60tx.json"
    ))
    .unwrap()
}

fn fixture_block() -> bitcoin::Block {
    let hex = include_str!("../../../../tests/fixtures/core-regtest-block-height121-60tx.hex");
    deserialize(&hex::decode(hex.trim()).unwrap()).unwrap()
}

#[test]
fn core_template_reproduces_cores_merkle_root_and_commitment() {
    let template = Template::from_json(fixture_template()).unwrap();
    let block = fixture_block();
    assert_eq!(template.height, 121);
    assert_eq!(template.tx_count, 60);
    assert_eq!(
        template.prev_hash.0,
        block.header.prev_blockhash.to_byte_array()
    );

    let coinbase_txid = Hash256(block.txdata[0].compute_txid().to_byte_array());
    let root = merkle::root_from_branch(&coinbase_txid, &merkle::branch(&template.txids));
    assert_eq!(root.0, block.header.merkle_root.to_byte_array());

    let commitment = template
        .witness_commitment
        .expect("segwit template commits");
    let script = merkle::witness_commitment_script(&commitment);
    let core_output = block.txdata[0].output.iter().rev().find(|o| {
        o.script_pubkey
            .as_bytes()
            .starts_with(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed])
    });
    assert_eq!(core_output.unwrap().script_pubkey.as_bytes(), &script[..]);

    let mut core_tx_bytes = Vec::new();
    for tx in &block.txdata[1..] {
        core_tx_bytes.extend(bitcoin::consensus::serialize(tx));
    }
    assert_eq!(template.tx_data, core_tx_bytes);
}

#[test]
fn big_core_template_parses_with_depth_twelve_branch() {
    let raw: Value = serde_json::from_str(include_str!(
        "../../../../tests/fixtures/core-regtest-gbt-height226-3500tx.json"
    ))
    .unwrap();
    let template = Template::from_json(raw).unwrap();
    assert_eq!(template.tx_count, 3500);
    assert_eq!(merkle::branch(&template.txids).len(), 12);
}

#[test]
fn legacy_template_without_witnesses_has_no_commitment() {
    let raw = json!({
        "version": 536870912,
        "previousblockhash": "53f4b87f121db5b8b7967601ec7e5ba48028b3e79df1ff8e2f4ac71fefb728b0",
        "transactions": [{
            "data": "0200000001f6ea3e521b7edce51ff21f299addfd2ce03f5fbba9e457fc07807735361064db000000004948304502210083d5debf424ce2df1090538495ae0b458b46f478022f630f23ff21fdc990b0dc022075a4aa628eb2f62dde939b54b5d90e8745299aaf906f60a876a11156c609e1fc41feffffff0280111521010000001976a91452bbbce42ed633c4f75bf8744747506b3f75ff5788ac80d1f008000000001976a9147af7d2a45dab23c78e3a5846dd4671aab308044d88ac65000000",
            "txid": "687dc227cf48f5f53f56102623b270cf2cb48b9d5dd89dfebd0b3fdd14477373",
            "hash": "687dc227cf48f5f53f56102623b270cf2cb48b9d5dd89dfebd0b3fdd14477373",
            "depends": [], "fee": 3840
        }],
        "coinbaseaux": {"flags": ""},
        "coinbasevalue": 5000003840u64,
        "target": "7fffff0000000000000000000000000000000000000000000000000000000000",
        "mintime": 1795504084u64, "curtime": 1795504084u64,
        "bits": "207fffff", "height": 102
    });
    let template = Template::from_json(raw).unwrap();
    assert_eq!(template.witness_commitment, None);
    assert_eq!(template.coinbase_value, 5_000_003_840);
    assert_eq!(
        template.network_target,
        Target::from_compact(0x207fffff).unwrap()
    );
}

fn tampered(edit: impl FnOnce(&mut Value)) -> TemplateError {
    let mut raw = fixture_template();
    edit(&mut raw);
    Template::from_json(raw).unwrap_err()
}

#[test]
fn tampered_templates_are_refused_with_the_reason() {
    let wrong_txid = tampered(|t| t["transactions"][3]["txid"] = json!("00".repeat(32)));
    assert_eq!(
        wrong_txid,
        TemplateError::Transaction {
            index: 3,
            why: "txid does not match data".into()
        }
    );

    let wrong_hash = tampered(|t| t["transactions"][0]["hash"] = json!("11".repeat(32)));
    assert!(matches!(
        wrong_hash,
        TemplateError::Transaction { index: 0, .. }
    ));

    let forward_dependency = tampered(|t| t["transactions"][1]["depends"] = json!([5]));
    assert!(matches!(
        forward_dependency,
        TemplateError::Transaction { index: 1, .. }
    ));

    let bad_hex = tampered(|t| t["transactions"][2]["data"] = json!("zz"));
    assert!(matches!(
        bad_hex,
        TemplateError::Transaction { index: 2, .. }
    ));

    let commitment = tampered(|t| {
        t["default_witness_commitment"] = json!(format!("6a24aa21a9ed{}", "00".repeat(32)))
    });
    assert!(matches!(
        commitment,
        TemplateError::WitnessCommitment { .. }
    ));

    let rule = tampered(|t| t["rules"] = json!(["!newfork"]));
    assert_eq!(rule, TemplateError::UnknownRule("newfork".into()));

    let bits = tampered(|t| t["bits"] = json!("1d00ffff"));
    assert_eq!(
        bits,
        TemplateError::Field {
            field: "target",
            why: "does not match bits".into()
        }
    );

    let missing = tampered(|t| {
        t.as_object_mut().unwrap().remove("coinbasevalue");
    });
    assert!(matches!(missing, TemplateError::Shape(_)));

    let height = tampered(|t| t["height"] = json!(0));
    assert!(matches!(
        height,
        TemplateError::Field {
            field: "height",
            ..
        }
    ));
}
