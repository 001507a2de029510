//! `ndas`: parse the command line, load the config, start logging, run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod logging;
mod signals;
mod sv2_commands;

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
    /// Print the Stratum V2 authority public key and the URL miners are
    /// given (the key is made in data_dir if there is none yet).
    Sv2Key {
        #[arg(long, default_value = "config/ndas.toml")]
        config: PathBuf,
        /// The host miners connect to (default: the listen address's IP).
        #[arg(long)]
        host: Option<String>,
    },
    /// GET a URL and exit 0 on a 2xx answer (the container health check).
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9100/healthz")]
        url: String,
    },
    /// Simulate many miners over loopback against a running NDAS and report
    /// connections held, answer latency and throughput, and notify fan-out.
    Load {
        #[arg(long, default_value = "127.0.0.1:3333")]
        target: std::net::SocketAddr,
        #[arg(long, default_value_t = 1000)]
        miners: usize,
        /// Total submits per second across all miners (0: hold connections only).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Seconds measured once every miner has a job.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Source addresses 127.0.0.1..N (each gives about 28,000 ports).
        #[arg(long, default_value_t = 1)]
        sources: u8,
        /// New connections per second during the ramp.
        #[arg(long, default_value_t = 5000.0)]
        connect_rate: f64,
        /// `random` nonces (the server hashes each) or ground `shares`.
        #[arg(long, default_value = "random")]
        mode: String,
        /// Authorize as `<address>.m<i>` over N regtest addresses (a pool in `username` mode).
        #[arg(long, default_value_t = 0)]
        payout_addresses: usize,
        /// `stratum` (V1) or `sv2` (Stratum V2; `--miners` then counts channels).
        #[arg(long, default_value = "stratum")]
        protocol: String,
        /// SV2: the server's authority key, as `ndas sv2-key` prints it (or its URL).
        #[arg(long)]
        authority: Option<String>,
        /// SV2: `standard` channels (a firmware's) or `extended` (a proxy's).
        #[arg(long, default_value = "standard")]
        channel: String,
        /// SV2: channels each connection opens.
        #[arg(long, default_value_t = 1)]
        channels_per_connection: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A stand-in node for load runs: serves a recorded template with the given bits.
    StandInNode {
        #[arg(long, default_value = "127.0.0.1:18999")]
        listen: std::net::SocketAddr,
        /// A getblocktemplate answer (JSON file).
        #[arg(long)]
        template: PathBuf,
        /// Compact target to serve, hex (mainnet-like by default: no share is a block).
        #[arg(long, default_value = "17034219")]
        bits: String,
        /// Move the tip every this many seconds (0: never).
        #[arg(long, default_value_t = 0.0)]
        tip_every: f64,
    },
    /// The fan-out floor for benchmarks: pushes a job to every miner in one
    /// tight loop, with no per-miner work.
    #[command(hide = true)]
    FanoutFloor {
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// A getblocktemplate answer (JSON file) to build the jobs from.
        #[arg(long)]
        template: PathBuf,
        /// A new job every this many seconds.
        #[arg(long, default_value_t = 2.0)]
        every: f64,
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Sv2Key { config, host } => sv2_commands::sv2_key(&config, host),
        Command::Serve { config: path } => {
            let config = match ndas::config::Config::load(&path) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            };
            let log = logging::init(&config.log);
            let code = runtime.block_on(serve(path, config, log));
            // Blocking work still running (a journal write the shutdown gave
            // up on) must not hold the exit past the grace period: what it
            // did not finish stays pending in the journal.
            runtime.shutdown_timeout(Duration::from_millis(500));
            code
        }
        Command::Miner {
            url,
            user,
            rate,
            shares,
        } => {
            logging::init(&ndas::config::Config::default().log);
            runtime.block_on(mine(url, user, rate, shares))
        }
        Command::Health { url } => runtime.block_on(health(&url)),
        Command::FanoutFloor {
            listen,
            template,
            every,
        } => runtime.block_on(ndas_tools::cli::fanout_floor(listen, &template, every)),
        Command::Load {
            target,
            miners,
            rate,
            seconds,
            sources,
            connect_rate,
            mode,
            payout_addresses,
            protocol,
            authority,
            channel,
            channels_per_connection,
            json,
        } => {
            let sv2 = match sv2_commands::load_protocol(&protocol, authority.as_deref(), &channel) {
                Ok(sv2) => sv2.map(|(authority, extended)| ndas_tools::load::Sv2Load {
                    authority,
                    extended,
                    channels_per_connection,
                }),
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            };
            let mode = match mode.as_str() {
                "random" => ndas_tools::load::Mode::Random,
                "shares" => ndas_tools::load::Mode::Shares,
                other => {
                    eprintln!("--mode must be random or shares, not {other}");
                    return ExitCode::FAILURE;
                }
            };
            let config = ndas_tools::load::LoadConfig {
                target,
                miners,
                rate,
                duration: Duration::from_secs(seconds),
                sources,
                connect_rate,
                ramp_timeout: Duration::from_secs(120),
                mode,
                payout_addresses,
                sv2,
            };
            runtime.block_on(ndas_tools::cli::load(config, json))
        }
        Command::StandInNode {
            listen,
            template,
            bits,
            tip_every,
        } => {
            logging::init(&ndas::config::Config::default().log);
            runtime.block_on(ndas_tools::cli::stand_in(
                listen, &template, &bits, tip_every,
            ))
        }
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
    for (key, entry) in config.node.entries() {
        if let Err(error) = ndas::node::endpoint(entry, config.network) {
            eprintln!("{key} ({}): {error}", entry.name);
            failed = true;
        }
    }
    if failed {
        return ExitCode::FAILURE;
    }
    println!("{}: ok", path.display());
    ExitCode::SUCCESS
}

