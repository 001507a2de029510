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

#[test]
fn further_ports_take_their_own_difficulty_and_default_to_the_pools_bounds() {
    let text = format!(
        "{}\n[difficulty]\nstart = 65536\nmin = 1024\n[[stratum.ports]]\nname = \"bitaxe\"\nlisten = \"0.0.0.0:3334\"\nstart = 512\nmin = 16\n[[stratum.ports]]\nname = \"rental\"\nlisten = \"0.0.0.0:3335\"\nstart = 500000\n",
        minimal()
    );
    let config = Config::from_toml(&text).unwrap();
    config.validate().unwrap();
    let ports = config.ports();
    let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["main", "bitaxe", "rental"]);
    assert_eq!((ports[0].start, ports[0].min), (65536.0, 1024.0));
    assert_eq!((ports[1].start, ports[1].min), (512.0, 16.0));
    assert_eq!(
        (ports[2].start, ports[2].min, ports[2].max),
        (500000.0, 1024.0, 1e15)
    );
}

#[test]
fn a_bad_port_is_named_by_its_index_and_field() {
    let text = format!(
        "{}\n[[stratum.ports]]\nname = \"main\"\nlisten = \"0.0.0.0:3333\"\nstart = 10\nmin = 20\n[[stratum.ports]]\nname = \"has space\"\nlisten = \"127.0.0.1:9100\"\nstart = -1\n",
        minimal()
    );
    let issues = Config::from_toml(&text).unwrap().validate().unwrap_err().0;
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    for key in [
        "stratum.ports[0].name",
        "stratum.ports[0].listen",
        "stratum.ports[0].start",
        "stratum.ports[1].name",
        "stratum.ports[1].listen",
        "stratum.ports[1].start",
    ] {
        assert!(keys.contains(&key), "{key} not reported in {issues:?}");
    }
    let why = |key: &str| &issues.iter().find(|i| i.key == key).unwrap().why;
    assert!(why("stratum.ports[0].name").contains("names two ports"));
    assert!(why("stratum.ports[1].listen").contains("metrics.listen"));
}

#[test]
fn a_tls_port_needs_its_certificate_and_its_key() {
    let port = |files: &str| {
        format!(
            "{}\n[[stratum.ports]]\nname = \"tls\"\nlisten = \"0.0.0.0:4443\"\nstart = 512\n{files}",
            minimal()
        )
    };
    let both = port("tls_cert = \"/etc/ndas/pool.crt\"\ntls_key = \"/etc/ndas/pool.key\"\n");
    let config = Config::from_toml(&both).unwrap();
    config.validate().unwrap();
    let tls = config.ports()[1].tls.clone().expect("a TLS port");
    assert_eq!(tls.cert, std::path::Path::new("/etc/ndas/pool.crt"));
    assert!(
        config.ports()[0].tls.is_none(),
        "stratum.listen stays plain"
    );
    let half = Config::from_toml(&port("tls_cert = \"/etc/ndas/pool.crt\"\n")).unwrap();
    let issues = half.validate().unwrap_err().0;
    assert_eq!(issues[0].key, "stratum.ports[0].tls_cert", "{issues:?}");
    assert!(issues[0].why.contains("tls_key"), "{issues:?}");
}

#[test]
fn the_agent_table_has_defaults_that_a_file_replaces_or_empties() {
    let config = Config::from_toml(&minimal()).unwrap();
    let prefixes: Vec<&str> = config
        .difficulty
        .agents
        .iter()
        .map(|a| a.prefix.as_str())
        .collect();
    assert!(prefixes.contains(&"nicehash") && prefixes.contains(&"cpuminer"));
    let text = format!(
        "{}\n[[difficulty.agents]]\nprefix = \"S19\"\nstart = 32768\n",
        minimal()
    );
    let replaced = Config::from_toml(&text).unwrap();
    replaced.validate().unwrap();
    assert_eq!(replaced.difficulty.agents.len(), 1);
    assert_eq!(replaced.difficulty.agents[0].prefix, "S19");
    let off = Config::from_toml(&format!("{}\n[difficulty]\nagents = []\n", minimal())).unwrap();
    assert!(off.difficulty.agents.is_empty());
    let bad = format!(
        "{}\n[[difficulty.agents]]\nprefix = \"\"\nstart = 1\nmin = 2\n",
        minimal()
    );
    let issues = Config::from_toml(&bad).unwrap().validate().unwrap_err().0;
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        ["difficulty.agents[0].prefix", "difficulty.agents[0].min"]
    );
}

#[test]
fn an_absurd_extranonce2_size_is_reported_not_a_panic() {
    let text = format!(
        "{}\n[stratum]\nextranonce2_size = 9223372036854775807\n",
        minimal()
    );
    let issues = Config::from_toml(&text).unwrap().validate().unwrap_err().0;
    assert_eq!(issues[0].key, "stratum.extranonce2_size");
}

