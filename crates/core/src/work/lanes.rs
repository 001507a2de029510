//! An upstream pool's connections, its "lanes", and the miners on each
//! (issue 24). A pool sees NDAS as a few miners, not one: each connection
//! carries at most `miners_per_connection` of NDAS's miners (Braiins Farm
//! Proxy aggregates 50 per upstream connection; ckproxy opens another
//! connection when its extranonce2 space runs out), so the pool's vardiff,
//! per-connection limits and a dropped connection each touch a bounded part
//! of the farm.
//!
//! Each connection has its own extranonce1 and jobs, so a miner mines its
//! lane's job: the job stage publishes one job per ready lane in a
//! [`Lanes`] (every payout group gets the same one), and each channel picks
//! its lane's job when it is sent (`Channel::broadcast`). A channel holds
//! a [`Seat`] on its lane while it mines it; the upstream side reads
//! [`Seats::wanted`] to know how many connections the pool's miners need.
//!
//! When more miners come than the ready lanes hold (at failover the farm
//! arrives at once, and the next connections are still shaking hands),
//! they wait on the least loaded lane, over the bound; as lanes with room
//! are published, a miner on a lane over the bound moves to one (with
//! `clean_jobs`: another connection's job).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::Job;

/// How many miners sit on each of one pool's lanes.
#[derive(Debug)]
pub struct Seats {
    counts: Box<[AtomicUsize]>,
    per_lane: usize,
}

impl Seats {
    /// At most `lanes` connections to the pool (one at least), each meant
    /// for `per_lane` miners (one at least).
    pub fn new(lanes: usize, per_lane: usize) -> Arc<Seats> {
        Arc::new(Seats {
            counts: (0..lanes.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            per_lane: per_lane.max(1),
        })
    }

    /// The most connections the pool is opened.
    pub fn max_lanes(&self) -> usize {
        self.counts.len()
    }

    pub fn per_lane(&self) -> usize {
        self.per_lane
    }

    /// Miners on `lane` now.
    pub fn on(&self, lane: usize) -> usize {
        self.counts
            .get(lane)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    /// Miners on the pool's lanes now.
    pub fn seated(&self) -> usize {
        self.counts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }

    /// The connections the seated miners need: one per `per_lane` of them,
    /// one at least (the pool is watched before any miner needs it), at
    /// most [`Seats::max_lanes`] (past it, lanes hold more than
    /// `per_lane`).
    pub fn wanted(&self) -> usize {
        self.seated()
            .div_ceil(self.per_lane)
            .clamp(1, self.max_lanes())
    }

    fn take(self: &Arc<Seats>, lane: usize) -> Seat {
        self.counts[lane].fetch_add(1, Ordering::Relaxed);
        Seat {
            seats: self.clone(),
            lane,
        }
    }
}

/// A channel's place on one lane, given back when dropped.
#[derive(Debug)]
pub struct Seat {
    seats: Arc<Seats>,
    lane: usize,
}

impl Seat {
    pub fn lane(&self) -> usize {
        self.lane
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.seats.counts[self.lane].fetch_sub(1, Ordering::Relaxed);
    }
}

/// One pool's jobs, one per ready lane, as every payout group is given
/// them: each channel mines its own lane's.
#[derive(Debug)]
pub struct Lanes {
    pub pool: usize,
    seats: Arc<Seats>,
    /// `(lane, job)`, by lane; never empty.
    jobs: Vec<(usize, Arc<Job>)>,
    /// Where in `jobs` a lane with room was last found: the next search
    /// starts there, so lanes fill in turn without every channel scanning
    /// them all.
    hint: AtomicUsize,
    /// Set once a search found every lane full: channels over the bound
    /// then stay where they are without searching again (the next lanes
    /// published search afresh).
    full: AtomicBool,
}

impl Lanes {
    /// `jobs` of the pool's lanes in `seats`; none without a job, or with
    /// a lane `seats` does not have.
    pub fn new(pool: usize, seats: Arc<Seats>, mut jobs: Vec<(usize, Arc<Job>)>) -> Option<Lanes> {
        jobs.sort_by_key(|(lane, _)| *lane);
        jobs.dedup_by_key(|(lane, _)| *lane);
        let known = jobs.iter().all(|(lane, _)| *lane < seats.max_lanes());
        (known && !jobs.is_empty()).then_some(Lanes {
            pool,
            seats,
            jobs,
            hint: AtomicUsize::new(0),
            full: AtomicBool::new(false),
        })
    }

    pub fn jobs(&self) -> &[(usize, Arc<Job>)] {
        &self.jobs
    }

    pub fn seats(&self) -> &Arc<Seats> {
        &self.seats
    }

    fn job(&self, lane: usize) -> Option<&Arc<Job>> {
        self.jobs
            .binary_search_by_key(&lane, |(l, _)| *l)
            .ok()
            .map(|at| &self.jobs[at].1)
    }

    /// The place in `jobs` of a lane with room, searching from the last
    /// one found; none when every lane is full.
    fn with_room(&self) -> Option<usize> {
        if self.full.load(Ordering::Relaxed) {
            return None;
        }
        let count = self.jobs.len();
        let start = self.hint.load(Ordering::Relaxed);
        let found = (0..count)
            .map(|step| (start + step) % count)
            .find(|&at| self.seats.on(self.jobs[at].0) < self.seats.per_lane);
        match found {
            Some(at) => self.hint.store(at, Ordering::Relaxed),
            None => self.full.store(true, Ordering::Relaxed),
        }
        found
    }

    /// The job a channel with `seat` mines: its lane's, if the lane is
    /// here and not over the bound while another has room; else it takes
    /// a seat on a lane with room (the least loaded when every one is
    /// full).
    pub fn pick(&self, seat: &mut Option<Seat>) -> Arc<Job> {
        if let Some(held) = seat.as_ref().filter(|s| Arc::ptr_eq(&s.seats, &self.seats)) {
            if let Some(job) = self.job(held.lane) {
                let over = self.seats.on(held.lane) > self.seats.per_lane;
                if !over || self.with_room().is_none() {
                    return job.clone();
                }
            }
        }
        // Given back first: a channel never counts on two lanes.
        *seat = None;
        let at = self.with_room().unwrap_or_else(|| {
            (0..self.jobs.len())
                .min_by_key(|&at| self.seats.on(self.jobs[at].0))
                .expect("Lanes::new keeps at least one job")
        });
        let (lane, job) = &self.jobs[at];
        *seat = Some(self.seats.take(*lane));
        job.clone()
    }
}

#[cfg(test)]
mod tests;
