//! Which found blocks go to the nodes now, which wait, and which are dropped.
//!
//! Only the first block found on a parent is urgent: its siblings (later
//! blocks on the same parent) are worth something only if the nodes reject
//! it. On regtest, or on testnet4 whenever its 20-minute rule allows a
//! difficulty-1 block, one machine finds thousands of them a second; sent
//! as they come they fill memory, the journal, the logs and the nodes' RPC
//! queues, and the next tip's block waits behind them.
//!
//! So the first block of a parent is submitted at once; siblings are
//! journaled and kept (up to [`Bounds::siblings_per_parent`] a parent and
//! [`Bounds::kept_bytes`] in all), not submitted; the next is submitted only
//! if the one before it is rejected; and they are discarded once a block on
//! that parent, or a later one, is taken. Past the bounds a sibling is
//! dropped before it is journaled: a first block is never dropped.
//!
//! Synchronous and without I/O: connections ask [`Triage::admit`] as they
//! find a block, the submitter hands over what the journal made durable
//! ([`Triage::keep`]) and the nodes' verdicts ([`Triage::settled`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use ndas_core::sync::LockAnyway;

use crate::config::MAX_KEPT_BLOCKS;

/// Parents remembered once nothing of theirs is kept: enough for every
/// parent a late share can still be on, few enough to scan.
const PARENTS_REMEMBERED: usize = 256;

/// What a kept sibling is counted as beyond its head (its entry, record
/// header and hex): its template's transactions are shared, not copied.
const KEPT_OVERHEAD_BYTES: u64 = 512;

/// How many siblings may wait, and how much they may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Siblings kept for one parent (0: none, only first blocks).
    pub siblings_per_parent: usize,
    /// Memory (and journal space) the kept siblings may hold in all.
    pub kept_bytes: u64,
}

/// What to do with a block just found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// The first on its parent (or the first since its parent's last block
    /// was rejected): journal it and submit it at once.
    First,
    /// A sibling: journal it and keep it, not submitted.
    Sibling,
    /// Not journaled, not submitted.
    Drop(Dropped),
}

/// Why a sibling was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// The bounds are reached.
    Full,
    /// A block on its parent or a later one is already taken.
    Superseded,
}

/// What to do with a sibling the journal made durable.
#[derive(Debug)]
pub enum Keep<T> {
    /// Held until its parent's block is settled.
    Held,
    /// Its parent's block was rejected meanwhile: submit it now.
    SubmitNow(T),
    /// Its parent already has a block taken: mark it settled, drop it.
    Discard(T),
}

/// What a verdict on a parent's block frees.
#[derive(Debug)]
pub struct Settled<T> {
    /// The next sibling to submit, after a rejection.
    pub next: Option<T>,
    /// Siblings no longer worth anything, after a block was taken.
    pub discard: Vec<T>,
}

/// One parent's activity since the last summary, for a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub parent: [u8; 32],
    pub height: u32,
    /// Blocks found after the first since the last summary.
    pub more: u64,
    /// Of them, dropped.
    pub dropped: u64,
    /// Siblings of this parent held now.
    pub kept: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No block of this parent is being submitted.
    Open,
    /// One is being submitted; later ones wait.
    InFlight,
    /// A block on it (or a later parent) was taken.
    Taken,
}

struct Parent<T> {
    height: u32,
    state: State,
    /// Siblings admitted, kept or still on their way from the journal.
    admitted: usize,
    /// Siblings the journal made durable, oldest first, with their size.
    held: VecDeque<(T, u64)>,
    more: u64,
    dropped: u64,
}

struct Book<T> {
    parents: HashMap<[u8; 32], Parent<T>>,
    /// Siblings admitted in all, and their bytes.
    kept: usize,
    kept_bytes: u64,
}

/// The found blocks' triage; see the module's comment.
pub struct Triage<T> {
    bounds: Bounds,
    book: Mutex<Book<T>>,
}