#[test]
fn a_single_node_file_loads_as_before_with_no_backup() {
    let config = Config::from_toml(&minimal()).unwrap();
    config.validate().unwrap();
    assert_eq!(config.node.name, "primary");
    assert!(config.node.backup.is_empty());
    assert_eq!(config.node.entries().count(), 1);
}

#[test]
fn a_mixed_list_of_nodes_is_checked_entry_by_entry() {
    let text = format!(
        "{}\n[node]\nbackend = \"utek\"\n\
         [[node.backup]]\nname = \"dc2\"\nbackend = \"rpc\"\nurl = \"http://10.0.0.2:8332\"\nuser = \"u\"\npassword = \"secret-two\"\npoll_interval_ms = 200\n\
         [[node.backup]]\nname = \"dc2\"\nbackend = \"rpc\"\ntimeout_seconds = 0\n\
         [[node.backup]]\nname = \"bad name!\"\nzmq_hashblock = \"udp://x\"\n",
        minimal()
    );
    let config = Config::from_toml(&text).unwrap();
    assert_eq!(config.node.backup.len(), 3);
    let good = &config.node.backup[0];
    assert_eq!(good.password.as_ref().unwrap().expose(), "secret-two");
    assert_eq!(good.poll_interval_ms, 200);
    // Unset keys take the defaults, as in [node].
    assert_eq!(good.timeout_seconds, 10.0);
    let issues = config.validate().unwrap_err().0;
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    for key in [
        "node.backup[1].name",
        "node.backup[1].timeout_seconds",
        "node.backup[1].url",
        "node.backup[1].user",
        "node.backup[2].name",
        "node.backup[2].zmq_hashblock",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(
        !keys.iter().any(|k| k.starts_with("node.backup[0]")),
        "{keys:?}"
    );
    assert!(!format!("{issues:?}").contains("secret-two"));
}

#[test]
fn a_backup_with_backups_or_too_many_nodes_is_refused() {
    let mut config = Config::from_toml(&minimal()).unwrap();
    let mut backup = NodeConfig {
        name: "b0".into(),
        ..NodeConfig::default()
    };
    backup.backup.push(NodeConfig::default());
    config.node.backup.push(backup);
    for i in 1..8 {
        config.node.backup.push(NodeConfig {
            name: format!("b{i}"),
            ..NodeConfig::default()
        });
    }
    let keys: Vec<String> = config
        .validate()
        .unwrap_err()
        .0
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert!(keys.contains(&"node.backup".to_owned()), "{keys:?}");
    assert!(
        keys.contains(&"node.backup[0].backup".to_owned()),
        "{keys:?}"
    );
}

#[test]
fn notify_targets_are_checked_and_their_secrets_never_shown() {
    let text = format!(
        "{}\n[[notify]]\nname = \"tg\"\nkind = \"telegram\"\n\
         [[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"ftp://x/secret-in-url\"\nevents = [\"block_found\", \"coffee\"]\nworkers_offline_percent = 0\n\
         [[notify]]\nname = \"hook\"\nkind = \"discord\"\nurl = \"https://discord.example/api/webhooks/1/secret-token\"\n",
        minimal()
    );
    let config = Config::from_toml(&text).unwrap();
    let issues = config.validate().unwrap_err().0;
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    for key in [
        "notify[0].token",
        "notify[0].chat_id",
        "notify[1].url",
        "notify[1].events",
        "notify[1].workers_offline_percent",
        "notify[2].name",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(!keys.contains(&"notify[2].url"), "{keys:?}");
    let shown = format!("{issues:?} {config:?}");
    assert!(
        !shown.contains("secret-in-url") && !shown.contains("secret-token"),
        "{shown}"
    );
}

#[test]
fn a_token_or_chat_of_digits_is_taken_as_written() {
    let text = format!(
        "{}\n[[notify]]\nname = \"tg\"\nkind = \"telegram\"\ntoken = 123456\nchat_id = -1001234\n",
        minimal()
    );
    let config = Config::from_toml(&text).unwrap();
    assert_eq!(config.notify[0].token.as_ref().unwrap().expose(), "123456");
    assert_eq!(config.notify[0].chat_id.as_deref(), Some("-1001234"));
    let spaced = text.replace("token = 123456", "token = \"12 34\"");
    let keys: Vec<String> = Config::from_toml(&spaced)
        .unwrap()
        .validate()
        .unwrap_err()
        .0
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(keys, ["notify[0].token"]);
}

/// `[mining]` with `extra` lines, and the issues it has.
fn mining_issues(extra: &str) -> Vec<ConfigIssue> {
    let text = format!("network = \"regtest\"\n[mining]\n{extra}\n");
    match Config::from_toml(&text).unwrap().validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.0,
    }
}

#[test]
fn username_mode_needs_no_payout_address_unless_it_falls_back() {
    assert_eq!(mining_issues("payout_mode = \"username\""), Vec::new());
    let issues = mining_issues("payout_mode = \"username\"\nusername_fallback = true");
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].key, "mining.payout_address");
    assert!(
        issues[0].why.contains("username_fallback"),
        "{}",
        issues[0].why
    );
    assert!(Config::from_toml("[mining]\npayout_mode = \"pool\"").is_err());
}

