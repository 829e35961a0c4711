//! The `netfwd` command: clap dispatch only; each subcommand is one file under
//! `commands/`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::{Parser, Subcommand};
use netfwd::{commands, error, netns};

#[derive(Parser)]
#[command(
    version,
    about = "Container networks with an eBPF datapath instead of a bridge and iptables"
)]
struct Cli {
    /// Act in this network namespace (an ip-netns name or a path) instead of
    /// the one netfwd is started in.
    #[arg(long, global = true, value_name = "NAME")]
    netns: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the network described by a config file, or complete it.
    Up {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove everything netfwd created for a network.
    Down {
        #[arg(
            short,
            long,
            value_name = "FILE",
            conflicts_with = "name",
            required_unless_present = "name"
        )]
        config: Option<PathBuf>,
        #[arg(long, value_name = "NET")]
        name: Option<String>,
    },
    /// Show networks, endpoints, attached programs and counters.
    Status {
        #[arg(long, value_name = "NET")]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("netfwd: error: {err:#}");
            ExitCode::from(error::exit_code(&err))
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // Before the runtime exists: setns() moves only the calling thread, and the
    // single-threaded runtime keeps all work on it.
    if let Some(target) = &cli.netns {
        let path = if target.contains('/') {
            PathBuf::from(target)
        } else {
            netns::path(target)
        };
        if !netns::is_netns_path(&path).unwrap_or(false) {
            return Err(netfwd::input_error!(
                "--netns: {} is not a network namespace",
                path.display()
            ));
        }
        netns::enter(&path)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Up { config, json } => commands::up::exec(&config, json).await,
            Command::Down { config, name } => {
                commands::down::exec(config.as_deref(), name.as_deref()).await
            }
            Command::Status { name, json } => commands::status::exec(name.as_deref(), json).await,
        }
    })
}
