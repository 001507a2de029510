//! The metrics as a read model of the stages' events: node, template,
//! block and payout series. The per-share series are counted by each
//! connection from its session's events ([`crate::stats::connection`]).

use ndas_core::events::{BlockEvent, Event, JobEvent, NodeEvent, PayoutEvent, ReadModel};

use super::Metrics;

impl ReadModel for Metrics {
    fn apply(&self, event: &Event) {
        match event {
            Event::Node(event) => self.node_event(event),
            Event::Job(JobEvent::Published {
                height,
                transactions,
                tip_to_job,
                ..
            }) => {
                self.templates.work_withdrawn.set(0);
                self.upstreams.mining_on(None);
                self.templates.height.set(i64::from(*height));
                self.templates.transactions.set(*transactions as i64);
                if let Some(seconds) = tip_to_job {
                    self.templates.tip_to_job_seconds.observe(*seconds);
                }
            }
            Event::Job(JobEvent::Withdrawn) => {
                self.templates.work_withdrawn.set(1);
                self.templates.withdrawals_total.inc();
                self.upstreams.mining_on(None);
            }
            Event::Job(JobEvent::OnUpstream { name }) => {
                self.templates.work_withdrawn.set(0);
                self.upstreams.mining_on(Some(name));
            }
            Event::Block(event) => self.block_event(event),
            Event::Payout(PayoutEvent::Parked { sessions, bytes }) => {
                self.payouts.parked_sessions.set(*sessions as i64);
                self.payouts.parked_bytes.set(*bytes as i64);
            }
        }
    }
}

impl Metrics {
    fn node_event(&self, event: &NodeEvent) {
        let nodes = &self.nodes;
        match event {
            NodeEvent::Configured { names } => names.iter().for_each(|name| self.node(name)),
            NodeEvent::States {
                nodes: states,
                serving,
            } => {
                for state in states {
                    let label = &[state.name.as_str()];
                    nodes.up.with_label_values(label).set(i64::from(state.up));
                    let behind = i64::from(state.behind);
                    nodes.behind.with_label_values(label).set(behind);
                }
                let source = serving.map_or(-1, |index| index as i64);
                nodes.template_source.set(source);
            }
            NodeEvent::TemplateFetched { seconds } => {
                self.templates.fetch_seconds.observe(*seconds)
            }
            NodeEvent::NoTemplates { .. } => {}
            NodeEvent::OverLimits { outcome } => self
                .templates
                .over_limits_total
                .with_label_values(&[outcome])
                .inc(),
            NodeEvent::Zmq { node, up } => {
                let up = i64::from(*up);
                nodes.zmq_up.with_label_values(&[node]).set(up);
            }
            NodeEvent::ZmqSilent { node } => {
                nodes.zmq_silent_total.with_label_values(&[node]).inc()
            }
            NodeEvent::Hashblock { node } => {
                nodes.zmq_hashblocks_total.with_label_values(&[node]).inc()
            }
            NodeEvent::BlockVerdict { node, outcome } => nodes
                .blocks_total
                .with_label_values(&[node.as_str(), outcome])
                .inc(),
        }
    }

    fn block_event(&self, event: &BlockEvent) {
        let blocks = &self.blocks;
        match event {
            BlockEvent::Journaled { seconds } => blocks.journal_seconds.observe(*seconds),
            BlockEvent::Unjournaled => blocks.unjournaled_total.inc(),
            BlockEvent::Siblings { outcome, count } => blocks
                .siblings_total
                .with_label_values(&[outcome])
                .inc_by(*count),
            BlockEvent::Kept {
                blocks: kept,
                bytes,
            } => {
                blocks.siblings_kept.set(*kept as i64);
                blocks.siblings_kept_bytes.set(*bytes as i64);
            }
            BlockEvent::Submitting => blocks.submitted_total.inc(),
            BlockEvent::Found { delay, .. } => blocks.submit_delay_seconds.observe(*delay),
            BlockEvent::Settled { outcome, .. } => {
                blocks.settled_total.with_label_values(&[outcome]).inc()
            }
        }
    }
}
