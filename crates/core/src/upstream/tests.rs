//! Each test is a pool, sloppy or hostile, sending what ckpool and para
//! send (or what a broken pool might): the session must end up where the
//! test says, or refuse the share without a line.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::testkit::now;

/// NDAS's slice (4 bytes per miner) and the miners' 4-byte extranonce2.
pub(super) const NEEDED: usize = 8;
pub(super) const USER: &str = "bc1qndasfleet.rig";

// What ckpool answers to NDAS's pipelined handshake.
pub(super) const CONFIGURED: &str =
    r#"{"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null,"id":1}"#;
pub(super) const SUBSCRIBED: &str =
    r#"{"result":[[["mining.notify","2a8f5c01"]],"2a8f5c01",8],"error":null,"id":2}"#;
pub(super) const AUTHORIZED: &str = r#"{"result":true,"error":null,"id":3}"#;
pub(super) const DIFFICULTY: &str =
    r#"{"params":[10000],"id":null,"method":"mining.set_difficulty"}"#;

pub(super) fn settings(limits: UpstreamLimits) -> UpstreamSettings {
    UpstreamSettings {
        user: USER.into(),
        password: Secret::new("x"),
        agent: "NDAS/0.1".into(),
        min_extranonce2: NEEDED,
        limits,
    }
}

pub(super) fn started(limits: UpstreamLimits) -> UpstreamSession<u32> {
    let mut session = UpstreamSession::new(settings(limits));
    session.start(now());
    session
}

pub(super) fn feed(session: &mut UpstreamSession<u32>, line: &str) -> Vec<Event<u32>> {
    feed_at(session, line, now())
}

pub(super) fn feed_at(session: &mut UpstreamSession<u32>, line: &str, at: Now) -> Vec<Event<u32>> {
    let mut events = Vec::new();
    session.handle_line(line, at, &mut events);
    events
}

/// `now` moved on by `seconds`.
pub(super) fn later(base: Now, seconds: u64) -> Now {
    Now {
        instant: base.instant + Duration::from_secs(seconds),
        unix: base.unix + seconds as u32,
    }
}

/// A `mining.notify` as pools send it (the stratum docs' classic job),
/// with `job_id`, a branch of `steps` hashes and `clean`.
pub(super) fn notify(job_id: &str, steps: usize, clean: bool) -> String {
    let branch: Vec<String> = (0..steps).map(|i| format!("{i:02x}").repeat(32)).collect();
    json!({
        "params": [
            job_id,
            "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000",
            "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008",
            "072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000",
            branch,
            "20000000",
            "1c2ac4af",
            "504e86b9",
            clean
        ],
        "id": null,
        "method": "mining.notify"
    })
    .to_string()
}

/// A session through ckpool's handshake, with job `1f` to mine.
pub(super) fn ready(limits: UpstreamLimits) -> UpstreamSession<u32> {
    ready_at(limits, now())
}

/// [`ready`], every line read at `at`.
pub(super) fn ready_at(limits: UpstreamLimits, at: Now) -> UpstreamSession<u32> {
    let mut session = UpstreamSession::new(settings(limits));
    session.start(at);
    for line in [CONFIGURED, SUBSCRIBED, AUTHORIZED, DIFFICULTY] {
        feed_at(&mut session, line, at);
    }
    feed_at(&mut session, &notify("1f", 2, true), at);
    assert_eq!(session.state(), &State::Ready);
    session
}

pub(super) fn share(job_id: &str, nonce: u32) -> UpstreamShare {
    UpstreamShare {
        job_id: job_id.into(),
        extranonce2: vec![0x09, 0, 0, 1, 0, 0, 0, 7],
        ntime: 0x504e_86b9,
        nonce,
        version_bits: Some(0x0000_4000),
    }
}

pub(super) fn refusal(events: &[Event<u32>]) -> Option<Refusal> {
    events.iter().find_map(|e| match e {
        Event::Refused { reason } => Some(reason.clone()),
        _ => None,
    })
}

pub(super) fn is_protocol_error(events: &[Event<u32>], session: &UpstreamSession<u32>) -> bool {
    matches!(refusal(events), Some(Refusal::Protocol(_)))
        && matches!(session.state(), State::Refused(Refusal::Protocol(_)))
}

