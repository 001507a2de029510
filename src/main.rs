//! `ndas`: parse the command line, load the config, start logging, run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ndas",
    version,
    about = "Stratum V1 pool-proxy for Bitcoin ASIC fleets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve miners.
    Serve {
        #[arg(long, default_value = "config/ndas.toml")]
        config: PathBuf,
    },
    /// Check a config (and the UTEK licence and credentials it names); exit 1 naming each bad key.
    CheckConfig {
        #[arg(long, default_value = "config/ndas.toml")]
        config: PathBuf,
    },
    /// A CPU miner for trying NDAS out (regtest): connects, mines, prints each answer.
    Miner {
        #[arg(long, default_value = "127.0.0.1:3333")]
        url: String,
        #[arg(long, default_value = "ndas-demo.cpu")]
        user: String,
        /// Shares submitted per second at most.
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        /// Stop after this many shares (0: run until interrupted).
        #[arg(long, default_value_t = 0)]
        shares: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Serve { config } => runtime.block_on(serve(config)),
        Command::Miner {
            url,
            user,
            rate,
            shares,
        } => runtime.block_on(mine(url, user, rate, shares)),
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match ndas::config::Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    if let Err(error) = config.validate() {
        eprintln!("{error}");
        failed = true;
    }
    if let Err(error) = ndas::node::endpoint(&config.node, config.network) {
        eprintln!("node: {error}");
        failed = true;
    }
    if failed {
        return ExitCode::FAILURE;
    }
    println!("{}: ok", path.display());
    ExitCode::SUCCESS
}

async fn serve(path: PathBuf) -> ExitCode {
    let config = match ndas::config::Config::load(&path) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(config = %path.display(), "configuration loaded");
    let running = match ndas::start(config).await {
        Ok(running) => running,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let token = running.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: telling miners to reconnect, flushing blocks");
        token.cancel();
    });
    running.wait().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

async fn mine(url: String, user: String, rate: f64, limit: u64) -> ExitCode {
    let address = url.trim_start_matches("stratum+tcp://");
    let Ok(address) = tokio::net::lookup_host(address).await.map(|mut a| a.next()) else {
        eprintln!("cannot resolve {address}");
        return ExitCode::FAILURE;
    };
    let Some(address) = address else {
        return ExitCode::FAILURE;
    };
    match run_miner(address, &user, rate, limit).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("miner: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_miner(
    address: std::net::SocketAddr,
    user: &str,
    rate: f64,
    limit: u64,
) -> std::io::Result<()> {
    use ndas::miner::{grind, Client};
    let mut client = Client::connect(address).await?;
    client.subscribe("ndas-cpu-miner/0.1").await?;
    client.authorize(user).await?;
    let pause = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut work = client
        .next_job(Duration::from_secs(60))
        .await?
        .ok_or_else(|| std::io::Error::other("no job from the pool within 60 s"))?;
    let (mut extranonce2, mut submitted) = (0u64, 0u64);
    loop {
        if let Some(newer) = client.latest_job() {
            work = newer;
        }
        extranonce2 += 1;
        let en2 = extranonce2.to_be_bytes()[8 - client.extranonce2_size.min(8)..].to_vec();
        let difficulty = client.difficulty;
        let Some(share) = grind(&work, &client.extranonce1, &en2, (None, 0), 1 << 20, |s| {
            s.difficulty >= difficulty
        }) else {
            continue;
        };
        let answer = client.submit(user, &share).await?;
        submitted += 1;
        let verdict = if answer["result"] == serde_json::json!(true) {
            "accepted".to_string()
        } else {
            answer["error"].to_string()
        };
        println!(
            "share {submitted}: job {} {} {}{}",
            share.job_id,
            share.hash,
            verdict,
            if share.is_block { "  (block!)" } else { "" }
        );
        if limit != 0 && submitted >= limit {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        while let Ok(Ok(Some(_))) =
            tokio::time::timeout(Duration::from_millis(1), client.read_message()).await
        {}
    }
}
