//! SIGTERM/SIGINT stop NDAS; SIGHUP reloads its configuration.

use tokio::signal::unix::{signal, SignalKind};

/// What a signal asks for.
pub enum Signal {
    Terminate,
    Reload,
}

/// The signal streams NDAS listens to.
pub struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.terminate.recv() => Signal::Terminate,
            _ = self.interrupt.recv() => Signal::Terminate,
            _ = self.hangup.recv() => Signal::Reload,
        }
    }
}
