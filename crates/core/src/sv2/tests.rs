//! The Stratum V2 state machine as sloppy clients drive it: out-of-order
//! and refused setups, the job order a translator needs, shares judged and
//! refused with their codes; and the helpers `limit_tests` shares.

use super::message::{flags, Open as OpenRequest, Setup, Submitted};
use super::*;
use crate::chain::Network;
use crate::client::hash_share;
use crate::template::Template;
use crate::testkit::{now, template, work, TIP_A, TIP_B};
use crate::vardiff::{Rounding, VardiffConfig};
use crate::work::groups::Payouts;
use crate::work::payout::Payout;

const POOL: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
/// Regtest's bits: half of all hashes are blocks.
const EASY: &str = "207fffff";
/// Mainnet's first bits: no test hash is a block.
pub(super) const HARD: &str = "1d00ffff";

pub(super) type Out = Output<<Latest as Feed>::Receiver>;

pub(super) fn config(difficulty: f64) -> Arc<SessionConfig> {
    Arc::new(SessionConfig {
        extranonce2_size: 8,
        version_mask: 0x1fff_e000,
        vardiff: VardiffConfig {
            start: difficulty,
            min: difficulty,
            max: difficulty * 1e6,
            target_share_seconds: 10.0,
            rounding: Rounding::None,
        },
        agents: Vec::new(),
    })
}

/// A fixed-mode pool with a job on `TIP_A` at `bits`.
pub(super) fn manager(bits: &str) -> Arc<PayoutGroups> {
    let manager = <PayoutGroups>::new(
        crate::testkit::job_config(),
        1,
        Payouts {
            fixed: Some(Payout::parse(POOL, Network::Regtest).unwrap()),
            by_username: None,
            max_groups: 4,
            max_new_per_source: 4,
        },
    );
    publish(&manager, TIP_A, bits);
    manager
}

pub(super) fn publish(manager: &PayoutGroups, tip: &str, bits: &str) -> Arc<Job> {
    let template = Template::from_json(template(tip, bits, 300)).unwrap();
    manager.publish(Arc::new(template)).unwrap().unwrap()
}

pub(super) fn connection(manager: &Arc<PayoutGroups>, max_channels: usize) -> Sv2Session {
    let limits = Sv2Limits {
        max_channels,
        budget: ChannelBudget::new(100),
    };
    let extranonces = Arc::new(ExtranonceAllocator::new(3));
    Sv2Session::new(config(1e-9), limits, extranonces).with_payouts(manager.clone())
}

pub(super) fn setup(flags: u32) -> Inbound {
    Inbound::SetupConnection(Setup {
        protocol: 0,
        min_version: 2,
        max_version: 2,
        flags,
        vendor: "SRI".into(),
        hardware_version: "Translator Proxy".into(),
        firmware: String::new(),
        device_id: String::new(),
    })
}

pub(super) fn open_request(request_id: u32) -> OpenRequest {
    OpenRequest {
        request_id,
        user_identity: format!("{POOL}.miner{request_id}"),
        nominal_hash_rate: 0.0,
        max_target: [0xff; 32],
    }
}

pub(super) fn extended(request_id: u32) -> Inbound {
    Inbound::OpenExtended {
        open: open_request(request_id),
        min_extranonce_size: 4,
    }
}

pub(super) fn send(s: &mut Sv2Session, message: Inbound) -> Out {
    let mut out = Out::default();
    s.handle(message, now(), &mut out);
    out
}

pub(super) fn ready(manager: &Arc<PayoutGroups>) -> Sv2Session {
    let mut s = connection(manager, 4);
    let out = send(&mut s, setup(flags::REQUIRES_VERSION_ROLLING));
    assert!(matches!(
        out.messages[..],
        [Outbound::SetupSuccess {
            used_version: 2,
            flags: 0
        }]
    ));
    s
}

