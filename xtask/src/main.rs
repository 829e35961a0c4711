//! `cargo xtask`: the project's own build, test and demo driver. Every
//! command that needs tools runs `setup` first, so one command works on a
//! fresh machine.

mod bench;
mod cmd;
mod demo;
mod setup;
mod toolchain;
mod toolchain_proof;
mod xdp_pass;

use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::cmd::{command, run, workspace_root};

#[derive(Parser)]
#[command(about = "Build, test and demo netfwd")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what this machine lacks (packages, rust-src, bpf-linker) and
    /// mount bpffs. Idempotent.
    Setup,
    /// Set up, then build netfwd (release, eBPF object included).
    Build,
    /// Prove the toolchain pins: setup and the eBPF build pass with a
    /// private rustup home whose own `nightly` is newer than the eBPF pin,
    /// and leave that nightly as it was (part of `test`).
    ToolchainProof,
    /// Set up, then write netfwd's shell completions (bash, zsh, fish) and
    /// man pages, generated from its clap definitions, to target/dist/.
    Dist,
    /// Set up, build, check formatting and lints, run the unit tests and the
    /// privileged integration tests. Arguments after `--` go to the test
    /// binaries (a name filter, `--nocapture`, …).
    Test {
        #[arg(last = true)]
        test_args: Vec<String>,
    },
    /// Set up, build, and measure netfwd against Linux bridge + iptables
    /// and against the bare-veth limit, then its control plane against the
    /// CNI bridge and portmap plugins, in sandbox namespaces.
    Bench {
        /// A smoke run: fewer, shorter repetitions (under 3 minutes; the
        /// control plane alone, about a minute).
        #[arg(long)]
        quick: bool,
        /// Only the control plane's rows (CNI ADD/DEL, `up`, attach).
        #[arg(long, conflicts_with = "cluster")]
        control_plane: bool,
        /// Only the cluster's rows (cross-host traffic against plain
        /// routing and the kernel's VXLAN, convergence), about two minutes
        /// with --quick.
        #[arg(long)]
        cluster: bool,
        /// Only the monitor's rows (the datapath with `netfwd monitor` off,
        /// with drop events on, and built without it), a few minutes.
        #[arg(long, conflicts_with_all = ["control_plane", "cluster"])]
        monitor: bool,
        /// Only the many-networks rows (four networks on one uplink
        /// against one: request/response, streams, program costs,
        /// misdelivery), about a minute with --quick.
        #[arg(long, conflicts_with_all = ["control_plane", "cluster", "monitor"])]
        networks: bool,
        /// Only the scale rows (10 against 10,000 endpoints, 1,000 against
        /// 10,000 published ports; netfwd tc, the baseline and the limit),
        /// about half an hour.
        #[arg(long, conflicts_with_all = ["control_plane", "cluster", "monitor", "networks"])]
        scale: bool,
        /// Only the main table, its chart and the NAT expiry rows (what
        /// the README shows), without the sections after it.
        #[arg(long, conflicts_with_all = ["control_plane", "cluster", "monitor", "networks", "scale"])]
        data_plane: bool,
        /// Only the main table's rows whose workload name contains TEXT
        /// (e.g. "over IPv6"), on the setups they run on; no NAT memory or
        /// expiry rows. A smoke test of a row, not a result.
        #[arg(long, value_name = "TEXT", conflicts_with_all = ["control_plane", "cluster", "monitor", "networks", "scale"])]
        rows: Option<String>,
        /// The netfwd binary to measure, with its netfwd-cni beside it
        /// (another build, e.g. main's, against the same baselines);
        /// default: this workspace's release build.
        #[arg(long)]
        netfwd: Option<PathBuf>,
    },
    /// Set up, build, and soak netfwd: mixed TCP/UDP/ICMP between every
    /// endpoint and to the internet, every payload checked, NAT table and
    /// daemon memory sampled (see tests/tests/soak.rs).
    Soak {
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Datapath mode.
        #[arg(long, default_value = "tc", value_parser = ["tc", "xdp"])]
        mode: String,
    },
    /// Set up, build, and run the demo: seed 001's network in a sandbox, a
    /// connectivity matrix, the datapath counters. Arguments after `--` run
    /// netfwd with them instead (`cargo xtask run -- up -c net.toml`).
    Run {
        /// Leave the demo network up.
        #[arg(long)]
        keep: bool,
        #[arg(last = true)]
        netfwd_args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match exec(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn exec(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Setup => setup::exec(),
        Command::Build => {
            setup::exec()?;
            build()
        }
        Command::ToolchainProof => {
            setup::exec()?;
            toolchain_proof::exec()
        }
        Command::Dist => {
            setup::exec()?;
            dist()
        }
        Command::Test { test_args } => {
            setup::exec()?;
            build()?;
            test(&test_args)
        }
        Command::Bench {
            quick,
            control_plane,
            cluster,
            monitor,
            networks,
            scale,
            data_plane,
            rows,
            netfwd,
        } => {
            setup::exec()?;
            build()?;
            let sections = [
                (control_plane, bench::Sections::ControlPlane),
                (cluster, bench::Sections::Cluster),
                (monitor, bench::Sections::Monitor),
                (networks, bench::Sections::Networks),
                (scale, bench::Sections::Scale),
                (data_plane || rows.is_some(), bench::Sections::DataPlane),
            ]
            .into_iter()
            .find_map(|(chosen, section)| chosen.then_some(section))
            .unwrap_or(bench::Sections::All);
            let netfwd = netfwd.unwrap_or_else(netfwd_bin);
            bench::exec(&netfwd, quick, sections, rows.as_deref())
        }
        Command::Soak { minutes, mode } => {
            setup::exec()?;
            build()?;
            soak(minutes * 60, &mode)
        }
        Command::Run { keep, netfwd_args } => {
            setup::exec()?;
            build()?;
            if netfwd_args.is_empty() {
                demo::exec(&netfwd_bin(), keep)
            } else {
                run(&mut command(&netfwd_bin().to_string_lossy(), &netfwd_args))
            }
        }
    }
}

pub fn netfwd_bin() -> PathBuf {
    workspace_root().join("target/release/netfwd")
}

fn cargo<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<()> {
    let mut cmd = command("cargo", args);
    cmd.current_dir(workspace_root());
    run(&mut cmd)
}

fn build() -> Result<()> {
    cargo(&["build", "--release", "--package", "netfwd"])
}

/// Where `dist` writes: `completions/` and `man/man1/`.
fn dist_dir() -> PathBuf {
    workspace_root().join("target/dist")
}

fn dist() -> Result<()> {
    let dir = dist_dir();
    let dir = dir.to_string_lossy();
    cargo(&[
        "run",
        "--release",
        "--package",
        "netfwd",
        "--example",
        "dist",
        "--",
        &dir,
    ])
}

/// Format and lint checks first (they are the cheap failures), then every
/// test of the workspace. The integration tests share kernel state (bpffs,
/// /run/netns) and the machine has few cores: one test at a time.
fn test(test_args: &[String]) -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
    // The eBPF crate with its own pinned toolchain (it builds only for bpfel).
    run(toolchain::ebpf()?.cargo(&workspace_root()).args([
        "clippy",
        "--package",
        "netfwd-ebpf",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ]))?;
    // Only on full runs: it downloads the pinned toolchains into a private
    // rustup home and builds from scratch (a few minutes).
    if test_args.is_empty() {
        toolchain_proof::exec()?;
    }
    cargo_test(&[], "tc", test_args)?;
    // The scenario tests again with XDP in front of TC: every behaviour the
    // same in both modes, but for the few tests of a client's own logic
    // that `xdp_pass` skips by name and lists.
    let mut xdp_args = xdp_pass::skip_args()?;
    xdp_args.extend(test_args.iter().cloned());
    cargo_test(&["--package", "netfwd-tests"], "xdp", &xdp_args)?;
    xdp_pass::print_skipped();
    // A short soak in each mode, unless the caller picked tests.
    if test_args.is_empty() {
        for mode in ["tc", "xdp"] {
            soak(CI_SOAK_SECS, mode)?;
        }
    }
    Ok(())
}

