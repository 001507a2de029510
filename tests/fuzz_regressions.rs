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
