//! The Stratum V2 state machine driven by a hostile client: what the
//! `sv2_session` fuzz target runs.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use ndas_core::chain::Network;
use ndas_core::stratum::method::Extranonce2;
use ndas_core::sv2::message::{Open, Setup, Submitted};
use ndas_core::sv2::{ChannelBudget, Inbound, Outbound, Output, Sv2Limits, Sv2Session};
use ndas_core::work::extranonce::ExtranonceAllocator;
use ndas_core::work::groups::Payouts;
use ndas_core::work::payout::Payout;
use ndas_core::work::PayoutGroups;

use super::{job_config, now, session_config, JOB};

/// Channels one input's connection may hold, and all connections together.
const MAX_CHANNELS: usize = 3;
const BUDGET: usize = 5;

/// A fixed-mode pool with the fuzz targets' job.
static MANAGER: LazyLock<Arc<PayoutGroups>> = LazyLock::new(|| {
    let payouts = Payouts {
        fixed: Some(
            Payout::parse(
                "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
                Network::Regtest,
            )
            .expect("a regtest address"),
        ),
        by_username: None,
        max_groups: 4,
        max_new_per_source: 4,
    };
    let manager = <PayoutGroups>::new(job_config(), 1, payouts);
    manager
        .publish(JOB.template.clone())
        .expect("the fixed job builds");
    manager
});

/// The extranonce1 space, made once (2 MiB of lease bits): every input's
/// channels give theirs back when it ends.
static EXTRANONCES: LazyLock<Arc<ExtranonceAllocator>> =
    LazyLock::new(|| Arc::new(ExtranonceAllocator::new(7)));

/// The client message an 8-byte chunk of `data` stands for.
fn message(chunk: &[u8; 8]) -> Inbound {
    let word = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
    let channel_id = u32::from(chunk[1] % 8);
    let mut target = [0xff; 32];
    target[31] = chunk[2];
    let open = Open {
        request_id: word,
        user_identity: match chunk[3] % 4 {
            0 => String::new(),
            1 => "x".repeat(200),
            2 => "pool.rig 1".into(),
            _ => format!("pool.rig{}", chunk[3]),
        },
        nominal_hash_rate: f32::from_bits(word),
        max_target: target,
    };
    let submitted = Submitted {
        channel_id,
        sequence_number: word,
        job_id: u32::from(chunk[2] % 4),
        nonce: word,
        ntime: JOB.template.cur_time.wrapping_add(u32::from(chunk[3]) * 64),
        version: JOB.version ^ (word & 0x3fff_f000),
        extranonce: Extranonce2::from_bytes(&chunk[..usize::from(chunk[3] % 12).min(8)]),
    };
    match chunk[0] % 9 {
        0 => Inbound::SetupConnection(Setup {
            protocol: chunk[1] % 2,
            min_version: u16::from(chunk[2] % 4),
            max_version: u16::from(chunk[3] % 4),
            flags: word & 0x0f,
            vendor: if chunk[1] & 2 == 0 {
                "SRI".into()
            } else {
                "bitaxe".into()
            },
            hardware_version: String::new(),
            firmware: String::new(),
            device_id: String::new(),
        }),
        1 => Inbound::OpenStandard(open),
        2 => Inbound::OpenExtended {
            open,
            min_extranonce_size: u16::from(chunk[1] % 12),
        },
        3 => Inbound::UpdateChannel {
            channel_id,
            nominal_hash_rate: f32::from_bits(word),
            maximum_target: target,
        },
        4 => Inbound::CloseChannel { channel_id },
        5 => Inbound::SubmitStandard(submitted),
        6 => Inbound::SubmitExtended(submitted),
        _ => Inbound::Unsupported(chunk[1]),
    }
}

/// Feeds `data`, eight bytes a message, to two connections in turn that
/// share an extranonce1 space and a channel budget, with jobs, keepalives
/// and a shutdown among them. Invariants: no connection holds more than
/// its channels, all together never more than the budget, and every place
/// is given back when they end; no two open channels share an
/// extranonce1, and the channels open are those the client was told of;
/// a setup refused for its flags names only flags NDAS does not serve.
pub fn sv2_session(data: &[u8]) {
    let budget = ChannelBudget::new(BUDGET);
    let limits = Sv2Limits {
        max_channels: MAX_CHANNELS,
        budget: budget.clone(),
    };
    let extranonces = EXTRANONCES.clone();
    let config = Arc::new(session_config());
    let mut connections: Vec<(Sv2Session, bool)> = (0..2)
        .map(|_| {
            let session = Sv2Session::new(config.clone(), limits.clone(), extranonces.clone())
                .with_payouts(MANAGER.clone());
            (session, false)
        })
        .collect();
    let key = MANAGER
        .fixed()
        .map_or(0, |group| Arc::as_ptr(&group) as *const () as usize);
    // Each connection's open channels and their extranonce1s, as the
    // client saw them given.
    let mut open_channels: [HashMap<u32, Vec<u8>>; 2] = Default::default();
    for (i, chunk) in data.chunks_exact(8).take(128).enumerate() {
        let chunk: &[u8; 8] = chunk.try_into().expect("eight bytes");
        let (session, closed) = &mut connections[i % 2];
        if *closed {
            continue;
        }
        let mut out = Output::default();
        match chunk[0] {
            250 => session.on_job(key, JOB.clone(), now(), &mut out),
            251 => session.keepalive(&mut out),
            252 => session.shutdown(&mut out),
            _ => {
                let sent = message(chunk);
                if let Inbound::CloseChannel { channel_id } = &sent {
                    open_channels[i % 2].remove(channel_id);
                }
                session.handle(sent, now(), &mut out);
            }
        }
        for sent in &out.messages {
            match sent {
                Outbound::OpenStandardSuccess {
                    channel_id,
                    extranonce_prefix,
                    ..
                }
                | Outbound::OpenExtendedSuccess {
                    channel_id,
                    extranonce_prefix,
                    ..
                } => {
                    let lease = extranonce_prefix[..4].to_vec();
                    let shared = open_channels
                        .iter()
                        .flat_map(|c| c.values())
                        .any(|l| *l == lease);
                    assert!(!shared, "two open channels share an extranonce1");
                    open_channels[i % 2].insert(*channel_id, lease);
                }
                Outbound::SetupError { flags, .. } => assert_eq!(flags & 0b101, 0),
                _ => {}
            }
        }
        *closed = out.close;
        assert_eq!(session.channel_count(), open_channels[i % 2].len());
        assert!(session.channel_count() <= MAX_CHANNELS);
        let open: usize = connections.iter().map(|(s, _)| s.channel_count()).sum();
        assert_eq!(budget.open(), open, "the budget counts every open channel");
        assert!(open <= BUDGET);
    }
    drop(connections);
    assert_eq!(budget.open(), 0, "every channel's place given back");
}
