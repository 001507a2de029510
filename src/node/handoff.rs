//! The hand-off from the watcher to the job stage: the newest changed
//! template on a `watch` channel (none after one: no node serves, the work
//! is withdrawn), and the job stage's word that it has built it.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use ndas_core::template::Template;

/// A template ready for jobs: changed since the last one, and fitted to the
/// block's bounds with room for the coinbase.
#[derive(Clone, Debug)]
pub struct NewTemplate {
    pub template: Arc<Template>,
    /// When the change was noticed: a new tip's wake-up, or the refresh.
    pub noticed: std::time::Instant,
    /// Whether it builds on another block than the last one published.
    pub new_tip: bool,
    /// Its place in the watcher's sequence, which the job stage reports
    /// back once its jobs are built ([`JobsIn::built`]).
    pub seq: u64,
}

/// The watcher's end of the hand-off to the job stage.
pub struct Handoff {
    templates: watch::Sender<Option<NewTemplate>>,
    built: watch::Receiver<u64>,
    seq: u64,
}

/// The job stage's end: the newest template (none after one: no node
/// serves, the work is withdrawn), and where it says which one it has
/// built (the template's `seq`, whether its jobs could be built or not).
pub struct JobsIn {
    pub templates: watch::Receiver<Option<NewTemplate>>,
    pub built: watch::Sender<u64>,
}

/// The two ends of the hand-off from the watcher to the job stage.
pub fn handoff() -> (Handoff, JobsIn) {
    let (templates, receiver) = watch::channel(None);
    let (done, built) = watch::channel(0);
    let handoff = Handoff {
        templates,
        built,
        seq: 0,
    };
    (
        handoff,
        JobsIn {
            templates: receiver,
            built: done,
        },
    )
}

impl Handoff {
    /// Publishes `template` and waits until the job stage has built it (or
    /// gone, or `shutdown`). The watcher fetches nothing meanwhile: a fetch
    /// parses a whole template (25 ms for 3,500 transactions) on a runtime
    /// thread, and during the build and hand-out of thousands of payout
    /// groups' jobs it would take a core the fan-out needs.
    pub(super) async fn publish(
        &mut self,
        template: Template,
        noticed: std::time::Instant,
        new_tip: bool,
        shutdown: &CancellationToken,
    ) {
        self.seq += 1;
        let seq = self.seq;
        self.templates.send_replace(Some(NewTemplate {
            template: Arc::new(template),
            noticed,
            new_tip,
            seq,
        }));
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = self.built.wait_for(|built| *built >= seq) => {}
        }
    }
}

impl Handoff {
    /// No node has served for the bound: miners' work is withdrawn until
    /// the next template.
    pub(super) fn withdraw(&mut self) {
        self.templates.send_replace(None);
    }
}
