//! The bench tools' subcommands (`load`, `fanout-floor`, `stand-in-node`):
//! apart from the server's own start.

use std::process::ExitCode;
use std::time::Duration;

/// `ndas load`: runs the generator and prints its report.
pub async fn load(config: crate::load::LoadConfig, json: bool) -> ExitCode {
    match crate::load::run(config).await {
        Ok(report) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("load: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `ndas fanout-floor`: the least any server can do to fan a job out here.
pub async fn fanout_floor(
    listen: std::net::SocketAddr,
    template: &std::path::Path,
    every: f64,
) -> ExitCode {
    let template = std::fs::read_to_string(template)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .and_then(|raw| ndas_core::template::Template::from_json(raw).map_err(|e| e.to_string()));
    let template = match template {
        Ok(template) => template,
        Err(error) => {
            eprintln!("fanout-floor: {error}");
            return ExitCode::FAILURE;
        }
    };
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => {
            match crate::load::floor::serve(listener, template, Duration::from_secs_f64(every))
                .await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("fanout-floor: cannot build a job from the template: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(error) => {
            eprintln!("fanout-floor: cannot listen on {listen}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `ndas stand-in-node`: a recorded template for throughput runs.
pub async fn stand_in(
    listen: std::net::SocketAddr,
    template: &std::path::Path,
    bits: &str,
    tip_every: f64,
) -> ExitCode {
    let parsed = std::fs::read_to_string(template)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()));
    let bits = u32::from_str_radix(bits, 16).map_err(|e| e.to_string());
    let standin = match (parsed, bits) {
        (Ok(template), Ok(bits)) => match crate::load::standin::StandIn::new(template, bits) {
            Ok(standin) => standin,
            Err(error) => {
                eprintln!("stand-in: {error}");
                return ExitCode::FAILURE;
            }
        },
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("stand-in: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("stand-in: cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%listen, "stand-in node serving");
    if tip_every > 0.0 {
        let mover = standin.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs_f64(tip_every));
            every.tick().await;
            loop {
                every.tick().await;
                mover.new_tip();
            }
        });
    }
    tokio::select! {
        _ = crate::load::standin::serve(listener, standin) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}
