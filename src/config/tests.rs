use super::*;

const REGTEST_ADDRESS: &str = "mrj9cVJUyWj4f6zhzK21Pom78XS14TaUjW";

fn minimal() -> String {
    format!("network = \"regtest\"\n[mining]\npayout_address = \"{REGTEST_ADDRESS}\"\n")
}

#[test]
fn the_shipped_config_parses_and_only_lacks_a_payout_address() {
    let config = Config::from_toml(include_str!("../../config/ndas.toml")).unwrap();
    let issues = config.validate().unwrap_err().0;
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].key, "mining.payout_address");
}

#[test]
fn defaults_fill_what_the_file_leaves_out() {
    let config = Config::from_toml(&minimal()).unwrap();
    config.validate().unwrap();
    assert_eq!(config.stratum.listen.port(), 3333);
    assert_eq!(config.stratum.extranonce2_size, 8);
    assert_eq!(config.mining.coinbase_tag, "/NDAS/");
    assert_eq!(config.node.backend, Backend::Utek);
}

#[test]
fn every_bad_value_is_named_by_its_key() {
    let text = format!(
        "{}\n[stratum]\nextranonce2_size = 12\nmax_connections = 0\nmax_connections_per_ip = 0\nmax_lines_per_second = 0\nhandshake_timeout_seconds = nan\nidle_timeout_seconds = -1\nwrite_timeout_seconds = 1e9\n[difficulty]\nstart = -1\nmin = 5\nmax = 1\n[node]\npoll_interval_ms = 1\nbackend = \"rpc\"\n",
        minimal().replace(REGTEST_ADDRESS, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")
    );
    let issues = Config::from_toml(&text).unwrap().validate().unwrap_err().0;
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    for key in [
        "stratum.extranonce2_size",
        "stratum.max_connections",
        "stratum.max_connections_per_ip",
        "stratum.max_lines_per_second",
        "stratum.handshake_timeout_seconds",
        "stratum.idle_timeout_seconds",
        "stratum.write_timeout_seconds",
        "difficulty.start",
        "difficulty.min",
        "mining.payout_address",
        "node.poll_interval_ms",
        "node.url",
        "node.user",
    ] {
        assert!(keys.contains(&key), "{key} not reported in {keys:?}");
    }
}

#[test]
fn more_connections_than_extranonce1_values_are_refused() {
    let text = format!("{}\n[stratum]\nmax_connections = 16777217\n", minimal());
    let issues = Config::from_toml(&text).unwrap().validate().unwrap_err().0;
    assert_eq!(issues[0].key, "stratum.max_connections");
    assert!(issues[0].why.contains("16777216"), "{}", issues[0].why);
    let text = format!("{}\n[stratum]\nmax_connections = 16777216\n", minimal());
    assert!(Config::from_toml(&text).unwrap().validate().is_ok());
}

#[test]
fn unknown_keys_and_wrong_types_are_refused_by_name() {
    let typo = Config::from_toml(&format!(
        "{}\n[stratum]\nlisten_addr = \"0.0.0.0:1\"\n",
        minimal()
    ))
    .unwrap_err();
    assert!(typo.to_string().contains("listen_addr"), "{typo}");
    let instance = Config::from_toml(&format!("instance_id = 300\n{}", minimal())).unwrap_err();
    assert!(instance.0[0].key == "instance_id", "{instance}");
    let network = Config::from_toml("network = \"moonnet\"").unwrap_err();
    assert!(network.0[0].key == "network", "{network}");
}

#[test]
fn passwords_never_print() {
    let text = format!("{}\n[node]\nbackend = \"rpc\"\nurl = \"http://127.0.0.1:8332\"\nuser = \"u\"\npassword = \"hunter2-secret\"\n", minimal());
    let config = Config::from_toml(&text).unwrap();
    config.validate().unwrap();
    assert!(!format!("{config:?}").contains("hunter2-secret"));
    assert_eq!(
        config.node.password.as_ref().unwrap().expose(),
        "hunter2-secret"
    );
}
