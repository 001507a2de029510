//! The `ndas` binary: `check-config` names every bad key and never a secret;
//! `serve` refuses to start on a bad licence.

use ndas_testkit as common;

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;

const PASSWORD: &str = "very-secret-rpc-password";
const ADDRESS: &str = "mrj9cVJUyWj4f6zhzK21Pom78XS14TaUjW";

fn ndas(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ndas"));
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn write_config(dir: &Path, extra: &str) -> String {
    let (metadata, conf) = common::write_utek_files(dir, 18443, "pool", PASSWORD);
    let text = format!(
        "network = \"regtest\"\ndata_dir = \"{}\"\n[mining]\npayout_address = \"{ADDRESS}\"\n[node]\nutek_metadata = \"{}\"\nutek_conf = \"{}\"\n{extra}",
        dir.join("data").display(),
        metadata.display(),
        conf.display()
    );
    let path = dir.join("ndas.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn all_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn check_config_accepts_a_good_config() {
    let dir = common::temp_dir();
    let path = write_config(dir.path(), "");
    let output = ndas(&["check-config", "--config", &path], &[]);
    assert!(output.status.success(), "{}", all_output(&output));
    assert!(all_output(&output).contains("ok"));
}

#[test]
fn check_config_names_each_bad_key_including_env_overrides() {
    let dir = common::temp_dir();
    let path = write_config(
        dir.path(),
        "timeout_seconds = -3\n[difficulty]\nmin = 10\nmax = 1\n",
    );
    let output = ndas(
        &["check-config", "--config", &path],
        &[("NDAS_STRATUM__EXTRANONCE2_SIZE", "12")],
    );
    assert_eq!(output.status.code(), Some(1));
    let text = all_output(&output);
    for key in [
        "stratum.extranonce2_size: 12",
        "difficulty.min",
        "node.timeout_seconds",
    ] {
        assert!(text.contains(key), "{key} missing from:\n{text}");
    }
    assert!(!text.contains(PASSWORD));
}

#[test]
fn check_config_names_a_coinbase_tag_too_long_for_one_push() {
    // Over 255 bytes: more than one push holds, which once hit an assert.
    let dir = common::temp_dir();
    let tag = "x".repeat(300);
    let path = write_config(dir.path(), "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[mining]\n",
        &format!("[mining]\ncoinbase_tag = \"{tag}\"\n"),
    );
    std::fs::write(&path, text).unwrap();
    let output = ndas(&["check-config", "--config", &path], &[]);
    let text = all_output(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("mining.coinbase_tag: 300 bytes"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn check_config_reports_a_bad_licence_without_the_token_or_password() {
    let dir = common::temp_dir();
    let path = write_config(dir.path(), "");
    let other = base64::engine::general_purpose::STANDARD
        .encode(r#"{"license": "00000000-0000-0000-0000-000000000001", "version": "26.0"}"#);
    let metadata = dir.path().join("metadata.json");
    std::fs::write(&metadata, format!(r#"{{"license_uuid": "3f2c8a9e-1b7d-4c6e-9a51-0d2e7f4b8c13", "factory_token": "{other}"}}"#)).unwrap();
    let output = ndas(&["check-config", "--config", &path], &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = all_output(&output);
    assert!(text.contains("issued for a different licence"), "{text}");
    assert!(!text.contains(&other) && !text.contains(PASSWORD), "{text}");

    let output = ndas(&["serve", "--config", &path], &[]);
    assert!(!output.status.success(), "serve must refuse a bad licence");
    let text = all_output(&output);
    assert!(text.contains("issued for a different licence"), "{text}");
    assert!(!text.contains(PASSWORD));
}

#[test]
fn a_missing_config_file_is_named() {
    let output = ndas(&["check-config", "--config", "/nonexistent/ndas.toml"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(all_output(&output).contains("/nonexistent/ndas.toml is not a readable file"));
}

#[test]
fn check_config_covers_each_backup_node_and_its_env_overrides() {
    let dir = common::temp_dir();
    let path = write_config(
        dir.path(),
        "[[node.backup]]\nname = \"dc2\"\nbackend = \"rpc\"\nurl = \"http://127.0.0.1:18444\"\nuser = \"pool\"\n\
         [[node.backup]]\nname = \"dc3\"\nbackend = \"rpc\"\nurl = \"http://127.0.0.1:18445\"\nuser = \"pool\"\npassword = \"in-the-file\"\n",
    );
    // The first backup's password only from the environment, as a secret
    // should be; the second's URL overridden.
    let output = ndas(
        &["check-config", "--config", &path],
        &[
            ("NDAS_NODE__BACKUP__0__PASSWORD", PASSWORD),
            ("NDAS_NODE__BACKUP__1__URL", "ftp://nowhere"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let text = all_output(&output);
    assert!(text.contains("node.backup[1].url"), "{text}");
    assert!(
        !text.contains("node.backup[0]"),
        "the env password completes dc2: {text}"
    );
    assert!(
        !text.contains(PASSWORD) && !text.contains("in-the-file"),
        "{text}"
    );

    // An override for a backup the file does not have is named, not dropped.
    let output = ndas(
        &["check-config", "--config", &path],
        &[("NDAS_NODE__BACKUP__5__URL", "http://127.0.0.1:1")],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        all_output(&output).contains("node.backup[5]"),
        "{}",
        all_output(&output)
    );
}

#[test]
fn check_config_names_a_route_to_no_upstream_and_takes_its_env_override() {
    let dir = common::temp_dir();
    let path = write_config(
        dir.path(),
        "[[upstream]]\nname = \"para\"\nurl = \"stratum+tcp://127.0.0.1:3333\"\nuser = \"farm.ndas\"\n\
         [[route]]\nto = \"node\"\nweight = 70\n[[route]]\nto = \"paar\"\nweight = 30\n",
    );
    let output = ndas(&["check-config", "--config", &path], &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = all_output(&output);
    assert!(
        text.contains("route[1].to") && text.contains("[\"para\"]"),
        "the typo is named, with the names it could be: {text}"
    );
    let output = ndas(
        &["check-config", "--config", &path],
        &[("NDAS_ROUTE__1__TO", "para")],
    );
    assert!(output.status.success(), "{}", all_output(&output));
}

#[test]
fn sv2_key_prints_one_key_for_good_and_the_url_miners_are_given() {
    let dir = common::temp_dir();
    let path = write_config(dir.path(), "[sv2]\nlisten = \"0.0.0.0:3336\"\n");
    let first = ndas(
        &["sv2-key", "--config", &path, "--host", "pool.example"],
        &[],
    );
    assert!(first.status.success(), "{}", all_output(&first));
    let text = String::from_utf8_lossy(&first.stdout).to_string();
    let key = ndas::sv2::keys::AuthorityKey::load_or_create(&dir.path().join("data")).unwrap();
    assert!(
        text.contains(&format!(
            "stratum2+tcp://pool.example:3336/{}",
            key.public_text()
        )),
        "{text}"
    );
    // Made once, private, and the same key every time after.
    use std::os::unix::fs::PermissionsExt;
    let file = dir.path().join("data").join(ndas::sv2::keys::FILE_NAME);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = ndas(&["sv2-key", "--config", &path], &[]);
    let again = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(
        again.contains(&format!("<host>:3336/{}", key.public_text())),
        "{again}"
    );
    // The secret itself is never printed.
    let secret = std::fs::read_to_string(&file).unwrap();
    let secret = secret.lines().last().unwrap();
    assert!(!text.contains(secret) && !again.contains(secret));

    // Without [sv2] there is no endpoint to give miners.
    let dir = common::temp_dir();
    let path = write_config(dir.path(), "");
    let off = ndas(&["sv2-key", "--config", &path], &[]);
    assert!(!off.status.success());
    assert!(
        all_output(&off).contains("no [sv2] section"),
        "{}",
        all_output(&off)
    );
}
