//! Publishes jobs: the job manager turns each template into one job per
//! payout group and hands it to the group's miners.

pub mod manager;

pub use manager::JobManager;
