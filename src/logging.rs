//! Log set-up: human or JSON lines, level from `RUST_LOG` or `[log] level`,
//! changeable on SIGHUP.

use std::io::IsTerminal;

use ndas::config::{LogConfig, LogFormat};
use ndas_core::sync::LockAnyway;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the level of the running subscriber.
pub struct Reload {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` was set: it wins over the file, reload or not.
    pinned: bool,
    /// The level in force, so a later reload can lower it again.
    current: std::sync::Mutex<String>,
}

impl Reload {
    /// Sets the level from the file; a line saying what changed, if anything did.
    pub fn set_level(&self, level: &str) -> Option<String> {
        let mut current = self.current.lock_anyway();
        if self.pinned || level == *current {
            return None;
        }
        let filter = EnvFilter::try_new(level).ok()?;
        self.handle.reload(filter).ok()?;
        let said = format!("log.level: {current} -> {level}");
        *current = level.to_owned();
        Some(said)
    }
}

/// Installs the global subscriber.
pub fn init(config: &LogConfig) -> Reload {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| EnvFilter::try_new(v).is_ok());
    let pinned = from_env.is_some();
    let level = from_env.unwrap_or_else(|| config.level.clone());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match config.format {
        LogFormat::Human => registry
            .with(tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal()))
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .init(),
    }
    Reload {
        handle,
        pinned,
        current: std::sync::Mutex::new(level),
    }
}
