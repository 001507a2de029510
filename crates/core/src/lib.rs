//! NDAS's mining core: what a pool does with Bitcoin data and Stratum, with
//! no I/O and no async runtime. Every front end (a wire protocol) and every
//! source of work (a node's templates) is built on it; it depends on none.
//!
//! - [`chain`]: Bitcoin data (hashes, targets, merkle trees, coinbases,
//!   addresses, headers, blocks).
//! - [`stratum`]: the Stratum V1 codec, one file per method.
//! - [`template`]: a `getblocktemplate` answer, checked and parsed once.
//! - [`work`]: templates become jobs (coinbase split around the
//!   extranonce, merkle branch, serialized `mining.notify`), the payout
//!   outputs, the block limits a template must fit, extranonce1 leases.
//! - [`channel`]: one miner's wire-agnostic state (workers and their
//!   payout group, the jobs sent and their targets, difficulty, share
//!   judging, extranonce1); [`session`]: Stratum V1's state machine
//!   around it, and the parking of ended sessions.
//! - [`share`]: share judging, one pure function; [`vardiff`]: the
//!   difficulty each miner is given; [`found`]: a block a share made;
//!   [`rates`]: hashrate from accepted difficulty, for a worker or a pool.
//! - [`client`]: the miner's side of Stratum V1, hashed with the `bitcoin`
//!   crate as a second implementation; [`upstream`]: the same side toward
//!   an upstream pool NDAS mines for when its nodes fail.
//! - [`secret`]: a credential that never reaches a log; [`clock`]: the
//!   wall clock, read in one place; [`sync`]: locks that keep serving
//!   after a panic; [`bucket`]: the one rate limiter.
//! - [`closed`]: why a miner's connection ended, as every layer names it;
//!   [`labels!`]: an enum's metric labels and their list, from one table.
//! - [`events`]: what the node side, the job stage, the block path and the
//!   payout side tell the operator side's read models.

pub mod bucket;
pub mod by_address;
pub mod chain;
pub mod channel;
pub mod client;
pub mod clock;
pub mod closed;
pub mod events;
pub mod found;
pub mod labels;
pub mod rates;
pub mod secret;
pub mod session;
pub mod share;
pub mod stratum;
pub mod sv2;
pub mod sync;
pub mod template;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod upstream;
pub mod vardiff;
pub mod work;

pub use found::FoundBlock;
pub use secret::Secret;