/// The channel id, extranonce prefix and job id an open gave.
pub(super) fn opened(out: &Out) -> (u32, Vec<u8>, u32) {
    let (channel, prefix) = match &out.messages[0] {
        Outbound::OpenExtendedSuccess {
            channel_id,
            extranonce_prefix,
            ..
        }
        | Outbound::OpenStandardSuccess {
            channel_id,
            extranonce_prefix,
            ..
        } => (*channel_id, extranonce_prefix.clone()),
        other => panic!("not an open success: {other:?}"),
    };
    let job = out
        .messages
        .iter()
        .find_map(|m| match m {
            Outbound::SetNewPrevHash { job_id, .. } => Some(*job_id),
            _ => None,
        })
        .expect("a SetNewPrevHash");
    (channel, prefix, job)
}

pub(super) fn submitted(
    channel_id: u32,
    job_id: u32,
    share: &crate::client::Share,
    base: u32,
) -> Submitted {
    Submitted {
        channel_id,
        sequence_number: 7,
        job_id,
        nonce: share.nonce,
        ntime: share.ntime,
        version: base | share.version_bits.unwrap_or(0),
        extranonce: crate::stratum::method::Extranonce2::from_bytes(&share.extranonce2),
    }
}

pub(super) fn codes(out: &Out) -> Vec<&'static str> {
    out.messages
        .iter()
        .filter_map(|m| match m {
            Outbound::SubmitError { code, .. } | Outbound::OpenError { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

#[test]
fn nothing_is_served_before_setup_and_a_second_setup_closes() {
    let manager = manager(HARD);
    let mut s = connection(&manager, 4);
    let out = send(&mut s, extended(1));
    assert!(out.close && out.messages.is_empty());

    let mut s = ready(&manager);
    assert!(s.is_set_up());
    assert_eq!(s.user_agent(), Some("SRI"));
    assert!(send(&mut s, setup(0)).close);
}

#[test]
fn a_setup_for_work_selection_another_protocol_or_version_is_refused_and_closed() {
    let manager = manager(HARD);
    let refused = |message: Inbound| {
        let mut s = connection(&manager, 4);
        let out = send(&mut s, message);
        assert!(out.close && !s.is_set_up());
        match &out.messages[..] {
            [Outbound::SetupError { flags, code }] => (*flags, *code),
            other => panic!("{other:?}"),
        }
    };
    // Every flag not served is named, and only those.
    let asked = flags::REQUIRES_WORK_SELECTION | flags::REQUIRES_VERSION_ROLLING | 1 << 9;
    assert_eq!(
        refused(setup(asked)),
        (
            flags::REQUIRES_WORK_SELECTION | 1 << 9,
            "unsupported-feature-flags"
        )
    );
    let Inbound::SetupConnection(mut other) = setup(0) else {
        unreachable!()
    };
    other.protocol = 1;
    assert_eq!(
        refused(Inbound::SetupConnection(other.clone())),
        (0, "unsupported-protocol")
    );
    other.protocol = 0;
    (other.min_version, other.max_version) = (3, 4);
    assert_eq!(
        refused(Inbound::SetupConnection(other)),
        (0, "protocol-version-mismatch")
    );
}

#[test]
fn an_extended_channel_gets_its_own_prefix_then_a_future_job_and_the_prev_hash_naming_it() {
    let manager = manager(HARD);
    let mut s = ready(&manager);
    let first = send(&mut s, extended(1));
    assert_eq!(first.subscribe.len(), 1, "the group's jobs are waited on");
    let second = send(&mut s, extended(2));
    assert!(second.subscribe.is_empty(), "one wait per group");
    let (a, prefix_a, _) = opened(&first);
    let (b, prefix_b, _) = opened(&second);
    assert!(a != b && a > EXTENDED_GROUP && b > EXTENDED_GROUP);
    assert_eq!(prefix_a.len(), 4);
    assert_ne!(prefix_a, prefix_b, "no two channels search the same space");
    assert!(matches!(
        first.messages[0],
        Outbound::OpenExtendedSuccess {
            request_id: 1,
            extranonce_size: 8,
            group_channel_id: EXTENDED_GROUP,
            ..
        }
    ));
    let job = manager.fixed().unwrap().current().unwrap();
    match &first.messages[1..] {
        [Outbound::NewExtendedJob {
            job_id,
            min_ntime: None,
            job: sent,
            ..
        }, Outbound::SetNewPrevHash {
            job_id: named,
            prev_hash,
            nbits,
            ..
        }, Outbound::SetTarget { target, .. }] => {
            // The target once more, as the success gave it.
            let Outbound::OpenExtendedSuccess { target: given, .. } = &first.messages[0] else {
                unreachable!()
            };
            assert_eq!(target, given);
            assert_eq!(job_id, named);
            assert!(Arc::ptr_eq(sent, &job));
            assert_eq!(prev_hash, &job.prev_hash().0);
            assert_eq!(*nbits, job.template.bits);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_new_tip_is_a_future_job_and_its_prev_hash_and_the_same_tip_a_job_with_min_ntime() {
    let manager = manager(HARD);
    let mut s = ready(&manager);
    let (key, _) = send(&mut s, extended(1)).subscribe.pop().unwrap();
    // The same tip again (new transactions): mined at once.
    let same = publish(&manager, TIP_A, HARD);
    let mut out = Out::default();
    s.on_job(key, same.clone(), now(), &mut out);
    assert!(matches!(
        out.messages[..],
        [Outbound::NewExtendedJob {
            min_ntime: Some(t),
            job_id: 2,
            ..
        }] if t == same.template.cur_time
    ));
    let tip = publish(&manager, TIP_B, HARD);
    let mut out = Out::default();
    s.on_job(key, tip, now(), &mut out);
    assert!(matches!(
        out.messages[..],
        [
            Outbound::NewExtendedJob {
                min_ntime: None,
                job_id: 3,
                ..
            },
            Outbound::SetNewPrevHash { job_id: 3, .. }
        ]
    ));
    // Another group's job reaches no channel.
    let mut out = Out::default();
    s.on_job(key + 1, same, now(), &mut out);
    assert!(out.messages.is_empty());
}

#[test]
fn an_extended_share_is_judged_as_stratum_v1_s_and_a_block_is_reported() {
    let manager = manager(EASY);
    let mut s = ready(&manager);
    let out = send(&mut s, extended(1));
    let (channel, prefix, job_id) = opened(&out);
    let job = manager.fixed().unwrap().current().unwrap();
    let work = work(&job);
    let share = (0..10_000)
        .map(|nonce| {
            hash_share(
                &work,
                &prefix,
                &[5; 8],
                nonce,
                Some(0x0004_0000),
                0x1fff_e000,
            )
        })
        .find(|share| share.is_block)
        .unwrap();
    let out = send(
        &mut s,
        Inbound::SubmitExtended(submitted(channel, job_id, &share, job.version)),
    );
    assert!(
        matches!(
            out.messages[..],
            [Outbound::SubmitSuccess {
                last_sequence_number: 7,
                accepted: 1,
                ..
            }]
        ),
        "{:?}",
        out.messages
    );
    let block = out
        .events
        .iter()
        .find_map(|e| match e {
            Event::Block(block) => Some(block),
            _ => None,
        })
        .expect("the block reported");
    assert_eq!(
        block.hash.0,
        bitcoin::hashes::Hash::to_byte_array(share.hash)
    );
    assert_eq!(block.extranonce1.0.to_vec(), prefix);
    // The same share again is a duplicate.
    let again = send(
        &mut s,
        Inbound::SubmitExtended(submitted(channel, job_id, &share, job.version)),
    );
    assert_eq!(codes(&again), ["duplicate-share"]);
}

#[test]
fn a_standard_channel_is_sent_its_own_merkle_root_and_its_shares_count() {
    let manager = manager(HARD);
    let mut s = ready(&manager);
    let out = send(&mut s, Inbound::OpenStandard(open_request(1)));
    let (channel, prefix, job_id) = opened(&out);
    assert_eq!(prefix.len(), 12, "the whole extranonce");
    let job = manager.fixed().unwrap().current().unwrap();
    let work = work(&job);
    let root = match &out.messages[1] {
        Outbound::NewMiningJob {
            merkle_root,
            min_ntime: None,
            ..
        } => *merkle_root,
        other => panic!("{other:?}"),
    };
    // The miner hashes only a header: the root is the one its coinbase gives.
    let coinbase = [&work.coinb1[..], &prefix, &work.coinb2[..]].concat();
    let txid = crate::chain::Hash256(bitcoin::hashes::Hash::to_byte_array(
        <bitcoin::hashes::sha256d::Hash as bitcoin::hashes::Hash>::hash(&coinbase),
    ));
    assert_eq!(
        root,
        crate::chain::merkle::root_from_branch(&txid, &job.branch).0
    );
    let share = (0..100)
        .map(|nonce| hash_share(&work, &prefix[..4], &prefix[4..], nonce, None, 0))
        .find(|share| share.difficulty > 1e-8)
        .unwrap();
    let mut message = submitted(channel, job_id, &share, job.version);
    message.extranonce = None;
    let out = send(&mut s, Inbound::SubmitStandard(message.clone()));
    assert!(
        matches!(out.messages[..], [Outbound::SubmitSuccess { .. }]),
        "{:?}",
        out.messages
    );
    // A standard share on an extended channel id, or the other way round.
    assert_eq!(
        codes(&send(&mut s, Inbound::SubmitExtended(message))),
        ["invalid-channel-id"]
    );
}

#[test]
fn shares_naming_an_unknown_channel_job_or_extranonce_size_are_refused_with_their_code() {
    let manager = manager(HARD);
    let mut s = ready(&manager);
    let (channel, prefix, job_id) = opened(&send(&mut s, extended(1)));
    let job = manager.fixed().unwrap().current().unwrap();
    let share = (0..100)
        .map(|nonce| hash_share(&work(&job), &prefix, &[1; 8], nonce, None, 0))
        .find(|share| share.difficulty > 1e-8)
        .unwrap();
    let good = submitted(channel, job_id, &share, job.version);
    let mut cases = Vec::new();
    let mut unknown_channel = good.clone();
    unknown_channel.channel_id = 99;
    cases.push(unknown_channel);
    let mut unknown_job = good.clone();
    unknown_job.job_id = job_id + 1;
    cases.push(unknown_job);
    let mut short = good.clone();
    short.extranonce = crate::stratum::method::Extranonce2::from_bytes(&[1; 4]);
    cases.push(short);
    let mut too_long = good.clone();
    too_long.extranonce = None;
    cases.push(too_long);
    let mut version = good.clone();
    version.version ^= 0x0000_0100;
    cases.push(version);
    let got: Vec<_> = cases
        .into_iter()
        .flat_map(|case| codes(&send(&mut s, Inbound::SubmitExtended(case))))
        .collect();
    assert_eq!(
        got,
        [
            "invalid-channel-id",
            "invalid-job-id",
            "invalid-extranonce-size",
            "invalid-extranonce-size",
            "invalid-version"
        ]
    );
}

#[test]
fn a_keepalive_sends_each_channel_its_job_again_under_a_new_id_that_shares_are_judged_on() {
    let manager = manager(HARD);
    let mut s = ready(&manager);
    let (channel, prefix, first) = opened(&send(&mut s, extended(1)));
    let mut out = Out::default();
    s.keepalive(&mut out);
    let again = match &out.messages[..] {
        [Outbound::NewExtendedJob {
            channel_id,
            job_id,
            min_ntime: Some(_),
            ..
        }] if *channel_id == channel && *job_id != first => *job_id,
        other => panic!("{other:?}"),
    };
    // The same work: a share under either id is judged, a duplicate under
    // the other refused.
    let job = manager.fixed().unwrap().current().unwrap();
    let share = (0..100)
        .map(|nonce| hash_share(&work(&job), &prefix, &[3; 8], nonce, None, 0))
        .find(|share| share.difficulty > 1e-8)
        .unwrap();
    let out = send(
        &mut s,
        Inbound::SubmitExtended(submitted(channel, again, &share, job.version)),
    );
    assert!(matches!(out.messages[..], [Outbound::SubmitSuccess { .. }]));
    let out = send(
        &mut s,
        Inbound::SubmitExtended(submitted(channel, first, &share, job.version)),
    );
    assert_eq!(codes(&out), ["duplicate-share"]);
}
