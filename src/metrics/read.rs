//! What is read back from the metrics: pool-wide sums over the ports (the
//! stop line, `/api/stats`) and the text exposition for `/metrics`.

use prometheus::{Encoder, TextEncoder};

use super::{Metrics, PortMetrics};

impl Metrics {
    /// Connections open now, on every port.
    pub fn connections_open(&self) -> i64 {
        self.sum(|port| port.connections.get())
    }

    /// Shares accepted on every port.
    pub fn shares_accepted(&self) -> u64 {
        self.sum(|port| port.accepted.get())
    }

    /// Shares rejected for `reason` on every port.
    pub fn shares_rejected(&self, reason: &str) -> u64 {
        self.sum(|port| port.rejected(reason).get())
    }

    /// Shares rejected for any reason on every port.
    pub fn shares_rejected_total(&self) -> u64 {
        self.sum(PortMetrics::rejected_total)
    }

    /// Accepted share difficulty on every port.
    pub fn accepted_difficulty(&self) -> f64 {
        self.sum(|port| port.accepted_difficulty.get())
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
