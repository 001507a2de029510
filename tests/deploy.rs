//! The deployment files, checked here since no Docker engine or cluster runs
//! in CI: every file parses, names only real config keys and metrics, mounts
//! secrets read-only, and probes the real endpoints. `scripts/check-deploy.sh`
//! adds `docker-compose config` and Kubernetes schema validation.

use std::collections::BTreeSet;

use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Vec<Value> {
    let text = read(path);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

/// Every config key, dotted (`stratum.listen`), from the defaults.
fn config_keys() -> BTreeSet<String> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, value, out);
                }
            }
            _ => {
                out.insert(prefix.to_owned());
            }
        }
    }
    // With every optional section present, each of its keys set.
    let mut config = ndas::config::Config::default();
    config.sv2 = Some(ndas::config::Sv2Config {
        listen: "0.0.0.0:3336".parse().unwrap(),
        name: "sv2".into(),
        start: Some(1.0),
        min: Some(1.0),
        max: Some(1.0),
        max_channels_per_connection: 1,
    });
    config.mining.reconnect_to = Some("backup.example:3333".into());
    config.mining.when_no_node = Some(ndas::config::WhenNoNode::Disconnect);
    let mut keys = BTreeSet::new();
    walk("", &serde_json::to_value(config).unwrap(), &mut keys);
    keys
}

fn env_to_key(name: &str) -> String {
    name.trim_start_matches("NDAS_")
        .to_lowercase()
        .replace("__", ".")
}

#[test]
fn compose_runs_node_ndas_prometheus_and_grafana_without_secrets() {
    let compose = &yaml("docker-compose.yml")[0];
    let services = compose["services"].as_object().unwrap();
    for name in ["bitcoind", "ndas", "postgres", "prometheus", "grafana"] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    // The fleet history's URL (it holds a password) from a file, read-only.
    assert_eq!(
        services["ndas"]["environment"]["NDAS_HISTORY__DATABASE_URL_FILE"],
        "/run/secrets/ndas-database-url"
    );
    assert!(
        services["postgres"].get("ports").is_none(),
        "the database is published"
    );
    let ndas = &services["ndas"];
    let volumes: Vec<&str> = ndas["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(volumes.contains(&"./deploy/utek/metadata.json:/opt/utek_v26_rpc_lib/metadata.json:ro"));
    assert!(volumes.contains(&"./deploy/utek/utek_v26.conf:/etc/utek_v26/utek_v26.conf:ro"));
    assert!(volumes.contains(&"./deploy/secrets/database_url:/run/secrets/ndas-database-url:ro"));
    assert!(
        volumes.iter().any(|v| v.ends_with(":/var/lib/ndas")),
        "the block journal needs a volume"
    );
    // NDAS runs as the owner of its 0600 UTEK files, not the image's user.
    let user = ndas["user"].as_str().unwrap();
    assert!(
        user.contains("${NDAS_UID") && user.contains("${NDAS_GID"),
        "{user}"
    );
    let keys = config_keys();
    for name in ndas["environment"].as_object().unwrap().keys() {
        assert!(
            keys.contains(&env_to_key(name)),
            "{name} is not a config key"
        );
    }
    let text = read("docker-compose.yml");
    let code = text.lines().filter(|l| !l.trim_start().starts_with('#'));
    for line in code.filter(|l| l.contains("password") || l.contains("PASSWORD")) {
        assert!(
            line.contains("${"),
            "a literal secret in docker-compose.yml: {line}"
        );
    }
    assert_eq!(
        yaml("deploy/prometheus.yml")[0]["scrape_configs"][0]["static_configs"][0]["targets"][0],
        "ndas:9100"
    );
}

#[test]
fn every_alert_watches_only_metrics_ndas_exports() {
    let names = exported_names();
    let rules = &yaml("deploy/prometheus-alerts.yml")[0]["groups"][0]["rules"];
    let mut alerts = Vec::new();
    for rule in rules.as_array().unwrap() {
        let alert = rule["alert"].as_str().unwrap();
        for word in metric_words(rule["expr"].as_str().unwrap()) {
            assert!(
                names.contains(word),
                "alert {alert} uses {word}, which NDAS does not export"
            );
        }
        assert!(
            rule["labels"]["severity"].is_string(),
            "{alert} has no severity"
        );
        alerts.push(alert);
    }
    for wanted in [
        "NdasNodeDown",
        "NdasBlockNotSettled",
        "NdasBlockRejected",
        "NdasZmqSilent",
    ] {
        assert!(alerts.contains(&wanted), "no {wanted} alert");
    }
    assert_eq!(
        yaml("deploy/prometheus.yml")[0]["rule_files"][0],
        "/etc/prometheus/alerts.yml"
    );
}

/// Every metric family NDAS exports (with its one port and its one node).
fn exported_names() -> BTreeSet<String> {
    let metrics = ndas::metrics::Metrics::new();
    metrics.port("main", 0);
    metrics.node("primary");
    metrics.upstreams.configured("backup");
    metrics.upstreams.difficulty("backup", 1.0);
    metrics.scraped.route_configured("node");
    metrics
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The `ndas_` metric families a PromQL expression reads (histogram series
/// named by their family).
fn metric_words(expr: &str) -> Vec<&str> {
    expr.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("ndas_"))
        .map(|word| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .fold(word, |w, s| w.strip_suffix(s).unwrap_or(w))
        })
        .collect()
}

#[test]
fn the_dashboard_charts_only_metrics_ndas_exports() {
    let names = exported_names();
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/ndas.json")).unwrap();
    let mut charted = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            for word in metric_words(target["expr"].as_str().unwrap()) {
                assert!(
                    names.contains(word),
                    "panel {:?} uses {word}, which NDAS does not export",
                    panel["title"]
                );
                charted += 1;
            }
        }
    }
    assert!(charted >= 14);
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for wanted in [
        "Pool hashrate",
        "Workers",
        "Shares by result and reason",
        "Stale rate",
        "Blocks found",
        "Node state",
    ] {
        assert!(
            titles.iter().any(|t| t.starts_with(wanted)),
            "no {wanted} panel"
        );
    }
    assert_eq!(
        yaml("deploy/grafana/provisioning/datasources/prometheus.yml")[0]["datasources"][0]["uid"],
        "prometheus"
    );
}

