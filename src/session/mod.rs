//! One miner connection: an explicit state machine that turns lines into
//! answers and events ([`Session`]), and the async loop that moves the bytes
//! ([`connection`]).

pub mod connection;
pub mod resume;
mod state;

#[cfg(test)]
pub(crate) mod testkit;

pub use resume::Resumptions;
pub use state::{Event, Now, Output, Parked, Session, SessionConfig};
