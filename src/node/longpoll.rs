//! The longpoll: a `getblocktemplate` held open on the serving node, which
//! Bitcoin Core answers when its template changes (new transactions, not
//! only a new tip), waking the watcher at once instead of at its refresh.

use std::sync::Arc;
use std::time::Duration;

use serde::de::IgnoredAny;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::nodes::Node;
use ndas_core::chain::Network;
use ndas_core::template::Template;

/// The `getblocktemplate` request: segwit always, signet where Core requires it.
pub fn template_request(network: Network, longpoll_id: Option<&str>) -> Value {
    let mut rules = vec!["segwit"];
    if network == Network::Signet {
        rules.push("signet");
    }
    let mut request = json!({ "rules": rules });
    if let Some(id) = longpoll_id {
        request["longpollid"] = json!(id);
    }
    json!([request])
}

/// Points the longpoll at `template`'s id on `node`. Changed only when the
/// node or its id is new: an open longpoll is not dropped for the same one
/// (Core keeps a thread on it).
pub fn follow(
    longpoll_ids: &watch::Sender<Option<(Arc<Node>, String)>>,
    node: &Arc<Node>,
    template: &Template,
) {
    let longpoll = template.longpoll_id.clone().map(|id| (node.clone(), id));
    longpoll_ids.send_if_modified(|current| {
        let same = match (&*current, &longpoll) {
            (Some((a, x)), Some((b, y))) => a.index == b.index && x == y,
            (None, None) => true,
            _ => false,
        };
        if !same {
            *current = longpoll;
        }
        !same
    });
}

/// Holds a longpoll `getblocktemplate` open on the serving node and wakes
/// the fetcher when it returns.
pub async fn run(
    wake: Arc<Notify>,
    mut ids: watch::Receiver<Option<(Arc<Node>, String)>>,
    network: Network,
    // How long one longpoll request may wait for the node.
    timeout: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let current = ids.borrow_and_update().clone();
        let Some((node, id)) = current else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = ids.changed() => if changed.is_err() { return },
            }
            continue;
        };
        let request = template_request(network, Some(&id));
        let call = node
            .rpc
            .call_with_timeout::<IgnoredAny>("getblocktemplate", request, timeout);
        // A node that ignores longpoll answers at once; never ask faster than this.
        let next = tokio::time::Instant::now() + LONGPOLL_MIN_INTERVAL;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            answer = call => if answer.is_ok() { wake.notify_one() },
            // Templates moved to another node: its longpoll instead. (A new
            // id from the same node is not a reason: it answers a stale one.)
            _ = other_node(&mut ids, node.index) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

/// Returns once the longpoll target is a node other than `index` (or none).
async fn other_node(ids: &mut watch::Receiver<Option<(Arc<Node>, String)>>, index: usize) {
    loop {
        if ids.changed().await.is_err() {
            return std::future::pending().await;
        }
        if ids
            .borrow()
            .as_ref()
            .is_none_or(|(node, _)| node.index != index)
        {
            return;
        }
    }
}

/// Least time between the starts of two longpoll requests.
const LONGPOLL_MIN_INTERVAL: Duration = Duration::from_secs(1);
