use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::chain::coinbase::CoinbaseError;
use crate::chain::Network;
use crate::stratum::method::JobId;
use crate::template::{MAX_BLOCK_SIGOPS_COST, MAX_BLOCK_WEIGHT};
use crate::work::payout::Split;
use crate::work::Job;

const P2WPKH: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
const P2PKH: &str = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn";

fn small() -> Value {
    serde_json::from_str(include_str!(
        "../../../../../tests/fixtures/core-regtest-gbt-height121-60tx.json"
    ))
    .unwrap()
}

fn big() -> Value {
    serde_json::from_str(include_str!(
        "../../../../../tests/fixtures/core-regtest-gbt-height226-3500tx.json"
    ))
    .unwrap()
}

fn payout(address: &str) -> Payout {
    Payout::parse(address, Network::Regtest).unwrap()
}

fn config(main: &str, splits: &[&str]) -> JobConfig {
    JobConfig {
        payout_script: payout(main).script.to_vec(),
        coinbase_tag: b"/NDAS/".to_vec(),
        extranonce2_size: 8,
        splits: splits
            .iter()
            .map(|address| Split {
                payout: payout(address),
                basis_points: 100,
            })
            .collect(),
    }
}

/// The sum of a field over the fixture's transactions, as Core gave it.
fn core_sum(raw: &Value, field: &str) -> u64 {
    raw["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tx| tx[field].as_u64().unwrap())
        .sum()
}

#[test]
fn the_figures_are_cores_and_add_up_to_cores_own_block() {
    for raw in [small(), big()] {
        let template = Template::from_json(raw.clone()).unwrap();
        assert_eq!(template.limits.weight, MAX_BLOCK_WEIGHT);
        assert_eq!(template.limits.sigops, MAX_BLOCK_SIGOPS_COST);
        assert_eq!(template.transactions_weight(), core_sum(&raw, "weight"));
        assert_eq!(template.transactions_sigops(), core_sum(&raw, "sigops"));
    }
    let template = Template::from_json(small()).unwrap();
    assert_eq!(
        (
            template.transactions_weight(),
            template.transactions_sigops()
        ),
        (52_843, 177)
    );
    // The block Core built from the same mempool: its weight is the header
    // and count, the transactions, and its coinbase; nothing else.
    let hex = include_str!("../../../../../tests/fixtures/core-regtest-block-height121-60tx.hex");
    let block: bitcoin::Block =
        bitcoin::consensus::deserialize(&hex::decode(hex.trim()).unwrap()).unwrap();
    let coinbase_weight = block.txdata[0].weight().to_wu();
    assert_eq!(
        block.weight().to_wu(),
        template.header_and_count_weight() + template.transactions_weight() + coinbase_weight
    );
    assert_eq!(template.header_and_count_weight(), 4 * (80 + 1));
    assert_eq!(
        template.coinbase_room().weight,
        MAX_BLOCK_WEIGHT - 4 * 81 - 52_843
    );
    // 3,500 transactions and a coinbase: a 3-byte count.
    let template = Template::from_json(big()).unwrap();
    assert_eq!(template.header_and_count_weight(), 4 * (80 + 3));
    assert_eq!(template.coinbase_room().sigops, 80_000 - 10_282);
}

#[test]
fn a_coinbase_costs_four_sigops_per_p2pkh_output_and_none_for_witness_ones() {
    assert_eq!(output_sigops(&payout(P2PKH).script), 4);
    assert_eq!(output_sigops(&payout(P2WPKH).script), 0);
    let fixed = coinbase_bounds(
        &config(P2WPKH, &[P2PKH, P2PKH, P2WPKH]),
        Some(&payout(P2WPKH)),
    );
    assert_eq!(fixed.sigops, 8);
    // `username` mode: the main output may be P2PKH, and 34 bytes long.
    let any = coinbase_bounds(&config(P2WPKH, &[P2PKH, P2PKH, P2WPKH]), None);
    assert_eq!(any.sigops, 12);
    assert_eq!(any.weight - fixed.weight, 4 * (34 - 22));
    // The bound is the largest a job builds: here the height (121) takes
    // three bytes fewer than the longest BIP34 push the bound allows for.
    let template = Arc::new(Template::from_json(small()).unwrap());
    let cfg = config(P2WPKH, &[P2PKH, P2PKH, P2WPKH]);
    let job = Job::build(JobId(1), template, &cfg).unwrap();
    assert_eq!(job.coinbase.weight() as u64 + 4 * 3, fixed.weight);
}

#[test]
fn a_template_that_fits_is_kept_whole() {
    let template = Template::from_json(big()).unwrap();
    let bounds = coinbase_bounds(&config(P2WPKH, &[]), None);
    let (kept, trimmed) = fit(template.clone(), bounds).unwrap();
    assert_eq!(trimmed, None);
    assert_eq!(kept.txids, template.txids);
}

/// `raw` with its weight limit set so that `short` weight units are
/// missing for a coinbase of `bounds`.
fn short_by(mut raw: Value, bounds: CoinbaseBounds, short: u64) -> Template {
    let template = Template::from_json(raw.clone()).unwrap();
    let needed =
        template.header_and_count_weight() + template.transactions_weight() + bounds.weight;
    raw["weightlimit"] = json!(needed - short);
    Template::from_json(raw).unwrap()
}

#[test]
fn a_template_too_full_for_the_coinbase_loses_its_last_transactions_and_their_fees() {
    let raw = small();
    let bounds = coinbase_bounds(&config(P2WPKH, &[]), None);
    // One weight unit short: the last transaction goes, no more.
    let template = short_by(raw.clone(), bounds, 1);
    let (cut, trimmed) = fit(template.clone(), bounds).unwrap();
    let trimmed = trimmed.expect("cut");
    assert_eq!(trimmed.transactions, 1);
    assert_eq!(
        (trimmed.weight, trimmed.sigops, trimmed.fees),
        (1016, 2, 2540)
    );
    assert_eq!(trimmed.over.weight(), trimmed.over.limits.weight + 1);
    // What to set the node to: the coinbase, the header, the longest count.
    assert_eq!(trimmed.over.reservation_needed(), bounds.weight + 340);
    // (Here below Core's least reservation, which is what it advises.)
    assert!(bounds.weight + 340 < 2000);
    assert!(
        trimmed.over.remedy().contains("-blockreservedweight=2000 "),
        "{}",
        trimmed.over.remedy()
    );
    assert_eq!(cut.tx_count, 59);
    assert_eq!(cut.coinbase_value, template.coinbase_value - 2540);
    assert!(
        cut.header_and_count_weight() + cut.transactions_weight() + bounds.weight
            <= cut.limits.weight
    );
    // The same as the node's template without that transaction: the
    // commitment computed again, the transaction data a prefix.
    let mut shorter = raw.clone();
    shorter["transactions"].as_array_mut().unwrap().pop();
    shorter["coinbasevalue"] = json!(template.coinbase_value - 2540);
    shorter
        .as_object_mut()
        .unwrap()
        .remove("default_witness_commitment");
    let expected = Template::from_json(shorter).unwrap();
    assert_eq!(cut.txids, expected.txids);
    assert_eq!(cut.tx_data, expected.tx_data);
    assert_eq!(cut.witness_commitment, expected.witness_commitment);
    assert_ne!(cut.witness_commitment, template.witness_commitment);
    assert_eq!(cut.costs, expected.costs);
    let cfg = config(P2WPKH, &[]);
    assert!(Job::build(JobId(1), Arc::new(cut), &cfg).is_ok());
}

#[test]
fn no_job_is_built_whose_block_would_be_over_the_weight_limit() {
    let cfg = config(P2WPKH, &[]);
    let whole = Arc::new(Template::from_json(small()).unwrap());
    let coinbase = Job::build(JobId(1), whole.clone(), &cfg)
        .unwrap()
        .coinbase
        .weight() as u64;
    let exact = whole.header_and_count_weight() + whole.transactions_weight() + coinbase;
    let mut raw = small();
    raw["weightlimit"] = json!(exact);
    let template = Arc::new(Template::from_json(raw.clone()).unwrap());
    assert!(Job::build(JobId(1), template, &cfg).is_ok());
    raw["weightlimit"] = json!(exact - 1);
    let template = Arc::new(Template::from_json(raw).unwrap());
    let refused = Job::build(JobId(1), template, &cfg).err();
    assert_eq!(
        refused,
        Some(CoinbaseError::OverTemplateLimit {
            unit: "weight units",
            needed: coinbase,
            room: coinbase - 1
        })
    );
}

#[test]
fn a_template_over_its_sigop_limit_is_cut_by_sigops() {
    let mut raw = small();
    let bounds = coinbase_bounds(&config(P2PKH, &[P2PKH]), Some(&payout(P2PKH)));
    assert_eq!(bounds.sigops, 8);
    // Room for the transactions' 177 and 7 of the coinbase's 8.
    raw["sigoplimit"] = json!(177 + 7);
    let template = Template::from_json(raw).unwrap();
    let (cut, trimmed) = fit(template, bounds).unwrap();
    let trimmed = trimmed.unwrap();
    // The last transaction has 2 sigops: leaving it out is enough.
    assert_eq!((trimmed.transactions, trimmed.sigops), (1, 2));
    assert_eq!(cut.transactions_sigops() + bounds.sigops, 175 + 8);
    let mut raw = small();
    raw["sigoplimit"] = json!(177 + 7);
    let template = Arc::new(Template::from_json(raw).unwrap());
    let refused = Job::build(JobId(1), template, &config(P2PKH, &[P2PKH])).err();
    assert_eq!(
        refused,
        Some(CoinbaseError::OverTemplateLimit {
            unit: "sigop cost",
            needed: 8,
            room: 7
        })
    );
}

#[test]
fn a_template_that_cannot_be_cut_is_refused_with_its_figures() {
    let bounds = coinbase_bounds(&config(P2WPKH, &[]), None);
    // Core's fees removed: leaving a transaction out would overpay the coinbase.
    let mut raw = small();
    for tx in raw["transactions"].as_array_mut().unwrap() {
        tx.as_object_mut().unwrap().remove("fee");
    }
    let error = fit(short_by(raw, bounds, 1), bounds).unwrap_err();
    assert!(matches!(error, LimitError::FeesUnknown(_)), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("weightlimit") && text.contains("coinbase up to"),
        "{text}"
    );
    // A limit below the coinbase alone.
    let mut raw = small();
    raw["weightlimit"] = json!(bounds.weight);
    let error = fit(Template::from_json(raw).unwrap(), bounds).unwrap_err();
    assert!(matches!(error, LimitError::CoinbaseAlone(_)), "{error}");
}

#[test]
fn node_figures_that_disagree_with_the_data_are_refused_and_old_rules_scaled() {
    let mut raw = small();
    raw["transactions"][0]["weight"] = json!(1);
    assert!(Template::from_json(raw).is_err());
    // Figures no transaction can have, which sums would overflow on.
    for (field, value) in [("sigops", json!(80_001)), ("fee", json!(u64::MAX))] {
        let mut raw = small();
        raw["transactions"][3][field] = value;
        assert!(Template::from_json(raw).is_err(), "{field}");
    }
    // Before segwit Core counts sigops unscaled, its limit a quarter.
    let mut raw = small();
    raw["rules"] = json!(["csv"]);
    raw["sigoplimit"] = json!(20_000);
    raw.as_object_mut()
        .unwrap()
        .remove("default_witness_commitment");
    let template = Template::from_json(raw).unwrap();
    assert_eq!(template.limits.sigops, 80_000);
    assert_eq!(template.transactions_sigops(), 4 * 177);
    // A limit above consensus's is not believed; none at all is consensus's.
    let mut raw = small();
    raw["weightlimit"] = json!(8_000_000);
    raw.as_object_mut().unwrap().remove("sigoplimit");
    let template = Template::from_json(raw).unwrap();
    assert_eq!(template.limits.weight, MAX_BLOCK_WEIGHT);
    assert_eq!(template.limits.sigops, MAX_BLOCK_SIGOPS_COST);
}
