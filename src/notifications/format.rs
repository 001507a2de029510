//! Each target's request for an event: the JSON webhook's object, ntfy's
//! text with a title, tags and priority, Telegram's `sendMessage`, and
//! Discord's webhook message (with mentions turned off: a worker's name is a
//! miner's text).

use serde_json::json;

use super::Notice;
use crate::config::{NotifyConfig, NotifyKind};
use ndas_core::Secret;

/// Telegram's API, unless the target's `url` names another.
const TELEGRAM_API: &str = "https://api.telegram.org";

/// One POST. The URI and header values are secrets (a token in either).
pub struct Request {
    pub uri: Secret,
    pub headers: Vec<(&'static str, Secret)>,
    pub body: Vec<u8>,
}

/// A short title and a one-line message for `event`.
fn words(event: &Notice) -> (String, String) {
    match event {
        Notice::BlockFound {
            height,
            hash,
            worker,
        } => (
            format!("Block {height} found"),
            format!("{worker} found block {height} ({hash}); it is journaled and sent to the node"),
        ),
        Notice::BlockSettled {
            height,
            hash,
            worker,
            outcome,
        } => (
            format!("Block {height} {outcome}"),
            format!("The node says {outcome} to block {height} ({hash}) by {worker}"),
        ),
        Notice::NodeDown { node } => (
            format!("Node {node} down"),
            format!("Node {node} does not answer, or gives no templates; /readyz and /api/stats say more"),
        ),
        Notice::NodeUp { node } => (
            format!("Node {node} up"),
            format!("Node {node} answers and gives templates again"),
        ),
        Notice::MinersSentAway => (
            "Miners sent away".to_owned(),
            "No node has given a template within mining.failover_after_seconds: miners are closed (and told mining.reconnect_to, when set) so their backup pools take over; new ones are refused until a node serves".to_owned(),
        ),
        Notice::MinersOnUpstream { upstream } => (
            format!("Miners on upstream pool {upstream}"),
            format!("No node has given a template within mining.failover_after_seconds: miners mine upstream pool {upstream}'s jobs until a node serves"),
        ),
        Notice::MinersBack => (
            "Miners let back in".to_owned(),
            "A node gives templates again: miners are let in and get its work".to_owned(),
        ),
        Notice::Workers { online, offline } => (
            format!("{offline} workers offline"),
            format!(
                "{offline} of {} workers have stopped sharing at their pace; /api/workers?state=offline lists them",
                online + offline
            ),
        ),
    }
}

/// How loud ntfy should be, and its tags.
fn ntfy_style(event: &Notice) -> (&'static str, &'static str) {
    match event.name() {
        "block_found" | "block_accepted" => ("4", "tada"),
        "block_rejected" | "node_down" | "miners_sent_away" => ("5", "rotating_light"),
        "miners_on_upstream" => ("4", "warning"),
        "workers_offline" => ("4", "warning"),
        _ => ("3", "white_check_mark"),
    }
}

/// The request `config` takes for `event` at Unix time `at`.
pub fn request(config: &NotifyConfig, event: &Notice, at: u64) -> Request {
    let (title, message) = words(event);
    let url = config.url.as_ref().map(|u| u.expose()).unwrap_or("");
    let bearer = config.token.as_ref().map(|t| {
        (
            "authorization",
            Secret::new(format!("Bearer {}", t.expose())),
        )
    });
    let json_type = ("content-type", Secret::new("application/json"));
    match config.kind {
        NotifyKind::Webhook => {
            let mut body =
                json!({"event": event.name(), "title": title, "message": message, "at": at});
            if let Some(details) = details(event) {
                body["details"] = details;
            }
            Request {
                uri: Secret::new(url),
                headers: std::iter::once(json_type).chain(bearer).collect(),
                body: body.to_string().into_bytes(),
            }
        }
        NotifyKind::Ntfy => {
            let (priority, tags) = ntfy_style(event);
            let headers = [
                ("title", Secret::new(format!("NDAS: {title}"))),
                ("priority", Secret::new(priority)),
                ("tags", Secret::new(tags)),
            ];
            Request {
                uri: Secret::new(url),
                headers: headers.into_iter().chain(bearer).collect(),
                body: message.into_bytes(),
            }
        }
        NotifyKind::Telegram => {
            let base = if url.is_empty() {
                TELEGRAM_API
            } else {
                url.trim_end_matches('/')
            };
            let token = config.token.as_ref().map(|t| t.expose()).unwrap_or("");
            let text = format!("NDAS: {title}\n{message}");
            Request {
                uri: Secret::new(format!("{base}/bot{token}/sendMessage")),
                headers: vec![json_type],
                body: json!({"chat_id": config.chat_id, "text": text})
                    .to_string()
                    .into_bytes(),
            }
        }
        NotifyKind::Discord => Request {
            uri: Secret::new(url),
            headers: vec![json_type],
            body: json!({
                "content": format!("**NDAS: {title}**\n{message}"),
                "allowed_mentions": {"parse": []},
            })
            .to_string()
            .into_bytes(),
        },
    }
}

/// The event's fields, for the JSON webhook.
fn details(event: &Notice) -> Option<serde_json::Value> {
    Some(match event {
        Notice::BlockFound {
            height,
            hash,
            worker,
        } => json!({"height": height, "hash": hash, "worker": worker}),
        Notice::BlockSettled {
            height,
            hash,
            worker,
            outcome,
        } => json!({"height": height, "hash": hash, "worker": worker, "outcome": outcome}),
        Notice::NodeDown { node } | Notice::NodeUp { node } => json!({"node": node}),
        Notice::Workers { online, offline } => json!({"online": online, "offline": offline}),
        Notice::MinersOnUpstream { upstream } => json!({"upstream": upstream}),
        Notice::MinersSentAway | Notice::MinersBack => return None,
    })
}
