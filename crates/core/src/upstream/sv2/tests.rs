//! Each test is an SV2 pool, as the Stratum Reference Implementation's
//! behaves or as a broken or hostile one might: the connection ends where
//! the test says, or the share is refused without a message.

use super::*;
use crate::testkit::now;
use crate::upstream::tests::{later, settings, NEEDED};
use crate::upstream::{NotSent, UpstreamLimits, UpstreamShare};

pub(super) const CHANNEL: u32 = 7;
pub(super) const GROUP: u32 = 1;
/// NDAS's miners' floor difficulty: the easiest target asked for.
pub(super) const FLOOR: f64 = 0.001;

pub(super) fn fresh() -> Sv2Upstream<u32> {
    let mut session = Sv2Upstream::new(
        settings(UpstreamLimits::default()),
        ("pool.example".into(), 3336),
        1e6,
        FLOOR,
    );
    let setup = session.start(now());
    assert!(matches!(
        &setup[..],
        [ToPool::Setup {
            flags: REQUIRES_VERSION_ROLLING,
            port: 3336,
            ..
        }]
    ));
    session
}

pub(super) fn feed(
    session: &mut Sv2Upstream<u32>,
    message: FromPool,
) -> (Vec<ToPool>, Vec<Event<u32>>) {
    let mut events = Vec::new();
    let out = session.handle(message, now(), &mut events);
    (out, events)
}

/// A target of difficulty `difficulty`, little-endian.
pub(super) fn target(difficulty: f64) -> [u8; 32] {
    let mut bytes = Target::from_difficulty(difficulty).to_be_bytes();
    bytes.reverse();
    bytes
}

pub(super) fn opened(size: u16) -> FromPool {
    FromPool::OpenSuccess {
        request_id: 1,
        channel_id: CHANNEL,
        target: target(0.5),
        extranonce_prefix: vec![0xab; 4],
        extranonce_size: size,
        group_channel_id: GROUP,
    }
}

/// A session with its channel open at difficulty 0.5.
pub(super) fn open() -> Sv2Upstream<u32> {
    let mut session = fresh();
    let (out, events) = feed(&mut session, FromPool::SetupSuccess { flags: 0 });
    assert!(events.is_empty());
    let [ToPool::OpenExtended {
        min_extranonce_size,
        user,
        max_target,
        ..
    }] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(*max_target, target(FLOOR), "never easier than NDAS's floor");
    assert_eq!(
        (usize::from(*min_extranonce_size), &user[..]),
        (NEEDED, "bc1qndasfleet.rig")
    );
    let (_, events) = feed(&mut session, opened(12));
    let [Event::Ready {
        extranonce1,
        extranonce2_size: 12,
        version_mask: REQUESTED_VERSION_MASK,
    }, Event::Difficulty(d)] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(extranonce1, &[0xab; 4]);
    assert!((d / 0.5 - 1.0).abs() < 1e-6, "{d}");
    session
}

pub(super) fn job(id: u32, min_ntime: Option<u32>) -> FromPool {
    FromPool::NewJob {
        channel_id: CHANNEL,
        job_id: id,
        min_ntime,
        version: 0x2000_0000,
        version_rolling_allowed: true,
        merkle_path: vec![[3; 32]],
        coinbase_prefix: vec![1, 0, 0, 0, 1],
        coinbase_suffix: vec![0xff; 8],
    }
}

pub(super) fn tip(job_id: u32) -> FromPool {
    FromPool::PrevHash {
        channel_id: GROUP,
        job_id,
        prev_hash: [9; 32],
        min_ntime: 1_700_000_000,
        nbits: 0x1d00_ffff,
    }
}

pub(super) fn share(job_id: &str, bits: Option<u32>) -> UpstreamShare {
    UpstreamShare {
        job_id: job_id.into(),
        extranonce2: vec![5; 12],
        ntime: 1_700_000_001,
        nonce: 42,
        version_bits: bits,
    }
}

