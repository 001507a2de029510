//! Sessions for unit tests, on the core's test templates and jobs.

use std::sync::Arc;

use serde_json::Value;

pub use ndas_core::testkit::*;

use super::state::{Now, Output, Session, SessionConfig};
use ndas_core::vardiff::VardiffConfig;
use ndas_core::work::Extranonce1;

/// A time inside every test template's window.
pub fn now() -> Now {
    Now {
        instant: std::time::Instant::now(),
        unix: 1_795_504_100,
    }
}

pub fn session(difficulty: f64) -> Session {
    let config = SessionConfig {
        extranonce2_size: 8,
        version_mask: 0x1fff_e000,
        vardiff: VardiffConfig {
            start: difficulty,
            min: difficulty,
            max: difficulty,
            target_share_seconds: 10.0,
            rounding: ndas_core::vardiff::Rounding::None,
        },
        agents: Vec::new(),
    };
    Session::new(Arc::new(config), Extranonce1([9, 0, 0, 1]), now())
}

/// Sends one line and returns the answers as JSON.
pub fn send(session: &mut Session, line: &str) -> (Vec<Value>, Output) {
    let mut out = Output::default();
    session.handle_line(line, now(), &mut out);
    let answers = out
        .lines
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    (answers, out)
}
