//! Never lose a block: a found block is journaled to disk (fdatasync)
//! before `submitblock` goes to any node ([`journal`], [`found`]), sent to
//! every node at once and settled with their verdicts ([`submitter`]),
//! blocks on the current tip ahead of others ([`gate`]).

pub mod found;
pub mod gate;
pub mod journal;
pub mod submitter;

pub use found::{start_journal_thread, BlockSink};
pub use journal::{BlockBytes, Journal, JournalEntry, NodeOutcome, Outcome};
pub use submitter::Submitter;