async fn serve(path: PathBuf, config: ndas::config::Config, log: logging::Reload) -> ExitCode {
    tracing::info!(config = %path.display(), network = %config.network, "configuration loaded");
    // Before the start's work (the journal's recovery, the node's check): a
    // SIGTERM or SIGHUP then waits for it to finish instead of killing the
    // process by the default action mid-recovery.
    let mut signals = match signals::Signals::new() {
        Ok(signals) => signals,
        Err(error) => {
            tracing::error!(%error, "cannot listen for signals");
            return ExitCode::FAILURE;
        }
    };
    let mut running = match ndas::start(config).await {
        Ok(running) => running,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        match signals.next().await {
            signals::Signal::Terminate => break,
            signals::Signal::Reload => reload(&path, &mut running, &log),
        }
    }
    tracing::info!("shutting down: telling miners to reconnect, flushing blocks");
    let stats = running.stats().clone();
    let journal = running.journal().clone();
    // A second SIGTERM or SIGINT ends it at once: what is pending stays in
    // the journal for the next start.
    tokio::select! {
        () = running.shutdown() => {}
        () = async {
            while !matches!(signals.next().await, signals::Signal::Terminate) {}
        } => tracing::warn!("second signal: exiting now; blocks not yet settled stay in the journal"),
    }
    let totals = stats.accounting();
    // Blocks the nodes have not judged yet: submitted again at the next start.
    tracing::info!(
        shares_accepted = totals.shares_accepted,
        shares_rejected = totals.shares_rejected,
        accepted_difficulty = totals.accepted_difficulty,
        blocks_found = totals.blocks_found,
        blocks_unsettled = journal.unsettled(),
        "stopped"
    );
    ExitCode::SUCCESS
}

/// SIGHUP: re-reads the file and applies what can change live.
fn reload(path: &std::path::Path, running: &mut ndas::Running, log: &logging::Reload) {
    let loaded =
        ndas::config::Config::load(path).and_then(|config| config.validate().map(|()| config));
    let new = match loaded {
        Ok(new) => new,
        Err(error) => {
            tracing::error!(config = %path.display(), "SIGHUP: configuration not reloaded: {error}");
            return;
        }
    };
    let level = new.log.level.clone();
    let mut changes = running.reload(new);
    changes.extend(log.set_level(&level));
    if changes.is_empty() {
        tracing::info!(config = %path.display(), "SIGHUP: configuration reloaded; nothing changed");
    }
    for change in changes {
        tracing::info!(config = %path.display(), "SIGHUP: {change}");
    }
}

/// `GET url`, exit 0 on a 2xx answer: the container health check.
async fn health(url: &str) -> ExitCode {
    let Some(rest) = url.strip_prefix("http://") else {
        eprintln!("health: only http:// URLs");
        return ExitCode::FAILURE;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let request = format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    let exchange = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(answer))
            if answer.starts_with(b"HTTP/1.1 2") || answer.starts_with(b"HTTP/1.0 2") =>
        {
            ExitCode::SUCCESS
        }
        Ok(Ok(answer)) => {
            let status = answer.split(|b| *b == b'\n').next().unwrap_or(b"");
            eprintln!("health: {}", String::from_utf8_lossy(status).trim());
            ExitCode::FAILURE
        }
        Ok(Err(error)) => {
            eprintln!("health: {error}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("health: no answer within 5 s");
            ExitCode::FAILURE
        }
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
    use ndas_tools::miner::{grind, Client};
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
