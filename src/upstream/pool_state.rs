//! What one upstream connection holds of its pool, and when the pool's
//! job may be handed to miners.

use ndas_core::work::pool::PoolWork;

use super::Ended;

/// The difficulty a pool's jobs are mined at before it sends one
/// (Stratum V1's default).
pub(super) const DEFAULT_DIFFICULTY: f64 = 1.0;

/// A refusal when the pool lets miners roll fewer version bits than
/// BIP320's, which ASIC firmware rolls once version rolling is agreed (as
/// with NDAS): their shares would be refused by the pool.
pub(super) fn too_narrow(mask: u32) -> Option<Ended> {
    let wanted = ndas_core::upstream::REQUESTED_VERSION_MASK;
    (mask & wanted != wanted).then(|| {
        Ended::Refused(format!(
            "the pool lets miners roll version bits {mask:08x}; NDAS's miners roll {wanted:08x}, and the pool would refuse their shares"
        ))
    })
}

/// What the pool gave this connection: its extranonce, version bits,
/// difficulty and newest job.
#[derive(Default)]
pub(super) struct PoolState {
    pub(super) extranonce: Option<(Vec<u8>, usize)>,
    pub(super) version_mask: u32,
    pub(super) difficulty: Option<f64>,
    pub(super) job: Option<ndas_core::client::Work>,
    /// Jobs the pool sent on this connection.
    pub(super) jobs: u64,
}

impl PoolState {
    /// The pool's newest job as miners may mine it: once the connection is
    /// ready, a job is in hand and the pool's difficulty is known. Pools
    /// send their difficulty with their first job, before or after it; one
    /// that sent none by its second job is mined at Stratum's default. (A
    /// job handed out at the default and then at the pool's lower
    /// difficulty would leave miners that keep to the first one with
    /// shares that are never sent.)
    pub(super) fn work(&self, pool: usize, lane: usize, connection: u64) -> Option<PoolWork> {
        let ((extranonce1, extranonce2_size), job) =
            (self.extranonce.as_ref()?, self.job.as_ref()?);
        if self.difficulty.is_none() && self.jobs < 2 {
            return None;
        }
        Some(PoolWork {
            pool,
            lane,
            connection,
            work: job.clone(),
            extranonce1: extranonce1.clone(),
            extranonce2_size: *extranonce2_size,
            difficulty: self.difficulty.unwrap_or(DEFAULT_DIFFICULTY),
            version_mask: self.version_mask,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(id: &str) -> ndas_core::client::Work {
        ndas_core::client::Work {
            job_id: id.into(),
            prev_hash: [1; 32],
            coinb1: vec![1],
            coinb2: vec![2],
            branch: Vec::new(),
            version: 0x2000_0000,
            bits: 0x207f_ffff,
            ntime: 1,
            clean: true,
        }
    }

    #[test]
    fn a_pool_that_lets_miners_roll_fewer_bits_than_bip320_s_is_refused() {
        assert!(too_narrow(0x1fff_e000).is_none());
        for narrow in [0, 0x00ff_e000, 0x1fff_c000] {
            let Some(Ended::Refused(why)) = too_narrow(narrow) else {
                panic!("{narrow:08x} taken")
            };
            assert!(why.contains(&format!("{narrow:08x}")), "{why}");
        }
    }

    #[test]
    fn a_pool_s_job_waits_for_its_difficulty_until_its_second_job() {
        let mut pool = PoolState {
            extranonce: Some((vec![7; 4], 8)),
            ..PoolState::default()
        };
        assert!(pool.work(0, 0, 1).is_none(), "no job yet");
        (pool.job, pool.jobs) = (Some(work("a")), 1);
        assert!(pool.work(0, 0, 1).is_none(), "its difficulty may follow");
        pool.difficulty = Some(0.5);
        let mined = pool.work(2, 3, 9).unwrap();
        assert_eq!(
            (mined.pool, mined.lane, mined.connection, mined.difficulty),
            (2, 3, 9, 0.5)
        );
        assert_eq!(mined.extranonce1, [7; 4]);

        // A pool that never sends one: Stratum's default from its second job.
        let mut silent = PoolState {
            extranonce: Some((vec![7; 4], 8)),
            ..PoolState::default()
        };
        (silent.job, silent.jobs) = (Some(work("a")), 1);
        assert!(silent.work(0, 0, 1).is_none());
        (silent.job, silent.jobs) = (Some(work("b")), 2);
        assert_eq!(silent.work(0, 0, 1).unwrap().difficulty, DEFAULT_DIFFICULTY);
        // Not before the connection is ready.
        silent.extranonce = None;
        assert!(silent.work(0, 0, 1).is_none());
    }
}
