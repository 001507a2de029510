//! No value of any key may crash `check-config`: every leaf of a config
//! with one entry in each list is set in turn to hostile values (zero,
//! huge, negative, NaN, infinities, empty and overlong strings), and
//! validating it, and resolving its nodes as `check-config` does, must
//! answer with issues, never a panic.

use std::panic::{catch_unwind, AssertUnwindSafe};

use figment::providers::Serialized;
use figment::value::{Num, Value};
use figment::Figment;

use super::*;

/// A config that uses every section and list, so each of their keys is tried.
fn base() -> Config {
    let text = r#"
network = "regtest"
[stratum]
[[stratum.ports]]
name = "small"
listen = "127.0.0.1:3334"
start = 512
min = 1
max = 1e6
[difficulty]
[[difficulty.agents]]
prefix = "nicehash"
start = 1000000
min = 500000
[mining]
payout_address = "mrj9cVJUyWj4f6zhzK21Pom78XS14TaUjW"
[[mining.split]]
address = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
basis_points = 150
[node]
backend = "rpc"
url = "http://127.0.0.1:18443"
user = "u"
password = "p"
[[node.backup]]
name = "backup"
backend = "rpc"
url = "http://127.0.0.1:18444"
user = "u"
password = "p"
[[notify]]
name = "hook"
kind = "webhook"
url = "https://ops.example/ndas"
"#;
    Config::from_toml(text).expect("the base config reads")
}

fn hostile_numbers() -> Vec<Num> {
    vec![
        Num::U64(0),
        Num::U64(1),
        Num::U64(u64::MAX),
        Num::U64(u64::from(u32::MAX) + 1),
        Num::I64(-1),
        Num::I64(i64::MIN),
        Num::I64(i64::MAX),
        Num::F64(f64::NAN),
        Num::F64(f64::INFINITY),
        Num::F64(f64::NEG_INFINITY),
        Num::F64(1e300),
        Num::F64(-1e300),
        Num::F64(5e-324),
        Num::F64(-0.0),
        Num::F64(0.5),
    ]
}

fn hostile_strings() -> Vec<String> {
    vec![
        String::new(),
        " ".into(),
        "x".repeat(256),
        "x".repeat(70_000),
        "é".repeat(200),
        "\0".into(),
        "[".into(),
        "-1".into(),
        "nan".into(),
        "1e400".into(),
        "0.0.0.0:99999".into(),
    ]
}

/// Every leaf's path from the root (a key, or an index in a list).
fn leaves(value: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Dict(_, dict) => {
            for (key, child) in dict {
                path.push(key.clone());
                leaves(child, path, out);
                path.pop();
            }
        }
        Value::Array(_, items) if !items.is_empty() => {
            for (index, child) in items.iter().enumerate() {
                path.push(index.to_string());
                leaves(child, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

fn leaf_mut<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(value, |value, step| match value {
        Value::Dict(_, dict) => dict.get_mut(step).expect("a key of the base"),
        Value::Array(_, items) => &mut items[step.parse::<usize>().unwrap()],
        _ => unreachable!("a leaf has no children"),
    })
}

/// Validates `config` and resolves its nodes as `check-config` does.
fn check(config: &Config) {
    let _ = config.validate();
    for (_, entry) in config.node.entries() {
        let _ = crate::node::endpoint(entry, config.network);
    }
}

#[test]
fn no_value_of_any_key_panics_check_config() {
    let base = Value::serialize(base()).unwrap();
    let mut paths = Vec::new();
    leaves(&base, &mut Vec::new(), &mut paths);
    assert!(paths.len() > 80, "only {} keys found", paths.len());
    let mut candidates: Vec<Value> = hostile_numbers()
        .into_iter()
        .map(|n| Value::Num(Default::default(), n))
        .collect();
    candidates.extend(
        hostile_strings()
            .into_iter()
            .map(|s| Value::String(Default::default(), s)),
    );
    candidates.push(Value::Array(Default::default(), Vec::new()));
    // Quiet: a panic is reported below, by key and value.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut panics = Vec::new();
    let mut tried = 0;
    for path in &paths {
        for candidate in &candidates {
            let mut value = base.clone();
            *leaf_mut(&mut value, path) = candidate.clone();
            let Ok(config) = Figment::from(Serialized::defaults(value)).extract::<Config>() else {
                continue;
            };
            tried += 1;
            if catch_unwind(AssertUnwindSafe(|| check(&config))).is_err() {
                let shown = format!("{candidate:?}");
                panics.push(format!(
                    "{} = {}",
                    path.join("."),
                    &shown[..shown.len().min(60)]
                ));
            }
        }
    }
    std::panic::set_hook(hook);
    assert!(tried > 500, "only {tried} configs read");
    assert!(
        panics.is_empty(),
        "check-config panicked on:\n{}",
        panics.join("\n")
    );
}

#[test]
fn a_coinbase_tag_too_long_for_one_push_is_named_not_asserted_on() {
    for len in [101, 256, 300, 70_000] {
        let text = format!(
            "network = \"regtest\"\n[mining]\npayout_address = \"mrj9cVJUyWj4f6zhzK21Pom78XS14TaUjW\"\ncoinbase_tag = \"{}\"\n",
            "x".repeat(len)
        );
        let issues = Config::from_toml(&text).unwrap().validate().unwrap_err().0;
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].key, "mining.coinbase_tag");
        assert!(
            issues[0].why.contains(&len.to_string()),
            "{}",
            issues[0].why
        );
    }
}
