//! One miner connection: an explicit state machine that turns lines into
//! answers and events ([`Session`]), and the async loop that moves the bytes
//! ([`connection`]).

pub mod connection;
mod found;
pub mod resume;
pub mod share;
mod state;
pub mod vardiff;

#[cfg(test)]
pub(crate) mod testkit;

pub use found::FoundBlock;
pub use resume::Resumptions;
pub use state::{Event, Now, Output, Parked, Session, SessionConfig};
