//! An SV2 pool's messages in the orders and shapes the spec allows but a
//! simple client would not expect: targets that apply to later jobs, a
//! prev hash before its job, a new prefix or group, answers in batches.

use super::tests::{feed, fresh, job, open, share, target, tip, CHANNEL, FLOOR, GROUP};
use super::*;
use crate::testkit::now;
use crate::upstream::tests::later;
use crate::upstream::NotSent;

/// `job` with its difficulty, from the events.
fn difficulties(events: &[Event<u32>]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::Job { work, .. } => format!("job {}", work.job_id),
            Event::Difficulty(d) => format!("difficulty {:.3}", d),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn an_easier_target_waits_for_the_next_job_and_a_harder_one_applies_at_once() {
    let mut session = open();
    feed(&mut session, job(4, None));
    feed(&mut session, tip(4));
    // The pool judges a share by its job's target: shares on job 4 below
    // 0.5 would be refused, so 0.25 reaches miners with job 5.
    let easier = FromPool::SetTarget {
        channel_id: CHANNEL,
        target: target(0.25),
    };
    let (_, events) = feed(&mut session, easier);
    assert!(events.is_empty(), "{events:?}");
    let (_, events) = feed(&mut session, job(5, Some(1_700_000_010)));
    assert_eq!(difficulties(&events), ["job 5", "difficulty 0.250"]);
    let harder = FromPool::SetTarget {
        channel_id: GROUP,
        target: target(2.0),
    };
    let (_, events) = feed(&mut session, harder);
    assert_eq!(difficulties(&events), ["difficulty 2.000"]);
}

#[test]
fn a_pool_that_takes_no_rolled_version_bits_is_refused_at_once() {
    let mut session = fresh();
    let fixed = FromPool::SetupSuccess {
        flags: REQUIRES_FIXED_VERSION,
    };
    let (out, events) = feed(&mut session, fixed);
    assert!(out.is_empty(), "no channel is opened: {out:?}");
    assert!(
        matches!(&events[..], [Event::Refused { reason: Refusal::Protocol(why) }] if why.contains("REQUIRES_FIXED_VERSION")),
        "{events:?}"
    );
}

#[test]
fn a_prev_hash_before_its_job_is_mined_when_the_job_comes() {
    let mut session = open();
    feed(&mut session, job(3, None));
    let (_, events) = feed(&mut session, tip(4));
    assert!(events.is_empty(), "job 4 has not come");
    // Job 3 was for the tip before: it is gone.
    let (_, events) = feed(&mut session, job(4, None));
    assert_eq!(difficulties(&events), ["job 4"]);
    assert!(matches!(events[0], Event::Job { clean: true, .. }));
    assert!(session.submit(&share("4", None), 1, now()).is_ok());
    assert!(matches!(
        session.submit(&share("3", None), 2, now()),
        Err(NotSent::UnknownJob(_))
    ));
}

#[test]
fn a_prev_hash_whose_job_never_comes_ends_the_connection_within_the_wait() {
    let mut session = open();
    feed(&mut session, job(4, None));
    feed(&mut session, tip(4));
    feed(&mut session, tip(5));
    let mut events = Vec::new();
    session.tick(later(now(), 9), &mut events);
    assert!(events.is_empty(), "{events:?}");
    session.tick(later(now(), 10), &mut events);
    assert!(
        matches!(&events[..], [Event::Refused { reason: Refusal::Protocol(why) }] if why.contains("job 5")),
        "{events:?}"
    );
}

#[test]
fn jobs_cut_for_an_old_extranonce_prefix_are_never_mined() {
    let mut session = open();
    feed(&mut session, job(4, None));
    let prefix = FromPool::SetExtranoncePrefix {
        channel_id: CHANNEL,
        prefix: vec![1, 2, 3, 4],
    };
    feed(&mut session, prefix);
    let (_, events) = feed(&mut session, tip(4));
    assert!(events.is_empty(), "{events:?}");
    // Nor may a prefix make the extranonce longer than the spec's 32.
    let long = FromPool::SetExtranoncePrefix {
        channel_id: CHANNEL,
        prefix: vec![0; 21],
    };
    let (_, events) = feed(&mut session, long);
    assert!(matches!(&events[..], [Event::Refused { .. }]), "{events:?}");
}

#[test]
fn a_new_group_channel_is_followed_and_the_old_one_is_not_ndas_s() {
    let mut session = open();
    let regroup = FromPool::SetGroupChannel {
        group: 9,
        channels: vec![CHANNEL],
    };
    feed(&mut session, regroup);
    feed(&mut session, job(4, None));
    let mut on_new = tip(4);
    if let FromPool::PrevHash { channel_id, .. } = &mut on_new {
        *channel_id = 9;
    }
    let (_, events) = feed(&mut session, on_new);
    assert_eq!(difficulties(&events), ["job 4"]);
    let (_, events) = feed(&mut session, tip(4));
    assert!(matches!(&events[..], [Event::Refused { .. }]), "{events:?}");
}

#[test]
fn the_channel_s_hashrate_is_told_with_the_floor_and_late_batched_answers_count() {
    let mut session = fresh();
    assert_eq!(session.update(5e12), None, "no channel yet");
    let mut session = open();
    assert_eq!(
        session.update(5e12),
        Some(ToPool::UpdateChannel {
            channel_id: CHANNEL,
            nominal_hash_rate: 5e12,
            maximum_target: target(FLOOR),
        })
    );
    feed(&mut session, job(4, None));
    feed(&mut session, tip(4));
    session.submit(&share("4", None), 1, now()).unwrap();
    // A pool answering every 10 shares at 6 a minute: 100 s later.
    let mut events = Vec::new();
    session.tick(later(now(), 100), &mut events);
    assert!(events.is_empty(), "{events:?}");
    let ack = FromPool::SubmitSuccess {
        channel_id: CHANNEL,
        last_sequence_number: 0,
    };
    let mut events = Vec::new();
    session.handle(ack, later(now(), 100), &mut events);
    assert!(matches!(
        &events[..],
        [Event::Answered {
            tag: 1,
            accepted: true,
            ..
        }]
    ));
}
