//! One miner's Stratum V1 session: an explicit state machine that turns
//! lines into answers and events ([`Session`]), synchronous and free of
//! I/O, and the parking of ended sessions for their miners' return
//! ([`resume`]). The loop that moves the bytes is the server's.

pub mod resume;
mod state;

pub use resume::Resumptions;
pub use state::{Event, Now, Output, Parked, Session, SessionConfig};