#[test]
fn splits_are_checked_for_their_address_their_share_and_the_coinbase_weight() {
    let split = |address: &str, bp: u32| {
        format!("[[mining.split]]\naddress = \"{address}\"\nbasis_points = {bp}\n")
    };
    let fixed = format!("payout_address = \"{REGTEST_ADDRESS}\"\n");
    let fee = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    assert_eq!(
        mining_issues(&(fixed.clone() + &split(fee, 150))),
        Vec::new()
    );

    let issues = mining_issues(&format!(
        "{fixed}{}{}{}",
        split(fee, 150),
        split("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", 10),
        split(fee, 0)
    ));
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        ["mining.split[1].address", "mining.split[2].basis_points"],
        "{issues:?}"
    );
    assert!(issues[0].why.contains("regtest"), "{}", issues[0].why);

    let issues = mining_issues(&format!("{fixed}{}{}", split(fee, 9000), split(fee, 1000)));
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(issues[0].why.contains("10000"), "{}", issues[0].why);

    // Twelve P2WSH splits fit Core's default reservation, not its least.
    let wsh = bitcoin::Address::p2wsh(&bitcoin::ScriptBuf::new(), bitcoin::KnownHrp::Regtest);
    let twelve: String = (0..12).map(|_| split(&wsh.to_string(), 10)).collect();
    assert_eq!(mining_issues(&(fixed.clone() + &twelve)), Vec::new());
    let issues = mining_issues(&format!("{fixed}block_reserved_weight = 2000\n{twelve}"));
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].key, "mining.split");
    assert!(
        issues[0].why.contains("WU") && issues[0].why.contains("2000"),
        "{}",
        issues[0].why
    );
    let issues = mining_issues(&format!("{fixed}block_reserved_weight = 1999"));
    assert_eq!(issues[0].key, "mining.block_reserved_weight");
    // A hundred P2PKH splits fit a large reservation, not the 400 sigops.
    let p2pkh: String = (0..100).map(|_| split(REGTEST_ADDRESS, 1)).collect();
    let issues = mining_issues(&format!("{fixed}block_reserved_weight = 400000\n{p2pkh}"));
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(issues[0].why.contains("sigops"), "{}", issues[0].why);
}

#[test]
fn the_number_of_payout_groups_is_bounded() {
    let issues = mining_issues(&format!(
        "payout_address = \"{REGTEST_ADDRESS}\"\nmax_payout_groups = 0"
    ));
    assert_eq!(issues[0].key, "mining.max_payout_groups");
    // Above what a new tip can be built for in tens of milliseconds.
    let issues = mining_issues(&format!(
        "payout_address = \"{REGTEST_ADDRESS}\"\nmax_payout_groups = 10001"
    ));
    assert_eq!(issues[0].key, "mining.max_payout_groups");
    assert!(issues[0].why.contains("1..=10000"), "{}", issues[0].why);
}

#[test]
fn the_new_payout_groups_per_address_are_bounded() {
    let issues = mining_issues(&format!(
        "payout_address = \"{REGTEST_ADDRESS}\"\nmax_new_payout_groups_per_ip = 0"
    ));
    assert_eq!(issues[0].key, "mining.max_new_payout_groups_per_ip");
}

#[test]
fn the_sv2_endpoint_is_a_port_checked_as_the_others_are() {
    let text = format!("{}[sv2]\nlisten = \"0.0.0.0:3336\"\nmin = 4\n", minimal());
    let config = Config::from_toml(&text).unwrap();
    config.validate().unwrap();
    let sv2 = config.ports().pop().unwrap();
    assert!(sv2.sv2 && sv2.tls.is_none());
    assert_eq!((sv2.name.as_str(), sv2.min), ("sv2", 4.0));
    assert_eq!(sv2.start, config.difficulty.start);
    assert_eq!(
        config.sv2.as_ref().unwrap().max_channels_per_connection,
        DEFAULT_MAX_CHANNELS
    );
    // Off unless asked for.
    let config = Config::from_toml(&minimal()).unwrap();
    assert!(config.ports().iter().all(|port| !port.sv2));

    // Another port's name or address, no channels, a start outside its bounds.
    let text = format!(
        "{}[sv2]\nlisten = \"0.0.0.0:3333\"\nname = \"main\"\nmax_channels_per_connection = 0\nstart = 1\nmin = 2\n",
        minimal()
    );
    let issues = Config::from_toml(&text).unwrap().validate().unwrap_err().0;
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    for key in [
        "sv2.name",
        "sv2.listen",
        "sv2.max_channels_per_connection",
        "sv2.start",
    ] {
        assert!(keys.contains(&key), "{key} in {issues:?}");
    }
    let typo = format!(
        "{}[sv2]\nlisten = \"0.0.0.0:3336\"\nmax_channel = 4\n",
        minimal()
    );
    assert!(Config::from_toml(&typo).is_err());
}
