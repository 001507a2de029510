//! `[[notify]]`: where NDAS tells the operator that a block was found or
//! judged, a node went down or came back, or too many workers went offline.

use serde::{Deserialize, Serialize};

use super::ConfigIssue;
use ndas_core::Secret;

/// Most notification targets.
pub const MAX_TARGETS: usize = 8;

/// What a target speaks.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    /// A JSON object POSTed to `url`, with `token` as a bearer token.
    Webhook,
    /// A text message POSTed to an ntfy topic (`url`), with a title, tags
    /// and priority, and `token` as a bearer token.
    Ntfy,
    /// Telegram's `sendMessage` for bot `token` to `chat_id` (`url`: the
    /// API's base, `https://api.telegram.org` unless set).
    Telegram,
    /// A Discord webhook (`url`).
    Discord,
}

/// Every event a target may take, as `events` names them.
pub const EVENTS: [&str; 9] = [
    "block_found",
    "block_accepted",
    "block_rejected",
    "node_down",
    "node_up",
    "workers_offline",
    "miners_sent_away",
    "miners_back",
    "miners_on_upstream",
];

/// One target. Its URL and token are secrets: never logged.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// In the logs and the `target` label.
    pub name: String,
    pub kind: NotifyKind,
    #[serde(default)]
    pub url: Option<Secret>,
    #[serde(default)]
    pub token: Option<Secret>,
    /// Telegram's chat (a number or a string).
    #[serde(default, deserialize_with = "string_or_number")]
    pub chat_id: Option<String>,
    /// The events it takes; all of them when empty.
    #[serde(default)]
    pub events: Vec<String>,
    /// `workers_offline` is sent when this share of the workers is offline
    /// (and again once it has fallen below half of it and risen again).
    #[serde(default = "default_offline_percent")]
    pub workers_offline_percent: f64,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Secret>::deserialize(d)?.map(|s| s.expose().to_owned()))
}

fn default_offline_percent() -> f64 {
    10.0
}

impl NotifyConfig {
    /// Whether it takes events named `event`.
    pub fn takes(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }
}

/// What cannot work in `targets`, each by its key.
pub(super) fn issues(targets: &[NotifyConfig]) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    let mut issue = |key: String, why: String| issues.push(ConfigIssue { key, why });
    if targets.len() > MAX_TARGETS {
        issue(
            "notify".into(),
            format!("{} targets; at most {MAX_TARGETS}", targets.len()),
        );
    }
    for (i, target) in targets.iter().enumerate() {
        let key = format!("notify[{i}]");
        if let Some(why) = super::label_name_issue(&target.name, 32) {
            issue(format!("{key}.name"), why);
        }
        if targets[..i].iter().any(|other| other.name == target.name) {
            issue(
                format!("{key}.name"),
                format!("`{}` names another target too", target.name),
            );
        }
        let url_ok = |url: &Secret| {
            let url = url.expose();
            (url.starts_with("https://") || url.starts_with("http://"))
                && url.parse::<hyper::Uri>().is_ok_and(|u| u.host().is_some())
        };
        match (&target.url, target.kind) {
            (None, NotifyKind::Telegram) => {}
            (None, _) => issue(format!("{key}.url"), "is required".into()),
            // The URL is a secret (a Discord webhook's holds its token): never shown.
            (Some(url), _) if !url_ok(url) => issue(
                format!("{key}.url"),
                "must be an http:// or https:// URL with a host".into(),
            ),
            _ => {}
        }
        if target.kind == NotifyKind::Telegram {
            if target.token.is_none() {
                issue(
                    format!("{key}.token"),
                    "is required: the bot's token".into(),
                );
            }
            if target.chat_id.as_deref().is_none_or(str::is_empty) {
                issue(format!("{key}.chat_id"), "is required".into());
            }
        }
        for event in target
            .events
            .iter()
            .filter(|e| !EVENTS.contains(&e.as_str()))
        {
            issue(
                format!("{key}.events"),
                format!("`{event:.40}` is not one of {}", EVENTS.join(", ")),
            );
        }
        // Sent in a header or a URL path: printable ASCII, no spaces.
        let token_ok =
            |t: &Secret| !t.expose().is_empty() && t.expose().bytes().all(|b| b.is_ascii_graphic());
        if target.token.as_ref().is_some_and(|t| !token_ok(t)) {
            issue(
                format!("{key}.token"),
                "must be printable ASCII without spaces".into(),
            );
        }
        let p = target.workers_offline_percent;
        if !(p.is_finite() && (0.1..=100.0).contains(&p)) {
            issue(
                format!("{key}.workers_offline_percent"),
                format!("{p} is outside 0.1..=100"),
            );
        }
    }
    issues
}
