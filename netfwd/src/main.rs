//! The `netfwd` command: clap dispatch only (the arguments are `cli`'s); each
//! subcommand is one file under `commands/`.

use std::{net::Ipv4Addr, path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::Parser as _;
use netfwd::{
    cli::{Cli, ClusterCommand, Command, NatCommand},
    commands, error, explain, netns,
    network::Target,
};
use nix::sys::signal;

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
        Ok(code) => code,
        Err(err) => {
            eprintln!("netfwd: error: {err:#}");
            ExitCode::from(error::exit_code(&err))
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
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
        let done = match cli.command {
            Command::Up { config, json } => commands::up::exec(&config, json).await,
            Command::Down { config, name } => {
                commands::down::exec(config.as_deref(), name.as_ref()).await
            }
            Command::Status { name, json } => commands::status::exec(name.as_ref(), json).await,
            Command::Attach {
                name,
                target,
                ip,
                ip6,
                ifname,
                json,
            } => {
                let target = attach_target(target.pid, target.netns_path, None)?;
                commands::attach::exec_attach(&name, &target, (ip, ip6), &ifname, json).await
            }
            Command::Daemon {
                config,
                gc_interval,
                metrics,
            } => commands::daemon::exec(&config, gc_interval, metrics).await,
            Command::DockerPlugin { name, metrics } => {
                commands::docker_plugin::exec(&name, metrics).await
            }
            Command::Stats { name, json } => commands::stats::exec(name.as_ref(), json).await,
            // The one command whose exit code is an answer (3: dropped).
            Command::Explain {
                name,
                from,
                source,
                to,
                proto,
                json,
            } => {
                let question = explain::Question {
                    network: &name,
                    from: &from,
                    source,
                    to,
                    proto,
                };
                return commands::explain::exec(&question, json).await;
            }
            Command::Monitor {
                name,
                kinds,
                endpoint,
                json,
            } => commands::monitor::exec(name.as_ref(), &kinds, endpoint, json).await,
            Command::Cluster {
                command: ClusterCommand::Status { config, json },
            } => commands::cluster::exec_status(&config, json).await,
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
        };
        done.map(|()| ExitCode::SUCCESS)
    })
}