/// The soak `test` runs in each mode: the NAT table levels off once the
/// soak's longest timeout (10 s) and a sweep (5 s) have passed, so 30 s
/// leave three samples on the plateau, which is what the soak asserts;
/// the long soaks are `cargo xtask soak`'s.
const CI_SOAK_SECS: u64 = 30;

fn soak(secs: u64, mode: &str) -> Result<()> {
    let mut cmd = command(
        "cargo",
        &[
            "test",
            "--release",
            "--package",
            "netfwd-tests",
            "--test",
            "soak",
            "--",
            "--ignored",
            "--nocapture",
        ],
    );
    cmd.current_dir(workspace_root())
        .env("NETFWD_BIN", netfwd_bin())
        .env("NETFWD_TEST_MODE", mode)
        .env("NETFWD_SOAK_SECS", secs.to_string());
    run(&mut cmd)
}

/// `cargo test --release <select> -- --test-threads=1 <test_args>` with the
/// scenario tests in datapath mode `mode`.
fn cargo_test(select: &[&str], mode: &str, test_args: &[String]) -> Result<()> {
    let mut args: Vec<String> = ["test", "--release"].map(String::from).to_vec();
    args.extend(select.iter().map(|s| s.to_string()));
    args.extend(["--", "--test-threads=1"].map(String::from));
    args.extend(test_args.iter().cloned());
    let mut cmd = command("cargo", &args);
    cmd.current_dir(workspace_root())
        .env("NETFWD_BIN", netfwd_bin())
        .env("NETFWD_TEST_MODE", mode);
    run(&mut cmd)
}
