//! The status page in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) loads it from NDAS mining on Bitcoin
//! Core regtest, with a Bitaxe-style and a cpuminer worker attached and the
//! history of an earlier run, and the test reads what the page shows: the
//! chart drawn with data, the node, the block with its worker and verdict,
//! the rigs' distinguishing names, the accounts.

use ndas_testkit as common;

use common::browser::rendered;
use common::{ready_miner, regtest_config, start_ndas, submit_block, temp_dir, RegtestPair};

/// The page as it was drawn, frozen into an SVG of text: its style and body
/// in a `foreignObject`, without its script. This is the picture in the README
/// and `docs/operating.md` (`docs/status-page.svg`, copied from `target/tmp`):
/// text to review and diff, drawn by any browser at the width given, where a
/// PNG would be a binary in the repository.
fn svg_snapshot(dom: &str, width: u32, height: u32) -> String {
    let between = |open: &str, close: &str| {
        let start = dom.find(open).map(|i| i + open.len()).expect(open);
        let end = start + dom[start..].find(close).expect(close);
        &dom[start..end]
    };
    let style = between("<style>", "</style>");
    let mut body = between("<body>", "</body>").to_owned();
    if let Some(script) = body.find("<script") {
        let end = script + body[script..].find("</script>").unwrap() + "</script>".len();
        body.replace_range(script..end, "");
    }
    // HTML to XML: void elements closed, the one named entity HTML keeps, and
    // the inline chart in the SVG namespace.
    let mut xml = String::with_capacity(body.len());
    let mut rest = body.as_str();
    while let Some(at) = rest.find("<input") {
        let end = at + rest[at..].find('>').unwrap();
        xml.push_str(&rest[..end]);
        xml.push_str("/>");
        rest = &rest[end + 1..];
    }
    xml.push_str(rest);
    let xml = xml
        .replace("<br>", "<br/>")
        .replace("&nbsp;", "&#160;")
        .replace("<svg ", "<svg xmlns=\"http://www.w3.org/2000/svg\" ");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\">\n<foreignObject width=\"100%\" height=\"100%\">\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\"><head><style>{style}</style></head>\n\
         <body>{xml}</body></html>\n</foreignObject>\n</svg>\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_fleet_in_a_real_browser() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = common::sv2::with_sv2(regtest_config(&pair, dir.path(), &payout), 8);
    // An upstream pool that is not there: its row says so.
    let nowhere = std::net::SocketAddr::from(([127, 0, 0, 1], common::node::free_port()));
    config.upstream = vec![common::upstream::pool("backup", nowhere, "farm.ndas")];
    // A tenth of the farm routed to it: while it has no job, the node has
    // every miner.
    config.route = vec![
        common::upstream::route("node", 90.0),
        common::upstream::route("backup", 10.0),
    ];
    let (bitaxe, cpu) = (
        "bc1qfarmaccount.rack12-s19-004",
        "bc1qfarmaccount.garage-cpu-1",
    );

    // A first run leaves history: shares and a block.
    let running = start_ndas(config.clone()).await;
    let (mut client, work) =
        ready_miner(running.stratum_addr(), "bitaxe/BM1366/v2.1.0", bitaxe).await;
    common::accepted_shares(&mut client, &work, bitaxe, 0..5).await;
    let block = submit_block(&mut client, &work, bitaxe, 100).await;
    common::wait_for_metric(
        running.metrics_addr(),
        "ndas_blocks_total{outcome=\"accepted\"}",
        |n| n == 1.0,
    )
    .await;
    drop(client);
    running.shutdown().await;

    let running = start_ndas(config).await;
    let (mut one, work) = ready_miner(running.stratum_addr(), "bitaxe/BM1366/v2.1.0", bitaxe).await;
    common::accepted_shares(&mut one, &work, bitaxe, 0..4).await;
    let (mut two, work) = ready_miner(running.stratum_addr(), "cpuminer/2.5.1", cpu).await;
    common::accepted_shares(&mut two, &work, cpu, 0..2).await;

    let url = format!("http://{}/", running.metrics_addr());
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let dom = tokio::task::spawn_blocking(move || rendered(&url, &screenshot))
        .await
        .unwrap();
    assert!(
        dom.contains("<p id=\"error\"></p>"),
        "the page reached the API: {dom}"
    );
    let picture = svg_snapshot(&dom, 900, 1100);
    assert!(!picture.contains("<script") && picture.contains("rack12-s19-004"));
    let snapshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.svg");
    std::fs::write(&snapshot, picture).unwrap();
    // The chart is drawn with data: a line of at least two points.
    let points = dom
        .split("id=\"chart-line\" points=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("");
    assert!(
        points.split(' ').count() >= 2,
        "chart points {points:?} in {dom}"
    );
    // The rigs by the part of their names that tells them apart.
    for rig in ["rack12-s19-004", "garage-cpu-1"] {
        assert!(
            dom.contains(&format!("<span class=\"rig\">{rig}</span>")),
            "{rig} in {dom}"
        );
    }
    // The block, with its worker, time and verdict.
    let hash = block.hash.to_string();
    let block_row = dom
        .split("<tr>")
        .find(|r| r.contains(&hash))
        .unwrap_or_else(|| panic!("no row for {hash} in {dom}"));
    assert!(
        block_row.contains("accepted") && block_row.contains("rack12-s19-004"),
        "{block_row}"
    );
    assert!(
        !block_row.contains("<td>—</td>"),
        "a time for the block: {block_row}"
    );
    // The node and the account, each with its figures.
    let node_row = dom
        .split("<tr>")
        .find(|r| r.contains("<td>primary</td>"))
        .expect("the node row");
    assert!(node_row.contains("serving"), "{node_row}");
    // The upstream pool: no connection, no miner on it, nothing credited.
    let upstream_row = dom
        .split("<tr>")
        .find(|r| r.starts_with("<td>backup</td>"))
        .expect("the upstream row");
    assert!(
        upstream_row.contains("<td>0</td><td>0</td><td>0.00 H/s</td>"),
        "{upstream_row}"
    );
    // The routes: the weights asked for, and the pool's route without work.
    let route_rows: Vec<&str> = dom
        .split("<tr>")
        .filter(|r| r.contains(" %</td>"))
        .collect();
    assert_eq!(route_rows.len(), 2, "{dom}");
    assert!(
        route_rows[0].starts_with("<td>node</td><td>90.0 %</td>")
            && route_rows[0].contains("mining"),
        "{}",
        route_rows[0]
    );
    assert!(
        route_rows[1].starts_with("<td>backup</td><td>10.0 %</td>")
            && route_rows[1].contains("no job"),
        "{}",
        route_rows[1]
    );
    let account = dom
        .split("<tr>")
        .find(|r| r.contains("<td>bc1qfarmaccount</td>"))
        .expect("the account row");
    assert!(
        account.contains("<td>2</td>"),
        "two workers in the account: {account}"
    );
    // Each wire the pool speaks, with its ports, connections and shares
    // (this run's: the counters start again with the process).
    for (protocol, figures) in [
        ("stratum", "<td>1</td><td>2</td>"),
        ("stratum2", "<td>1</td><td>0</td>"),
    ] {
        let cells = format!("<td>{protocol}</td>{figures}");
        assert!(dom.contains(&cells), "{cells} in {dom}");
    }
    let v1 = dom
        .split("<tr>")
        .find(|r| r.starts_with("<td>stratum</td>"))
        .expect("the stratum row");
    assert!(v1.contains("<td>6</td><td>0</td>"), "six accepted: {v1}");
    drop((one, two));
    running.shutdown().await;
}
