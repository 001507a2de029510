//! Stratum V1, sans I/O: parsing lines into typed methods and writing the
//! server's answers and notifications as ready-to-send bytes.

pub mod error;
pub mod message;
pub mod method;
pub mod notify;

pub use error::{ErrorCode, StratumError};
pub use message::Request;
pub use method::Method;
