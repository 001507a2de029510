use super::*;
use crate::node::utek::NodeEndpoint;
use crate::stats::Stats;
use ndas_core::Secret;

fn nodes(names: &[&str]) -> Arc<Nodes> {
    watched(names).0
}

/// Nodes whose events the stats and metrics read.
fn watched(names: &[&str]) -> (Arc<Nodes>, Arc<Stats>) {
    let endpoint = NodeEndpoint {
        host: "127.0.0.1".into(),
        port: 1,
        user: "u".into(),
        password: Secret::new("p"),
    };
    let list = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let rpc = RpcClient::new(&endpoint, Duration::from_secs(1)).unwrap();
            Arc::new(Node::new(
                name.to_string(),
                index,
                Arc::new(rpc),
                Duration::from_secs(1),
            ))
        })
        .collect();
    let stats = Arc::new(Stats::new(Arc::new(crate::metrics::Metrics::new())));
    let events = Events::new(vec![stats.metrics.clone(), stats.clone()]);
    (Nodes::new(list, events), stats)
}

fn at(height: u32) -> Tip {
    Tip {
        hash: Hash256([height as u8; 32]),
        height,
    }
}

fn order(nodes: &Nodes, stay: bool, now: Instant) -> Vec<String> {
    nodes
        .candidates(stay, now)
        .iter()
        .map(|n| n.name.clone())
        .collect()
}

#[test]
fn templates_come_from_the_first_node_at_the_best_tip() {
    let nodes = nodes(&["a", "b", "c"]);
    let now = Instant::now();
    for (node, height) in nodes.list.iter().zip([10, 10, 10]) {
        node.served(at(height));
    }
    assert_eq!(order(&nodes, false, now), ["a", "b", "c"]);
    // b sees a block first: it serves; a and c, trailing, are not asked
    // (their templates would take miners back to the old tip).
    nodes.list[1].served(at(11));
    assert_eq!(order(&nodes, false, now), ["b"]);
    assert_eq!(nodes.best(), Some(at(11)));
    // a and b stop answering: asked last, and their tips no longer count.
    nodes.list[0].state().answering = Some(false);
    nodes.list[1].state().answering = Some(false);
    assert_eq!(nodes.best(), Some(at(10)));
    assert_eq!(order(&nodes, false, now), ["c", "a", "b"]);
}

#[test]
fn between_tips_the_serving_node_stays_until_a_refresh() {
    let nodes = nodes(&["a", "b"]);
    let now = Instant::now();
    nodes.list[0].served(at(10));
    nodes.list[1].served(at(10));
    nodes.set_serving(Some(1));
    assert_eq!(order(&nodes, true, now), ["b", "a"]);
    assert_eq!(order(&nodes, false, now), ["a", "b"]);
    // Staying never keeps a node that trails.
    nodes.list[0].served(at(11));
    assert_eq!(order(&nodes, true, now), ["a"]);
}

#[test]
fn a_node_whose_template_failed_is_passed_over_for_a_while_then_asked_again() {
    let nodes = nodes(&["a", "b"]);
    let now = Instant::now();
    nodes.list[0].failed("http 500".into(), now);
    assert_eq!(order(&nodes, false, now), ["b", "a"]);
    assert!(!nodes.list[0].chain_checked(), "its chain is checked again");
    assert_eq!(
        order(&nodes, false, now + Duration::from_secs(1)),
        ["a", "b"]
    );
    nodes.list[0].failed("http 500".into(), now);
    assert_eq!(
        order(&nodes, false, now + Duration::from_millis(400)),
        ["b", "a"],
        "the second failure waits longer"
    );
}

#[test]
fn a_node_trailing_for_long_enough_is_behind_in_the_metrics_and_the_api() {
    let (nodes, stats) = watched(&["a", "b"]);
    let now = Instant::now();
    nodes.list[0].served(at(10));
    nodes.list[1].served(at(11));
    nodes.publish(now);
    let behind = |stats: &Stats| stats.metrics.nodes.behind.with_label_values(&["a"]).get();
    assert_eq!(behind(&stats), 0);
    nodes.publish(now + BEHIND_AFTER);
    assert_eq!(behind(&stats), 1);
    let snapshot = stats.snapshot();
    assert_eq!(snapshot["nodes"][0]["state"], "behind");
    // Caught up: no longer behind.
    nodes.list[0].served(at(11));
    nodes.publish(now + BEHIND_AFTER * 2);
    assert_eq!(behind(&stats), 0);
}
