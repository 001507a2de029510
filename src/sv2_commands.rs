//! The binary's Stratum V2 commands: `ndas sv2-key`, and what `ndas load
//! --protocol sv2` is given.

use std::process::ExitCode;

/// `ndas load`'s protocol: `None` for V1, or SV2's authority key and
/// whether its channels are extended.
pub(crate) fn load_protocol(
    protocol: &str,
    authority: Option<&str>,
    channel: &str,
) -> Result<Option<([u8; 32], bool)>, String> {
    match protocol {
        "stratum" => Ok(None),
        "sv2" => {
            let authority =
                authority.ok_or("--protocol sv2 needs --authority (what `ndas sv2-key` prints)")?;
            let key = ndas::sv2::keys::parse_public(authority)?;
            match channel {
                "standard" => Ok(Some((key, false))),
                "extended" => Ok(Some((key, true))),
                other => Err(format!(
                    "--channel must be standard or extended, not {other}"
                )),
            }
        }
        other => Err(format!("--protocol must be stratum or sv2, not {other}")),
    }
}

/// `ndas sv2-key`: the authority key's public half and the miners' URL.
pub(crate) fn sv2_key(path: &std::path::Path, host: Option<String>) -> ExitCode {
    let config = match ndas::config::Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let Some(sv2) = &config.sv2 else {
        eprintln!(
            "{}: no [sv2] section: the Stratum V2 endpoint is off",
            path.display()
        );
        return ExitCode::FAILURE;
    };
    let key = match ndas::sv2::keys::AuthorityKey::load_or_create(&config.data_dir) {
        Ok(key) => key,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let host = host.unwrap_or_else(|| match sv2.listen.ip() {
        ip if ip.is_unspecified() => "<host>".into(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    });
    println!("authority public key: {}", key.public_text());
    println!(
        "miners' URL: {}",
        ndas::sv2::keys::url(&host, sv2.listen.port(), &key)
    );
    ExitCode::SUCCESS
}