fn k8s(kind: &str) -> Value {
    let docs: Vec<Value> = [
        "namespace",
        "configmap",
        "services",
        "statefulset",
        "pdb",
        "servicemonitor",
    ]
    .iter()
    .flat_map(|f| yaml(&format!("deploy/k8s/{f}.yaml")))
    .collect();
    for doc in &docs {
        assert!(
            doc["apiVersion"].is_string() && doc["metadata"]["name"].is_string(),
            "{doc}"
        );
    }
    docs.into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn the_statefulset_maps_ordinals_to_instance_ids_and_probes_the_real_endpoints() {
    let set = k8s("StatefulSet");
    let pod = &set["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env = &container["env"][0];
    assert_eq!(env["name"], "NDAS_INSTANCE_ID");
    assert_eq!(
        env["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let mounts = container["volumeMounts"].as_array().unwrap();
    for path in [
        "/opt/utek_v26_rpc_lib/metadata.json",
        "/etc/utek_v26/utek_v26.conf",
    ] {
        let mount = mounts
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("{path} not mounted"));
        assert_eq!(mount["readOnly"], true);
        assert_eq!(mount["name"], "utek");
    }
    assert_eq!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "utek")
            .unwrap()["secret"]["secretName"],
        "ndas-utek"
    );
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "data"
    );
    assert!(mounts
        .iter()
        .any(|m| m["name"] == "data" && m["mountPath"] == "/var/lib/ndas"));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);

    let service = k8s("Service");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["ports"][0]["port"], 3333);
    assert_eq!(k8s("PodDisruptionBudget")["spec"]["maxUnavailable"], 1);
    assert_eq!(
        k8s("ServiceMonitor")["spec"]["endpoints"][0]["path"],
        "/metrics"
    );
}

#[test]
fn the_configmap_config_is_valid_once_a_payout_address_is_set() {
    let map = k8s("ConfigMap");
    let toml = map["data"]["ndas.toml"].as_str().unwrap().replace(
        "payout_address = \"\"",
        "payout_address = \"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4\"",
    );
    let config = ndas::config::Config::from_toml(&toml).unwrap();
    config.validate().unwrap();
    assert_eq!(config.data_dir, std::path::PathBuf::from("/var/lib/ndas"));
}

#[test]
fn the_image_runs_unprivileged_with_a_health_check() {
    let dockerfile = read("deploy/Dockerfile");
    assert_eq!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count(),
        2,
        "multi-stage"
    );
    assert!(dockerfile.lines().any(|l| l == "USER ndas"));
    assert!(
        dockerfile.contains("HEALTHCHECK") && dockerfile.contains("http://127.0.0.1:9100/healthz")
    );
    let unit = read("deploy/systemd/ndas.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/ndas serve --config /etc/ndas/ndas.toml"));
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
}

/// Operators read the key reference in `docs/configuration.md`, not the code:
/// a key added without a row there, or a row left for a key that is gone,
/// fails here.
#[test]
fn the_docs_document_exactly_the_config_keys() {
    let reference = read("docs/configuration.md");
    let mut documented = BTreeSet::new();
    let section = reference
        .split("<!-- config-reference -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- end config-reference -->").next())
        .expect("docs/configuration.md has a config reference");
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).unwrap().trim();
        documented.insert(cell.trim_matches('`').to_owned());
    }
    let known = config_keys();
    let unknown: Vec<_> = documented.difference(&known).collect();
    let missing: Vec<_> = known.difference(&documented).collect();
    assert!(unknown.is_empty(), "documented but unknown: {unknown:?}");
    assert!(missing.is_empty(), "known but undocumented: {missing:?}");
    // And the shipped config file sets nothing the reference does not list.
    let shipped = read("config/ndas.toml");
    ndas::config::Config::from_toml(&shipped).unwrap();
}