#[test]
fn the_handshake_is_pipelined_configure_subscribe_authorize() {
    let mut session: UpstreamSession<u32> = UpstreamSession::new(settings(Default::default()));
    let lines: Vec<Value> = session
        .start(now())
        .iter()
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            json!({"id": 1, "method": "mining.configure", "params": [["version-rolling"],
                {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2}]}),
            json!({"id": 2, "method": "mining.subscribe", "params": ["NDAS/0.1"]}),
            json!({"id": 3, "method": "mining.authorize", "params": [USER, "x"]}),
        ]
    );
    assert!(
        session.start(now()).is_empty(),
        "one handshake a connection"
    );
    assert_eq!(session.state(), &State::Connecting);
}

#[test]
fn ckpool_grants_the_version_mask_and_the_session_is_ready() {
    let mut session = started(Default::default());
    assert!(feed(&mut session, CONFIGURED).is_empty());
    assert!(feed(&mut session, SUBSCRIBED).is_empty());
    assert_eq!(session.state(), &State::Subscribed);
    let events = feed(&mut session, AUTHORIZED);
    let Some(Event::Ready {
        extranonce1,
        extranonce2_size,
        version_mask,
    }) = events.first()
    else {
        panic!("not ready: {events:?}");
    };
    assert_eq!(extranonce1, &[0x2a, 0x8f, 0x5c, 0x01]);
    assert_eq!((*extranonce2_size, *version_mask), (8, 0x1fff_e000));
    let events = feed(&mut session, DIFFICULTY);
    assert!(matches!(events[..], [Event::Difficulty(d)] if d == 10_000.0));
}

#[test]
fn a_pool_that_does_not_roll_versions_grants_no_mask() {
    for answer in [
        r#"{"id":1,"result":null,"error":[20,"Method 'mining.configure' not found",null]}"#,
        r#"{"id":1,"result":{"version-rolling":false},"error":null}"#,
    ] {
        let mut session = started(Default::default());
        for line in [answer, SUBSCRIBED, AUTHORIZED] {
            feed(&mut session, line);
        }
        assert_eq!(session.state(), &State::Ready, "{answer}");
        assert_eq!(session.version_mask(), 0);
        feed(&mut session, &notify("1f", 0, true));
        let refused = session.submit(&share("1f", 1), 1, now());
        let expected = NotSent::VersionBits {
            bits: 0x4000,
            mask: 0,
        };
        assert_eq!(refused, Err(expected), "rolled bits the pool did not grant");
    }
}

#[test]
fn a_granted_mask_is_cut_to_the_bits_asked_for_and_may_come_late() {
    let mut session = started(Default::default());
    feed(&mut session, SUBSCRIBED);
    assert!(matches!(
        feed(&mut session, AUTHORIZED)[..],
        [Event::Ready {
            version_mask: 0,
            ..
        }]
    ));
    let wide = r#"{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"ffffffff"},"error":null}"#;
    let events = feed(&mut session, wide);
    assert!(matches!(events[..], [Event::VersionMask(0x1fff_e000)]));
    let events = feed(
        &mut session,
        r#"{"id":null,"method":"mining.set_version_mask","params":["00ffe000"]}"#,
    );
    assert!(matches!(events[..], [Event::VersionMask(0x00ff_e000)]));
}

#[test]
fn a_pool_with_a_two_byte_extranonce2_is_refused() {
    let mut session = started(Default::default());
    let events = feed(
        &mut session,
        r#"{"id":2,"result":[[["mining.set_difficulty","1"],["mining.notify","1"]],"08000002",2],"error":null}"#,
    );
    let expected = Refusal::ExtranonceTooSmall {
        given: 2,
        needed: NEEDED,
    };
    assert_eq!(refusal(&events), Some(expected.clone()));
    assert_eq!(session.state(), &State::Refused(expected));
    // Nothing after the refusal counts.
    assert!(feed(&mut session, AUTHORIZED).is_empty());
    assert_eq!(
        session.submit(&share("1f", 1), 1, now()),
        Err(NotSent::NotReady)
    );
}

