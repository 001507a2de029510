//! The fleet history's tests' helpers: NDAS writing to a real PostgreSQL
//! as one replica, and waits on the database and on the writer's state.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::postgres::Postgres;
use crate::RegtestPair;

/// NDAS on `pair` as replica `instance`, writing the fleet history to `url`.
pub fn fleet_config(
    pair: &RegtestPair,
    dir: &std::path::Path,
    payout: &str,
    instance: u8,
    url: &str,
) -> ndas::config::Config {
    let mut config = crate::regtest_config(pair, dir, payout);
    config.instance_id = instance;
    config.history.database_url = Some(ndas_core::Secret::new(url));
    config
}

/// Waits until `sql` gives `want`.
pub async fn wait_for(pg: &Postgres, sql: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = pg.value(sql);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {got:?}, not {want:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The status page's DOM, rendered by headless Chromium.
pub async fn page(http: std::net::SocketAddr) -> String {
    let dir = crate::temp_dir();
    let shot = dir.path().join("page.png");
    let url = format!("http://{http}/");
    tokio::task::spawn_blocking(move || crate::browser::rendered(&url, &shot))
        .await
        .unwrap()
}

/// Waits until `/api/fleet` says the writer is `state`; its answer.
pub async fn writer_state(http: std::net::SocketAddr, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, fleet) = crate::http_json(http, "/api/fleet").await;
        if fleet["writer"]["state"] == json!(state) {
            return fleet;
        }
        assert!(Instant::now() < deadline, "writer never {state}: {fleet}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
