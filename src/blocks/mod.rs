//! Never lose a block: a found block is journaled to disk (fdatasync)
//! before `submitblock` goes to any node ([`journal`], [`sink`]), sent to
//! every node at once and settled with their verdicts ([`submitter`],
//! [`deliver`]), blocks on the current tip ahead of others ([`gate`]), only
//! the first block of a parent at once and its siblings kept, bounded, in
//! case it is rejected ([`triage`]).

mod deliver;
pub mod gate;
pub mod journal;
pub mod sink;
pub mod submitter;
pub mod triage;
mod verdict;

pub use deliver::NodeDeliveries;
pub use journal::{BlockBytes, Journal, JournalEntry, NodeOutcome, Outcome};
pub use sink::{start_journal_thread, BlockSink, BlockTriage};
pub use submitter::Submitter;