#[test]
fn a_future_job_is_mined_once_its_prev_hash_comes_and_a_later_one_at_once() {
    let mut session = open();
    let (_, events) = feed(&mut session, job(4, None));
    assert!(events.is_empty(), "a future job waits for its prev hash");
    let (_, events) = feed(&mut session, tip(4));
    let [Event::Job { work, clean: true }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (&work.job_id[..], work.prev_hash, work.bits, work.ntime),
        ("4", [9; 32], 0x1d00_ffff, 1_700_000_000)
    );
    assert_eq!(
        (&work.coinb1[..], &work.coinb2[..]),
        (&[1, 0, 0, 0, 1][..], &[0xff; 8][..])
    );
    let (_, events) = feed(&mut session, job(5, Some(1_700_000_030)));
    let [Event::Job { work, clean: false }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!((&work.job_id[..], work.ntime), ("5", 1_700_000_030));
    // Both may be submitted on; a new tip makes them stale.
    assert!(session.submit(&share("4", None), 1, now()).is_ok());
    feed(&mut session, job(6, None));
    feed(&mut session, tip(6));
    assert_eq!(
        session.submit(&share("5", None), 2, now()),
        Err(NotSent::UnknownJob("5".into()))
    );
}

#[test]
fn a_share_carries_the_rolled_version_and_is_credited_by_its_sequence_number() {
    let mut session = open();
    feed(&mut session, job(4, None));
    feed(&mut session, tip(4));
    let sent = session
        .submit(&share("4", Some(0x0000_6000)), 10, now())
        .unwrap();
    let ToPool::SubmitExtended {
        channel_id,
        sequence_number: 0,
        job_id: 4,
        version,
        extranonce,
        ..
    } = sent
    else {
        panic!("{sent:?}")
    };
    assert_eq!(
        (channel_id, version, extranonce),
        (CHANNEL, 0x2000_6000, vec![5; 12])
    );
    session.submit(&share("4", None), 11, now()).unwrap();
    session.submit(&share("4", None), 12, now()).unwrap();
    // The pool refuses the second, then acknowledges up to the third.
    let refused = FromPool::SubmitError {
        channel_id: CHANNEL,
        sequence_number: 1,
        code: "difficulty-too-low".into(),
    };
    let (_, events) = feed(&mut session, refused);
    let [Event::Answered {
        tag: 11,
        accepted: false,
        reason: Some(reason),
        ..
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(reason.message, "difficulty-too-low");
    let (_, events) = feed(
        &mut session,
        FromPool::SubmitSuccess {
            channel_id: CHANNEL,
            last_sequence_number: 2,
        },
    );
    let tags: Vec<(u32, bool)> = events
        .iter()
        .map(|e| match e {
            Event::Answered { tag, accepted, .. } => (*tag, *accepted),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(tags, [(10, true), (12, true)]);
    let counts = session.counts();
    assert_eq!(
        (counts.accepted, counts.rejected, session.in_flight()),
        (2, 1, 0)
    );
}

#[test]
fn shares_the_pool_would_refuse_are_not_sent() {
    let mut session = open();
    assert_eq!(
        session.submit(&share("4", None), 1, now()),
        Err(NotSent::UnknownJob("4".into()))
    );
    feed(&mut session, job(4, None));
    feed(&mut session, tip(4));
    let mut short = share("4", None);
    short.extranonce2.pop();
    assert_eq!(
        session.submit(&short, 1, now()),
        Err(NotSent::Extranonce2Size {
            given: 11,
            expected: 12
        })
    );
    assert!(matches!(
        session.submit(&share("4", Some(0x8000_0000)), 1, now()),
        Err(NotSent::VersionBits { .. })
    ));
    assert!(matches!(
        session.submit(&share("not-a-number", None), 1, now()),
        Err(NotSent::UnknownJob(_))
    ));
    assert_eq!(session.in_flight(), 0);
}

#[test]
fn a_pool_that_cannot_give_each_miner_a_slice_is_refused_with_the_sizes() {
    let mut session = fresh();
    feed(&mut session, FromPool::SetupSuccess { flags: 0 });
    let (_, events) = feed(&mut session, opened(4));
    let [Event::Refused { reason }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(
        *reason,
        Refusal::ExtranonceTooSmall {
            given: 4,
            needed: NEEDED
        }
    );
    assert!(session.is_refused());
    let (_, events) = feed(&mut session, job(4, None));
    assert!(events.is_empty(), "nothing is read after a refusal");
}

#[test]
fn a_pool_that_refuses_the_setup_or_the_channel_says_why() {
    let mut session = fresh();
    let (_, events) = feed(
        &mut session,
        FromPool::SetupError {
            code: "unsupported-feature-flags".into(),
        },
    );
    let [Event::Refused {
        reason: Refusal::Unsubscribed(why),
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert!(why.contains("unsupported-feature-flags"), "{why}");

    let mut session = fresh();
    feed(&mut session, FromPool::SetupSuccess { flags: 0 });
    let error = FromPool::OpenError {
        request_id: 1,
        code: "unknown-user".into(),
    };
    let (_, events) = feed(&mut session, error);
    assert!(
        matches!(&events[..], [Event::Refused { reason: Refusal::Unauthorized(why) }] if why.contains("unknown-user"))
    );
}

#[test]
fn a_pool_that_never_opens_the_channel_times_out_and_in_flight_shares_are_given_up() {
    let mut session = fresh();
    feed(&mut session, FromPool::SetupSuccess { flags: 0 });
    let mut events = Vec::new();
    session.tick(later(now(), 31), &mut events);
    assert!(matches!(
        &events[..],
        [Event::Refused {
            reason: Refusal::Timeout(_)
        }]
    ));

    let mut session = open();
    feed(&mut session, job(4, None));
    feed(&mut session, tip(4));
    session.submit(&share("4", None), 3, now()).unwrap();
    let mut events = Vec::new();
    session.tick(later(now(), 301), &mut events);
    assert!(matches!(&events[..], [Event::Unanswered { tag: 3, .. }]));
    assert_eq!(session.counts().unanswered, 1);
}

#[test]
fn a_pool_that_floods_set_target_is_dropped() {
    let mut session = open();
    let mut refused = None;
    for i in 0..100 {
        let message = FromPool::SetTarget {
            channel_id: CHANNEL,
            target: target(1.0 + f64::from(i)),
        };
        let (_, events) = feed(&mut session, message);
        if let Some(Event::Refused { reason }) = events.last() {
            refused = Some((i, reason.clone()));
            break;
        }
    }
    let (i, reason) = refused.expect("never refused");
    assert_eq!((i, reason), (30, Refusal::FloodsDifficulty(30)));
}

#[test]
fn messages_for_another_channel_jobs_without_rolling_and_bounds_end_the_connection() {
    let mut session = open();
    let mut stray = job(4, None);
    if let FromPool::NewJob { channel_id, .. } = &mut stray {
        *channel_id = 99;
    }
    let (_, events) = feed(&mut session, stray);
    assert!(
        matches!(&events[..], [Event::Refused { reason: Refusal::Protocol(why) }] if why.contains("channel 99"))
    );

    let mut session = open();
    let mut fixed = job(4, None);
    if let FromPool::NewJob {
        version_rolling_allowed,
        ..
    } = &mut fixed
    {
        *version_rolling_allowed = false;
    }
    let (_, events) = feed(&mut session, fixed);
    assert!(
        matches!(&events[..], [Event::VersionMask(0)]),
        "the link refuses a mask of 0"
    );

    let mut session = open();
    let mut long = job(4, None);
    if let FromPool::NewJob { merkle_path, .. } = &mut long {
        *merkle_path = vec![[0; 32]; 33];
    }
    let (_, events) = feed(&mut session, long);
    assert!(
        matches!(&events[..], [Event::Refused { reason: Refusal::Protocol(why) }] if why.contains("merkle path"))
    );
}

#[test]
fn a_new_extranonce_prefix_and_a_reconnect_reach_the_caller() {
    let mut session = open();
    feed(&mut session, job(4, None));
    feed(&mut session, tip(4));
    let prefix = FromPool::SetExtranoncePrefix {
        channel_id: CHANNEL,
        prefix: vec![1, 2],
    };
    let (_, events) = feed(&mut session, prefix);
    assert!(
        matches!(&events[..], [Event::Extranonce { extranonce1, extranonce2_size: 12 }] if extranonce1 == &[1, 2])
    );
    assert!(matches!(
        session.submit(&share("4", None), 1, now()),
        Err(NotSent::UnknownJob(_))
    ));
    let (_, events) = feed(
        &mut session,
        FromPool::Reconnect {
            host: String::new(),
            port: 3337,
        },
    );
    assert!(matches!(
        &events[..],
        [Event::Reconnect {
            host: None,
            port: Some(3337),
            ..
        }]
    ));
}
