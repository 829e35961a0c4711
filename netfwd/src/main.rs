//! The `netfwd` command: clap dispatch only; each subcommand is one file under
//! `commands/`.

use std::{net::Ipv4Addr, path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::{Parser, Subcommand};
use netfwd::{commands, config::Proto, error, name::NetworkName, netns, network::Target};
use nix::sys::signal;

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
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: Option<NetworkName>,
    },
    /// Plug a running process's network namespace (or a namespace file) into
    /// a network as an endpoint.
    Attach {
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: NetworkName,
        #[command(flatten)]
        target: AttachTarget,
        /// Address to give it (default: the lowest free one).
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        /// Interface name inside the namespace.
        #[arg(long, default_value = "eth0")]
        ifname: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove what `attach` added; the namespace is left as it was.
    Detach {
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: NetworkName,
        #[command(flatten)]
        target: DetachTarget,
    },
    /// Publish a host port to an endpoint while the network runs.
    Publish {
        #[command(flatten)]
        port: HostPort,
        /// The endpoint: its netns name or its address.
        #[arg(long)]
        endpoint: String,
        /// The endpoint's port.
        #[arg(long = "port")]
        target_port: u16,
        /// 0.0.0.0: every address; 127.0.0.1: the host's own connections
        /// only (Docker's `-p 127.0.0.1:…`).
        #[arg(long, default_value = "0.0.0.0")]
        host_ip: String,
    },
    /// Stop publishing a host port; connections already made keep going.
    Unpublish {
        #[command(flatten)]
        port: HostPort,
    },
    /// Bring the network up and keep it: collect expired NAT flows, follow
    /// the uplink's address, forget exited attached endpoints. Stops on
    /// SIGTERM/SIGINT, leaving the network up.
    Daemon {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Seconds between two passes (default: half the shortest NAT
        /// timeout, at most 5).
        #[arg(long, value_name = "SECS")]
        gc_interval: Option<u64>,
    },
    /// Serve Docker Engine as a network driver (`docker network create -d
    /// NAME`) on /run/docker/plugins/NAME.sock, until SIGTERM/SIGINT; the
    /// networks stay up.
    DockerPlugin {
        /// The driver's name, as `docker network create -d` takes it.
        #[arg(long, default_value = "netfwd")]
        name: String,
    },
    /// Per-interface datapath counters, drops by reason.
    Stats {
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: Option<NetworkName>,
        #[arg(long)]
        json: bool,
    },
    /// The NAT table.
    Nat {
        #[command(subcommand)]
        command: NatCommand,
    },
    /// Show networks, endpoints, attached programs and counters.
    Status {
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: Option<NetworkName>,
        #[arg(long)]
        json: bool,
    },
}

/// A published host port of a network.
#[derive(clap::Args)]
struct HostPort {
    #[arg(long, value_name = "NET", value_parser = network_name)]
    name: NetworkName,
    #[arg(long, value_enum)]
    proto: Proto,
    #[arg(long)]
    host_port: u16,
}

#[derive(Subcommand)]
enum NatCommand {
    /// The flows: protocol, inside, outside and remote address, state, age,
    /// expiry.
    List {
        #[arg(long, value_name = "NET", value_parser = network_name)]
        name: Option<NetworkName>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct AttachTarget {
    /// A running process: its /proc/PID/ns/net.
    #[arg(long)]
    pid: Option<u32>,
    /// A network namespace file (e.g. /run/netns/X).
    #[arg(long = "netns-path", value_name = "PATH")]
    netns_path: Option<PathBuf>,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct DetachTarget {
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long = "netns-path", value_name = "PATH")]
    netns_path: Option<PathBuf>,
    /// The attached endpoint with this address.
    #[arg(long)]
    ip: Option<Ipv4Addr>,
}

/// `--name`, checked while the arguments are parsed: before anything is
/// entered, read or touched.
fn network_name(name: &str) -> Result<NetworkName, String> {
    NetworkName::try_from(name.to_owned())
}

/// A value clap's parser refused, as netfwd reports bad input: the option,
/// then why (`--name: "../x" must be …`).
fn invalid_value(err: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let why = std::error::Error::source(err).map_or_else(|| err.to_string(), |s| s.to_string());
    match err.get(ContextKind::InvalidArg) {
        // "--name <NET>": the option alone.
        Some(ContextValue::String(arg)) => {
            let option = arg.split(' ').next().unwrap_or(arg);
            format!("{option}: {why}")
        }
        _ => why,
    }
}

fn attach_target(pid: Option<u32>, path: Option<PathBuf>, ip: Option<Ipv4Addr>) -> Result<Target> {
    match (pid, path, ip) {
        (Some(pid), _, _) => Ok(Target::Pid(pid)),
        (None, Some(path), _) => Ok(Target::Path(path)),
        (None, None, Some(ip)) => Ok(Target::Ip(ip)),
        (None, None, None) => Err(netfwd::input_error!("give --pid or --netns-path")),
    }
}

fn main() -> ExitCode {
    // Output piped into `head` and the like ends quietly, as other command
    // line tools do, instead of a panic on EPIPE.
    // SAFETY: restoring the default disposition before any thread starts.
    let _ = unsafe { signal::signal(signal::Signal::SIGPIPE, signal::SigHandler::SigDfl) };
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A bad value is bad input like any other: one line, exit code 2.
        Err(err) if err.kind() == clap::error::ErrorKind::ValueValidation => {
            eprintln!("netfwd: error: {}", invalid_value(&err));
            return ExitCode::from(error::EXIT_BAD_INPUT);
        }
        Err(err) => err.exit(),
    };
    // The daemon's log is its point: what it collected, what changed.
    let level = if matches!(
        cli.command,
        Command::Daemon { .. } | Command::DockerPlugin { .. }
    ) {
        "info"
    } else {
        "warn"
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
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
                commands::down::exec(config.as_deref(), name.as_ref()).await
            }
            Command::Status { name, json } => commands::status::exec(name.as_ref(), json).await,
            Command::Attach {
                name,
                target,
                ip,
                ifname,
                json,
            } => {
                let target = attach_target(target.pid, target.netns_path, None)?;
                commands::attach::exec_attach(&name, &target, ip, &ifname, json).await
            }
            Command::Daemon {
                config,
                gc_interval,
            } => commands::daemon::exec(&config, gc_interval).await,
            Command::DockerPlugin { name } => commands::docker_plugin::exec(&name).await,
            Command::Stats { name, json } => commands::stats::exec(name.as_ref(), json).await,
            Command::Nat {
                command: NatCommand::List { name, json },
            } => commands::nat::exec_list(name.as_ref(), json).await,
            Command::Publish {
                port,
                endpoint,
                target_port,
                host_ip,
            } => {
                commands::publish::exec_publish(
                    &port.name,
                    port.proto,
                    (&host_ip, port.host_port),
                    &endpoint,
                    target_port,
                )
                .await
            }
            Command::Unpublish { port } => {
                commands::publish::exec_unpublish(&port.name, port.proto, port.host_port).await
            }
            Command::Detach { name, target } => {
                let target = attach_target(target.pid, target.netns_path, target.ip)?;
                commands::attach::exec_detach(&name, &target).await
            }
        }
    })
}