impl<T> Triage<T> {
    pub fn new(bounds: Bounds) -> Triage<T> {
        Triage {
            bounds,
            book: Mutex::new(Book {
                parents: HashMap::new(),
                kept: 0,
                kept_bytes: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Book<T>> {
        // Every change below leaves the book whole before it can panic.
        self.book.lock_anyway()
    }

    /// The charge of a sibling whose head (header, count, coinbase) is
    /// `head_bytes` long.
    pub fn charge(head_bytes: usize) -> u64 {
        // The head, its hex for submitblock and the entry's copy.
        head_bytes as u64 * 3 + KEPT_OVERHEAD_BYTES
    }

    /// Decides for a block just found on `parent` at `height`, which would
    /// hold `bytes` (see [`Triage::charge`]) if kept.
    pub fn admit(&self, parent: [u8; 32], height: u32, bytes: u64) -> Admit {
        let mut book = self.lock();
        if !book.parents.contains_key(&parent) {
            book.make_room();
        }
        let Book {
            parents,
            kept,
            kept_bytes,
        } = &mut *book;
        let entry = parents.entry(parent).or_insert_with(|| Parent {
            height,
            state: State::Open,
            admitted: 0,
            held: VecDeque::new(),
            more: 0,
            dropped: 0,
        });
        match entry.state {
            State::Open => {
                entry.state = State::InFlight;
                Admit::First
            }
            State::Taken => {
                entry.more += 1;
                entry.dropped += 1;
                Admit::Drop(Dropped::Superseded)
            }
            State::InFlight => {
                entry.more += 1;
                let fits = entry.admitted < self.bounds.siblings_per_parent
                    && *kept < MAX_KEPT_BLOCKS
                    && *kept_bytes + bytes <= self.bounds.kept_bytes;
                if fits {
                    entry.admitted += 1;
                    *kept += 1;
                    *kept_bytes += bytes;
                    Admit::Sibling
                } else {
                    entry.dropped += 1;
                    Admit::Drop(Dropped::Full)
                }
            }
        }
    }

    /// Takes a sibling admitted as [`Admit::Sibling`], now durable.
    pub fn keep(&self, parent: [u8; 32], bytes: u64, item: T) -> Keep<T> {
        let mut book = self.lock();
        let Some(entry) = book.parents.get_mut(&parent) else {
            // Forgotten (never while it held siblings): treat as taken.
            return Keep::Discard(item);
        };
        match entry.state {
            State::InFlight => {
                entry.held.push_back((item, bytes));
                Keep::Held
            }
            State::Open => {
                entry.state = State::InFlight;
                entry.admitted -= 1;
                book.release(bytes);
                Keep::SubmitNow(item)
            }
            State::Taken => {
                entry.admitted -= 1;
                book.release(bytes);
                Keep::Discard(item)
            }
        }
    }

    /// Takes a block from an earlier run, found on `parent` at `height`: the
    /// first of its parent is submitted, the others kept while they fit.
    pub fn recovered(&self, parent: [u8; 32], height: u32, bytes: u64, item: T) -> Keep<T> {
        match self.admit(parent, height, bytes) {
            Admit::First => Keep::SubmitNow(item),
            Admit::Sibling => self.keep(parent, bytes, item),
            Admit::Drop(_) => Keep::Discard(item),
        }
    }

    /// The nodes' verdict on the block of `parent` at `height` being
    /// submitted: `taken` (accepted, a duplicate, or valid but beaten)
    /// discards every sibling at that height or below; a rejection hands
    /// over the next sibling of that parent, if any.
    pub fn settled(&self, parent: [u8; 32], height: u32, taken: bool) -> Settled<T> {
        let mut book = self.lock();
        let mut settled = Settled {
            next: None,
            discard: Vec::new(),
        };
        if !taken {
            if let Some(entry) = book.parents.get_mut(&parent) {
                if entry.state == State::InFlight {
                    match entry.held.pop_front() {
                        Some((item, bytes)) => {
                            entry.admitted -= 1;
                            settled.next = Some(item);
                            book.release(bytes);
                        }
                        None => entry.state = State::Open,
                    }
                }
            }
            return settled;
        }
        let mut freed = 0;
        for (key, entry) in book.parents.iter_mut() {
            if *key != parent && entry.height > height {
                continue;
            }
            entry.state = State::Taken;
            for (item, bytes) in entry.held.drain(..) {
                entry.admitted -= 1;
                freed += bytes;
                settled.discard.push(item);
            }
        }
        book.kept -= settled.discard.len();
        book.kept_bytes -= freed;
        settled
    }

    /// What each parent saw since the last call, for parents that saw more
    /// than their first block.
    pub fn summaries(&self) -> Vec<Summary> {
        let mut book = self.lock();
        let mut out = Vec::new();
        for (parent, entry) in book.parents.iter_mut() {
            if entry.more > 0 {
                out.push(Summary {
                    parent: *parent,
                    height: entry.height,
                    more: entry.more,
                    dropped: entry.dropped,
                    kept: entry.admitted,
                });
                (entry.more, entry.dropped) = (0, 0);
            }
        }
        out.sort_by_key(|s| s.height);
        out
    }

    /// Siblings admitted now, and what they hold.
    pub fn kept(&self) -> (usize, u64) {
        let book = self.lock();
        (book.kept, book.kept_bytes)
    }
}

impl<T> Book<T> {
    fn release(&mut self, bytes: u64) {
        self.kept -= 1;
        self.kept_bytes -= bytes;
    }

    /// Forgets the lowest parents that hold nothing, once
    /// [`PARENTS_REMEMBERED`] are known. A parent forgotten while its first
    /// block is in flight only means a later block on it is submitted too.
    fn make_room(&mut self) {
        if self.parents.len() < PARENTS_REMEMBERED {
            return;
        }
        let mut idle: Vec<([u8; 32], u32)> = self
            .parents
            .iter()
            .filter(|(_, p)| p.admitted == 0)
            .map(|(key, p)| (*key, p.height))
            .collect();
        idle.sort_by_key(|(_, height)| *height);
        let excess = self.parents.len() + 1 - PARENTS_REMEMBERED / 2;
        for (key, _) in idle.into_iter().take(excess) {
            self.parents.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests;
