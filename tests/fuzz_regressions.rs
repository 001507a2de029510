//! Every input the fuzz targets keep — the seed corpus in `fuzz/corpus/` and
//! each crash found, in `fuzz/regressions/` — replayed through the same code
//! on every test run (see FUZZING.md).

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for kind in ["corpus", "regressions"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{} fails again", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no inputs kept for {target}");
}

#[test]
fn stratum_lines_inputs_pass() {
    replay("stratum_lines", ndas_tools::fuzzing::stratum_lines);
}

#[test]
fn method_params_inputs_pass() {
    replay("method_params", ndas_tools::fuzzing::method_params);
}

#[test]
fn template_inputs_pass() {
    replay("template", ndas_tools::fuzzing::template);
}

#[test]
fn coinbase_merkle_inputs_pass() {
    replay("coinbase_merkle", ndas_tools::fuzzing::coinbase_merkle);
}

#[test]
fn sv2_session_inputs_pass() {
    replay("sv2_session", ndas_tools::fuzzing::sv2_session);
}

#[test]
fn sv2_frames_inputs_pass() {
    replay("sv2_frames", |data| {
        let _ = ndas::sv2::wire::decode_plain(data);
    });
}

/// The seeds are what they say: ESP-Miner's three frames, serialized as its
/// source does, read as its setup, standard open and standard share.
#[test]
fn the_esp_miner_seed_reads_as_its_three_messages() {
    use ndas_core::sv2::Inbound;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sv2_frames");
    let data = std::fs::read(root.join("esp_miner_standard")).unwrap();
    let messages = ndas::sv2::wire::decode_plain(&data);
    match &messages[..] {
        [Ok(Inbound::SetupConnection(setup)), Ok(Inbound::OpenStandard(open)), Ok(Inbound::SubmitStandard(share))] =>
        {
            assert_eq!((setup.flags, setup.vendor.as_str()), (1, "bitaxe"));
            assert!(open.user_identity.ends_with(".bitaxe"));
            assert_eq!(share.version, 0x3000_0000);
        }
        other => panic!("{other:?}"),
    }
}