#[test]
fn a_pool_refusing_authorization_is_refused_with_its_reason() {
    let cases = [
        (r#"{"id":3,"result":false,"error":null}"#, "no reason given"),
        (
            r#"{"id":3,"result":null,"error":[24,"Unauthorized worker",null]}"#,
            "Unauthorized worker (24)",
        ),
        (
            r#"{"id":3,"result":false,"error":"Invalid address"}"#,
            "Invalid address",
        ),
    ];
    for (answer, reason) in cases {
        let mut session = started(Default::default());
        feed(&mut session, SUBSCRIBED);
        let events = feed(&mut session, answer);
        let expected = Refusal::Unauthorized(reason.into());
        assert_eq!(refusal(&events), Some(expected.clone()), "{answer}");
        assert_eq!(session.state(), &State::Refused(expected));
    }
}

#[test]
fn a_job_before_the_subscribe_answer_is_a_protocol_error() {
    let mut session = started(Default::default());
    let events = feed(&mut session, &notify("1f", 0, true));
    assert!(is_protocol_error(&events, &session), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::Job { .. })));
}

#[test]
fn a_pool_flooding_set_difficulty_is_refused() {
    let limits = UpstreamLimits::default();
    let allowed = limits.difficulty_changes_per_minute;
    let base = now();
    let mut session = ready_at(limits.clone(), base);
    let change =
        |d: u32| format!(r#"{{"id":null,"method":"mining.set_difficulty","params":[{d}]}}"#);
    // One change every two seconds is within the allowance, for as long as
    // it lasts; the same difficulty again is no change.
    for i in 0..3 * allowed {
        let events = feed_at(
            &mut session,
            &change(1000 + i),
            later(base, 2 * u64::from(i)),
        );
        assert!(
            matches!(events[..], [Event::Difficulty(_)]),
            "{i}: {events:?}"
        );
        assert!(feed_at(
            &mut session,
            &change(1000 + i),
            later(base, 2 * u64::from(i))
        )
        .is_empty());
    }
    let mut session = ready_at(limits, base);
    for i in 0..allowed - 1 {
        // The handshake's difficulty took the first change.
        let events = feed_at(&mut session, &change(i + 1), base);
        assert!(refusal(&events).is_none(), "{i}");
    }
    let events = feed_at(&mut session, &change(5), base);
    assert_eq!(refusal(&events), Some(Refusal::FloodsDifficulty(allowed)));
    assert_eq!(
        refusal(&events).unwrap().to_string(),
        "the pool floods set_difficulty: more than 30 changes a minute"
    );
}

#[test]
fn a_difficulty_that_is_not_a_positive_number_is_refused() {
    for bad in ["0", "-1", "\"1024\"", "null", "1e999"] {
        let mut session = ready(Default::default());
        let line = format!(r#"{{"id":null,"method":"mining.set_difficulty","params":[{bad}]}}"#);
        let events = feed(&mut session, &line);
        assert!(is_protocol_error(&events, &session), "{bad}: {events:?}");
    }
}

#[test]
fn set_extranonce_invalidates_the_jobs_before_it() {
    let mut session = ready(Default::default());
    let events = feed(
        &mut session,
        r#"{"id":null,"method":"mining.set_extranonce","params":["2a8f5c02",8]}"#,
    );
    assert!(matches!(
        &events[..],
        [Event::Extranonce { extranonce1, extranonce2_size: 8 }] if extranonce1 == &[0x2a, 0x8f, 0x5c, 0x02]
    ));
    assert_eq!(
        session.extranonce(),
        Some((&[0x2a, 0x8f, 0x5c, 0x02][..], 8))
    );
    let refused = session.submit(&share("1f", 1), 1, now());
    assert_eq!(refused, Err(NotSent::UnknownJob("1f".into())));
    feed(&mut session, &notify("20", 0, false));
    assert!(session.submit(&share("20", 1), 1, now()).is_ok());
    // The same size check as the subscription's.
    let events = feed(
        &mut session,
        r#"{"id":null,"method":"mining.set_extranonce","params":["2a8f5c03",4]}"#,
    );
    let expected = Refusal::ExtranonceTooSmall {
        given: 4,
        needed: 8,
    };
    assert_eq!(refusal(&events), Some(expected));
}

#[test]
fn client_reconnect_takes_the_port_as_a_string_or_a_number() {
    let mut session = ready(Default::default());
    let ckpool = r#"{"params":["pool2.example.com","3334"],"id":null,"method":"client.reconnect"}"#;
    let events = feed(&mut session, ckpool);
    let [Event::Reconnect { host, port, wait }] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!(
        (host.as_deref(), *port, *wait),
        (Some("pool2.example.com"), Some(3334), Duration::ZERO)
    );
    let numbered = r#"{"id":null,"method":"client.reconnect","params":["eu.example.org",3333,10]}"#;
    let events = feed(&mut session, numbered);
    let [Event::Reconnect { host, port, wait }] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!(
        (host.as_deref(), *port, *wait),
        (Some("eu.example.org"), Some(3333), Duration::from_secs(10))
    );
    // Here again, after a wait cut to the bound.
    let here = r#"{"id":null,"method":"client.reconnect","params":["",null,86400]}"#;
    let events = feed(&mut session, here);
    assert!(matches!(
        &events[..],
        [Event::Reconnect { host: None, port: None, wait }] if *wait == MAX_RECONNECT_WAIT
    ));
    for bad in [
        r#"["eu.example.org","http"]"#,
        r#"["eu.example.org",70000]"#,
        r#"["a b",3333]"#,
    ] {
        let mut session = ready(Default::default());
        let line = format!(r#"{{"id":null,"method":"client.reconnect","params":{bad}}}"#);
        let events = feed(&mut session, &line);
        assert!(is_protocol_error(&events, &session), "{bad}: {events:?}");
    }
}

#[test]
fn a_job_id_past_64_characters_is_refused() {
    let mut session = ready(Default::default());
    let longest = "a".repeat(MAX_JOB_ID_CHARS);
    assert!(matches!(
        feed(&mut session, &notify(&longest, 0, false))[..],
        [Event::Job { .. }]
    ));
    let events = feed(
        &mut session,
        &notify(&"a".repeat(MAX_JOB_ID_CHARS + 1), 0, false),
    );
    assert!(is_protocol_error(&events, &session), "{events:?}");
}

#[test]
fn a_merkle_branch_of_33_steps_is_refused() {
    let mut session = ready(Default::default());
    let events = feed(&mut session, &notify("20", MAX_BRANCH_STEPS, false));
    let [Event::Job { work, clean: false }] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!(work.branch.len(), 32);
    let events = feed(&mut session, &notify("21", MAX_BRANCH_STEPS + 1, false));
    assert!(is_protocol_error(&events, &session), "{events:?}");
}

#[test]
fn an_oversized_coinbase_or_a_bad_job_is_refused() {
    let mut oversized: Value = serde_json::from_str(&notify("20", 0, false)).unwrap();
    oversized["params"][3] = json!("00".repeat(MAX_COINBASE_PART_BYTES + 1));
    let truncated = r#"{"id":null,"method":"mining.notify","params":["20","00"]}"#.to_string();
    for line in [oversized.to_string(), truncated] {
        let mut session = ready(Default::default());
        let events = feed(&mut session, &line);
        assert!(is_protocol_error(&events, &session), "{events:?}");
    }
}

#[test]
fn a_line_that_is_not_a_json_object_is_refused() {
    for line in [
        "HTTP/1.1 400 Bad Request",
        r#"[1,"mining.notify"]"#,
        r#"{"id":4,"#,
    ] {
        let mut session = ready(Default::default());
        let events = feed(&mut session, line);
        assert!(is_protocol_error(&events, &session), "{line}: {events:?}");
    }
    // Blank lines and methods NDAS does not know are not errors.
    let mut session = ready(Default::default());
    assert!(feed(&mut session, "   ").is_empty());
    assert!(feed(
        &mut session,
        r#"{"id":9,"method":"client.get_version","params":[]}"#
    )
    .is_empty());
    let message =
        r#"{"id":null,"method":"client.show_message","params":["Pool maintenance at 12:00 UTC"]}"#;
    assert!(
        matches!(&feed(&mut session, message)[..], [Event::Message(m)] if m.starts_with("Pool"))
    );
    assert_eq!(session.state(), &State::Ready);
}

#[test]
fn a_pool_that_never_finishes_the_handshake_is_refused_in_time() {
    let limits = UpstreamLimits::default();
    let timeout = limits.handshake_timeout;
    let base = now();
    let mut session: UpstreamSession<u32> = UpstreamSession::new(settings(limits));
    session.start(base);
    feed(&mut session, SUBSCRIBED);
    let mut events = Vec::new();
    session.tick(later(base, timeout.as_secs() - 1), &mut events);
    assert!(events.is_empty());
    session.tick(later(base, timeout.as_secs()), &mut events);
    assert_eq!(refusal(&events), Some(Refusal::Timeout(timeout)));
}
