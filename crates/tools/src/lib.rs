//! NDAS's bench and demo tools, apart from the server: the load generator
//! ([`load`]: many miners over loopback, the stand-in node, the fan-out
//! floor), the CPU miner ([`miner`]), the fuzz targets' bodies
//! ([`fuzzing`]) and the subcommands that run them ([`cli`]). They are
//! built on the core crate alone, so nothing here is in the server's
//! library.

pub mod cli;
#[doc(hidden)]
pub mod fuzzing;
pub mod load;
pub mod miner;
pub mod sv2_client;
