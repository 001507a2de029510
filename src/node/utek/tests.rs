use std::path::PathBuf;

use base64::Engine;

use super::*;

const LICENCE: &str = "3f2c8a9e-1b7d-4c6e-9a51-0d2e7f4b8c13";
const PASSWORD: &str = "s3cret-node-password";

fn token(json: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(json)
}

fn metadata(dir: &tempfile::TempDir, body: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.path().join(format!("{n}-metadata.json"));
    std::fs::write(&path, body).unwrap();
    path
}

fn with_token(dir: &tempfile::TempDir, licence: &str, token: &str) -> PathBuf {
    metadata(
        dir,
        &format!(r#"{{"license_uuid": "{licence}", "factory_token": "{token}"}}"#),
    )
}

#[test]
fn a_valid_licence_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let good = token(&format!(r#"{{"license": "{LICENCE}", "version": "26.0"}}"#));
    let path = with_token(&dir, LICENCE, &good);
    assert_eq!(check_licence(&path).unwrap().to_string(), LICENCE);
}

#[test]
fn each_bad_licence_is_refused_with_its_reason_and_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let other = "00000000-1111-2222-3333-444444444444";
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            with_token(&dir, LICENCE, "%%%not-base64%%%"),
            "not valid base64",
        ),
        (
            with_token(&dir, LICENCE, &token("not json")),
            "does not decode to JSON",
        ),
        (
            with_token(
                &dir,
                LICENCE,
                &token(&format!(r#"{{"license": "{other}", "version": "26.0"}}"#)),
            ),
            "different licence",
        ),
        (
            with_token(
                &dir,
                LICENCE,
                &token(&format!(r#"{{"license": "{LICENCE}", "version": "25.1"}}"#)),
            ),
            "`25.1` is not supported",
        ),
        (with_token(&dir, "not-a-uuid", &token("{}")), "not a UUID"),
        (metadata(&dir, "{"), "not valid JSON"),
        (dir.path().join("missing.json"), "cannot read UTEK file"),
    ];
    for (path, reason) in cases {
        let error = check_licence(&path).unwrap_err().to_string();
        assert!(error.contains(reason), "{error}");
        assert!(
            error.contains(&path.display().to_string()),
            "names the file: {error}"
        );
    }
}

fn conf(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("utek_v26.conf");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn conf_reads_credentials_with_network_sections_overriding() {
    let dir = tempfile::tempdir().unwrap();
    let path = conf(
        &dir,
        &format!("# node\nrpcuser=pool\nrpcpassword={PASSWORD}\nrpcconnect=10.0.0.5\n\n[regtest]\nrpcport=18555\n[main]\nrpcport=8332\n"),
    );
    let endpoint = load_conf(&path, Network::Regtest).unwrap();
    assert_eq!(
        (
            endpoint.host.as_str(),
            endpoint.port,
            endpoint.user.as_str()
        ),
        ("10.0.0.5", 18555, "pool")
    );
    assert_eq!(endpoint.password.expose(), PASSWORD);
    assert!(
        !format!("{endpoint:?}").contains(PASSWORD),
        "Debug must not show the password"
    );
    let mainnet = load_conf(&path, Network::Mainnet).unwrap();
    assert_eq!(mainnet.port, 8332);
    let defaults = load_conf(&conf(&dir, "rpcuser=u\nrpcpassword=p\n"), Network::Signet).unwrap();
    assert_eq!(
        (defaults.host.as_str(), defaults.port),
        ("127.0.0.1", 38332)
    );
}

#[test]
fn conf_errors_name_the_key_not_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let missing = load_conf(
        &conf(&dir, &format!("rpcpassword={PASSWORD}\n")),
        Network::Mainnet,
    )
    .unwrap_err();
    assert!(missing.to_string().contains("`rpcuser` is missing"));
    let syntax = load_conf(
        &conf(&dir, &format!("rpcuser=u\n{PASSWORD}\n")),
        Network::Mainnet,
    )
    .unwrap_err();
    assert!(syntax.to_string().contains("line 2"));
    assert!(!syntax.to_string().contains(PASSWORD));
    let port = load_conf(
        &conf(&dir, "rpcuser=u\nrpcpassword=p\nrpcport=99999\n"),
        Network::Mainnet,
    )
    .unwrap_err();
    assert!(port.to_string().contains("rpcport"));
}

#[test]
fn group_reading_is_allowed_only_for_files_root_owns() {
    // A Kubernetes Secret for a non-root pod: 0440 root:<fsGroup>.
    assert!(!is_exposed(0o440, 0));
    assert!(!is_exposed(0o640, 0));
    assert!(!is_exposed(0o600, 1000));
    assert!(!is_exposed(0o400, 1000));
    // The same group reading on a file a user owns is that user's mistake.
    assert!(is_exposed(0o440, 1000));
    assert!(is_exposed(0o640, 1000));
    // Group writing, and anything for others, is open whoever owns it.
    assert!(is_exposed(0o660, 0));
    assert!(is_exposed(0o620, 0));
    assert!(is_exposed(0o604, 0));
    assert!(is_exposed(0o644, 0));
    assert!(is_exposed(0o601, 1000));
}

#[test]
fn utek_files_open_to_others_are_named_or_refused_in_strict_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let private = conf(&dir, "rpcuser=u\nrpcpassword=p\n");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    let shared = dir.path().join("metadata.json");
    std::fs::write(&shared, "{}").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();

    assert_eq!(check_permissions(&[&private], true).unwrap(), vec![]);
    assert_eq!(
        check_permissions(&[&private, &shared], false).unwrap(),
        vec![Exposed {
            path: shared.clone(),
            mode: 0o644
        }]
    );
    let refused = check_permissions(&[&private, &shared], true).unwrap_err();
    let text = refused.to_string();
    assert!(text.contains(&shared.display().to_string()), "{text}");
    assert!(text.contains("644"), "{text}");

    // Group-writable alone is open too.
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o620)).unwrap();
    assert!(check_permissions(&[&shared], true).is_err());
    let missing = dir.path().join("absent.conf");
    assert!(matches!(
        check_permissions(&[&missing], false),
        Err(UtekError::Read { .. })
    ));
}
