//! The Stratum V2 state machine's bounds as hostile clients push them:
//! channels past a connection's and the port's, sizes and targets past the
//! port's, unknown channels, the budget across connections, and what a
//! client is told at shutdown.

use super::message::flags;
use super::tests::*;
use super::*;
use crate::chain::Target;

#[test]
fn channels_past_the_bound_sizes_past_the_port_s_and_targets_past_its_range_are_refused() {
    let manager = manager(HARD);
    let mut s = connection(&manager, 2);
    send(&mut s, setup(0));
    send(&mut s, extended(1));
    send(&mut s, Inbound::OpenStandard(open_request(2)));
    let refused = send(&mut s, extended(3));
    assert_eq!(codes(&refused), ["channel-limit-reached"]);
    // Told to the operator with the same code.
    assert!(matches!(
        refused.events[..],
        [Event::ChannelRefused {
            reason: "channel-limit-reached"
        }]
    ));
    assert_eq!(s.channel_count(), 2);

    let mut s = ready(&manager);
    let wide = Inbound::OpenExtended {
        open: open_request(4),
        min_extranonce_size: 9,
    };
    assert_eq!(
        codes(&send(&mut s, wide)),
        ["unsupported-min-extranonce-size"]
    );
    let mut hard = open_request(5);
    hard.max_target = [0; 32];
    hard.max_target[0] = 1;
    assert_eq!(
        codes(&send(&mut s, Inbound::OpenStandard(hard))),
        ["max-target-out-of-range"]
    );
    assert_eq!(s.channel_count(), 0);

    // A name the registry and the page cannot show.
    for user in [
        String::new(),
        "x".repeat(129),
        "rig 1".into(),
        "rig\n".into(),
    ] {
        let mut bad = open_request(7);
        bad.user_identity = user;
        assert_eq!(
            codes(&send(&mut s, Inbound::OpenStandard(bad))),
            ["invalid-username"]
        );
    }
    assert_eq!(s.channel_count(), 0);

    // A client that takes standard jobs only opens no extended channel.
    let mut s = connection(&manager, 4);
    send(&mut s, setup(flags::REQUIRES_STANDARD_JOBS));
    assert_eq!(
        codes(&send(&mut s, extended(6))),
        ["unsupported-channel-flags"]
    );
}

#[test]
fn update_channel_s_target_is_a_floor_answered_with_set_target() {
    let manager = manager(HARD);
    let mut s = ready(&manager);
    let (channel, _, _) = opened(&send(&mut s, extended(1)));
    let wanted = Target::from_difficulty(1e-6);
    let mut maximum_target = wanted.to_be_bytes();
    maximum_target.reverse();
    let update = Inbound::UpdateChannel {
        channel_id: channel,
        nominal_hash_rate: 1e6,
        maximum_target,
    };
    let out = send(&mut s, update);
    match &out.messages[..] {
        [Outbound::SetTarget { channel_id, target }] => {
            assert_eq!(*channel_id, channel);
            assert!(Target::from_le_bytes(target).difficulty() >= 1e-6 * 0.999);
        }
        other => panic!("{other:?}"),
    }
    let unknown = Inbound::UpdateChannel {
        channel_id: 99,
        nominal_hash_rate: 1e6,
        maximum_target,
    };
    assert!(matches!(
        send(&mut s, unknown).messages[..],
        [Outbound::UpdateChannelError {
            code: "invalid-channel-id",
            ..
        }]
    ));
}

#[test]
fn closing_a_group_s_last_channel_stops_its_jobs_and_frees_the_extranonce() {
    let manager = manager(HARD);
    let mut s = ready(&manager);
    let (a, _, _) = opened(&send(&mut s, extended(1)));
    let (b, _, _) = opened(&send(&mut s, extended(2)));
    let out = send(&mut s, Inbound::CloseChannel { channel_id: a });
    assert!(out.unsubscribe.is_empty(), "another channel mines for it");
    let out = send(&mut s, Inbound::CloseChannel { channel_id: b });
    assert_eq!(out.unsubscribe.len(), 1);
    assert_eq!(s.channel_count(), 0);
    // Closing an unknown channel does nothing.
    let out = send(&mut s, Inbound::CloseChannel { channel_id: 42 });
    assert!(out.messages.is_empty() && !out.close);
}

#[test]
fn at_shutdown_a_client_is_told_to_reconnect_but_not_the_reference_translator() {
    let manager = manager(HARD);
    let told = |vendor: &str, set_up: bool| {
        let mut s = connection(&manager, 4);
        if set_up {
            let Inbound::SetupConnection(mut setup) = setup(0) else {
                unreachable!()
            };
            setup.vendor = vendor.into();
            send(&mut s, Inbound::SetupConnection(setup));
        }
        let mut out = Out::default();
        s.shutdown(&mut out);
        out.messages
    };
    assert!(matches!(
        &told("bitaxe", true)[..],
        [Outbound::Reconnect { new_host, new_port: 0 }] if new_host.is_empty()
    ));
    // Its translator 0.6.0 panics on it; the closed connection does as well.
    assert!(told("SRI", true).is_empty());
    assert!(told("bitaxe", false).is_empty(), "nothing before the setup");
}

#[test]
fn channels_across_connections_stay_within_the_budget_and_give_their_place_back() {
    let manager = manager(HARD);
    let budget = ChannelBudget::new(3);
    let limits = Sv2Limits {
        max_channels: 4,
        budget: budget.clone(),
    };
    let extranonces = Arc::new(ExtranonceAllocator::new(3));
    let mut connections: Vec<Sv2Session> = (0..2)
        .map(|_| {
            let mut s = Sv2Session::new(config(1e-9), limits.clone(), extranonces.clone())
                .with_payouts(manager.clone());
            send(&mut s, setup(0));
            s
        })
        .collect();
    for request in 0..2 {
        for s in &mut connections {
            send(s, extended(request));
        }
    }
    // Four asked for, three given: the fourth is refused, not queued.
    assert_eq!(budget.open(), 3);
    assert_eq!(
        connections
            .iter()
            .map(Sv2Session::channel_count)
            .sum::<usize>(),
        3
    );
    // A closed connection gives its channels back.
    drop(connections.remove(0));
    assert_eq!(budget.open(), 1);
    assert!(matches!(
        send(&mut connections[0], extended(9)).messages[0],
        Outbound::OpenExtendedSuccess { .. }
    ));
}
