//! One miner connection: the async loop ([`connection`]) that moves the
//! bytes between a socket and the core's session state machine
//! ([`ndas_core::session::Session`]), and wakes it with its group's jobs.

pub mod connection;

pub use ndas_core::session::{Event, Now, Output, Parked, Resumptions, SessionConfig};

/// A session whose group's jobs come through a `watch` channel.
pub type Session = ndas_core::session::Session<crate::work::JobFeed>;
