//! The fleet history's deployment against a real PostgreSQL: the roles
//! `deploy/postgres/init-roles.sh` makes from the passwords
//! `deploy/compose-init.sh` writes, NDAS migrating and writing as its own
//! role through the URL file compose-init.sh writes, and every query of the
//! Grafana fleet dashboard run as Grafana's read-only role, which can read
//! and cannot write.

use std::collections::HashMap;

use ndas_testkit as common;

use common::postgres::Postgres;
use ndas::history::fleet::db::Db;
use ndas::history::fleet::rows::{Batch, BlockRow, StateRow, WorkerMinute};
use serde_json::Value;

/// compose-init.sh in a fresh copy of `deploy/`: its `.env`, and the
/// database URL file it wrote (with its mode).
fn compose_init() -> (HashMap<String, String>, String, u32) {
    use std::os::unix::fs::PermissionsExt;
    let (dir, env) = common::compose_init();
    let file = dir.path().join("deploy/secrets/database_url");
    let url = std::fs::read_to_string(&file).unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    (env, url.trim().to_owned(), mode)
}

/// A dashboard query as Grafana sends it for the last day and customer `acct`.
fn grafana_sql(sql: &str) -> String {
    let (from, to) = ("'2020-01-01T00:00:00Z'", "'2099-01-01T00:00:00Z'");
    let mut sql = sql
        .replace("$__timeFrom()", from)
        .replace("$__timeTo()", to)
        .replace("$account", "acct");
    while let Some(start) = sql.find("$__timeFilter(") {
        let end = start + sql[start..].find(')').unwrap();
        let column = sql[start + "$__timeFilter(".len()..end].to_owned();
        sql.replace_range(start..=end, &format!("{column} BETWEEN {from} AND {to}"));
    }
    assert!(!sql.contains('$'), "a macro the test does not know: {sql}");
    sql
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_roles_let_ndas_write_and_grafana_only_read() {
    let (env, url, mode) = compose_init();
    assert_eq!(mode, 0o600, "the URL file holds a password");
    for key in [
        "POSTGRES_PASSWORD",
        "NDAS_DB_PASSWORD",
        "GRAFANA_DB_PASSWORD",
    ] {
        assert!(env[key].len() >= 32, "{key}");
    }
    assert_ne!(env["NDAS_DB_PASSWORD"], env["GRAFANA_DB_PASSWORD"]);
    assert_eq!(
        url,
        format!(
            "postgres://ndas:{}@postgres:5432/ndas",
            env["NDAS_DB_PASSWORD"]
        )
    );

    let pg = Postgres::start().await;
    let out = std::process::Command::new("bash")
        .arg("deploy/postgres/init-roles.sh")
        .envs(pg.client_env())
        .env("NDAS_DB_PASSWORD", &env["NDAS_DB_PASSWORD"])
        .env("GRAFANA_DB_PASSWORD", &env["GRAFANA_DB_PASSWORD"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // NDAS, as its own role, through the URL compose-init.sh wrote.
    let url = url.replace("@postgres:5432", &format!("@127.0.0.1:{}", pg.port));
    let db = Db::new(&ndas_core::Secret::new(url), "ndas-0", 1).unwrap();
    db.migrate().await.unwrap();
    let now = ndas_core::clock::unix_now();
    let batch = Batch {
        id: 1,
        replica: "ndas-0".into(),
        version: "test".into(),
        started_at: now,
        made_at: now,
        workers: vec![WorkerMinute {
            worker: "acct.rig1".into(),
            minute: now / 60 * 60,
            accepted: 4,
            accepted_difficulty: 4096.0,
            best_share: 9000.0,
            ..WorkerMinute::default()
        }],
        blocks: vec![BlockRow {
            hash: "00".repeat(32),
            height: 101,
            worker: "acct.rig1".into(),
            found_at: now,
            status: "accepted".into(),
            at: now,
            paid: vec![("bcrt1qexample".into(), 312_500_000)],
        }],
        states: vec![StateRow {
            at: now,
            kind: "node".into(),
            name: "primary".into(),
            state: "up".into(),
            detail: None,
        }],
        ..Batch::default()
    };
    db.apply(&batch).await.unwrap();
    db.close().await;

    // Grafana: every panel's query and the customer variable's, read-only.
    let grafana = ("grafana", env["GRAFANA_DB_PASSWORD"].as_str(), "ndas");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string("deploy/grafana/dashboards/fleet.json").unwrap(),
    )
    .unwrap();
    let mut queries: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["title"].as_str().unwrap().to_owned(),
                p["targets"][0]["rawSql"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let variable = &dashboard["templating"]["list"][0];
    queries.push((
        "variable".into(),
        variable["query"].as_str().unwrap().to_owned(),
    ));
    assert!(queries.len() >= 7);
    for (title, sql) in &queries {
        let out = pg.psql_as(grafana, &grafana_sql(sql));
        let rows = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{title}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!rows.trim().is_empty(), "{title} shows nothing");
    }
    let billing = queries
        .iter()
        .find(|(t, _)| t.starts_with("Accepted difficulty by customer"))
        .unwrap();
    let row = String::from_utf8(pg.psql_as(grafana, &grafana_sql(&billing.1)).stdout).unwrap();
    assert!(row.starts_with("acct\t4096\t"), "{row}");
    let write = pg.psql_as(grafana, "DELETE FROM worker_hours");
    assert!(!write.status.success(), "Grafana's role can write");
    assert!(String::from_utf8_lossy(&write.stderr).contains("permission denied"));
    // Nor can anyone but NDAS and Grafana connect to NDAS's database.
    pg.query("CREATE ROLE stranger LOGIN PASSWORD 'stranger-pw'");
    let stranger = pg.psql_as(("stranger", "stranger-pw", "ndas"), "SELECT 1");
    assert!(!stranger.status.success());
}
