//! Shares sent to a pool that answers them badly, late or never: each
//! answer is credited to the share's sender, and what cannot be sent is
//! refused without a line.

use std::time::Duration;

use serde_json::{json, Value};

use super::tests::{feed, feed_at, later, notify, ready, share, USER};
use super::*;
use crate::testkit::now;

#[test]
fn a_pool_rejecting_every_share_is_answered_to_each_sender() {
    let mut session = ready(Default::default());
    let base = now();
    let mut ids = Vec::new();
    for tag in 10..15u32 {
        let line = session.submit(&share("1f", tag), tag, base).unwrap();
        let sent: Value = serde_json::from_slice(&line).unwrap();
        ids.push((sent["id"].as_u64().unwrap(), tag));
    }
    // Answered out of order, ckpool's way and para's way.
    let mut answered = Vec::new();
    for (i, (id, tag)) in ids.iter().rev().enumerate() {
        let line = if i % 2 == 0 {
            format!(r#"{{"reject-reason":"Above target","result":false,"error":null,"id":{id}}}"#)
        } else {
            format!(r#"{{"id":{id},"result":null,"error":[23,"Difficulty too low",null]}}"#)
        };
        let events = feed_at(&mut session, &line, later(base, 1));
        let [Event::Answered {
            tag: credited,
            accepted: false,
            reason: Some(reason),
            latency,
        }] = &events[..]
        else {
            panic!("{events:?}");
        };
        assert_eq!(credited, tag);
        assert_eq!(*latency, Duration::from_secs(1));
        answered.push(reason.to_string());
    }
    assert_eq!(answered[0], "Above target");
    assert_eq!(answered[1], "Difficulty too low (23)");
    let counts = SubmitCounts {
        accepted: 0,
        rejected: 5,
        unanswered: 0,
    };
    assert_eq!(session.counts(), counts);
    assert_eq!(session.in_flight(), 0);
    // A repeated answer, or one for an id never sent, credits nobody.
    let (id, _) = ids[0];
    let repeat = format!(r#"{{"id":{id},"result":true,"error":null}}"#);
    assert!(feed(&mut session, &repeat).is_empty());
    assert!(feed(&mut session, r#"{"id":999,"result":true,"error":null}"#).is_empty());
    assert_eq!(session.counts(), counts);
}

#[test]
fn an_accepted_share_is_sent_as_the_pool_takes_it() {
    let mut session = ready(Default::default());
    let line = session.submit(&share("1f", 0xdead_beef), 7, now()).unwrap();
    assert!(line.ends_with(b"\n"));
    let sent: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(sent["id"], json!(FIRST_SUBMIT_ID));
    assert_eq!(sent["method"], json!("mining.submit"));
    assert_eq!(
        sent["params"],
        json!([
            USER,
            "1f",
            "0900000100000007",
            "504e86b9",
            "deadbeef",
            "00004000"
        ])
    );
    let events = feed(&mut session, r#"{"result":true,"error":null,"id":4}"#);
    assert!(matches!(
        events[..],
        [Event::Answered {
            tag: 7,
            accepted: true,
            reason: None,
            ..
        }]
    ));
    assert_eq!(session.counts().accepted, 1);
}

#[test]
fn a_share_on_an_unknown_or_stale_job_is_refused_without_a_line() {
    let limits = UpstreamLimits {
        max_jobs: 2,
        ..Default::default()
    };
    let mut session = ready(limits);
    let unknown = session.submit(&share("ff", 1), 1, now());
    assert_eq!(unknown, Err(NotSent::UnknownJob("ff".into())));
    // Past the bound, the oldest job goes; a clean job drops the rest.
    feed(&mut session, &notify("20", 0, false));
    feed(&mut session, &notify("21", 0, false));
    assert_eq!(
        session.submit(&share("1f", 1), 1, now()),
        Err(NotSent::UnknownJob("1f".into()))
    );
    assert!(session.submit(&share("20", 1), 1, now()).is_ok());
    feed(&mut session, &notify("22", 0, true));
    assert_eq!(
        session.submit(&share("21", 1), 1, now()),
        Err(NotSent::UnknownJob("21".into()))
    );
    let short = UpstreamShare {
        extranonce2: vec![0; 4],
        ..share("22", 1)
    };
    let expected = NotSent::Extranonce2Size {
        given: 4,
        expected: 8,
    };
    assert_eq!(session.submit(&short, 1, now()), Err(expected));
    assert_eq!(session.in_flight(), 1, "only the share sent is waited on");
}

#[test]
fn submits_in_flight_are_bounded_and_given_up_in_time() {
    let limits = UpstreamLimits {
        max_in_flight: 3,
        ..Default::default()
    };
    let timeout = limits.submit_timeout;
    let mut session = ready(limits);
    let base = now();
    for tag in 0..3 {
        assert!(session.submit(&share("1f", tag), tag, base).is_ok());
    }
    assert_eq!(
        session.submit(&share("1f", 3), 3, base),
        Err(NotSent::TooManyInFlight(3))
    );
    // An answer frees a place.
    feed(&mut session, r#"{"id":4,"result":true,"error":null}"#);
    assert!(session.submit(&share("1f", 3), 3, later(base, 5)).is_ok());
    // A pool that never answers: the submits are given up, oldest first.
    let mut events = Vec::new();
    session.tick(later(base, timeout.as_secs()), &mut events);
    let given_up: Vec<u32> = events
        .iter()
        .map(|e| match e {
            Event::Unanswered { tag, waited } => {
                assert_eq!(*waited, timeout);
                *tag
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(given_up, [1, 2]);
    assert_eq!(session.in_flight(), 1);
    assert_eq!(session.counts().unanswered, 2);
}

#[test]
fn a_refusal_gives_up_the_submits_in_flight() {
    let mut session = ready(Default::default());
    for tag in [5, 6] {
        session.submit(&share("1f", tag), tag, now()).unwrap();
    }
    let events = feed(&mut session, "garbage");
    assert!(matches!(
        events[..],
        [
            Event::Refused { .. },
            Event::Unanswered { tag: 5, .. },
            Event::Unanswered { tag: 6, .. }
        ]
    ));
    assert_eq!(session.in_flight(), 0);
}
