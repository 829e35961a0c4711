//! `cargo xtask setup`: everything a fresh machine of our kind lacks, each
//! step checked first so a second run changes nothing and takes seconds.

use std::{env, path::PathBuf};

use anyhow::{Context as _, Result, bail};
use nix::{
    mount::{MsFlags, mount},
    sys::statfs::{BPF_FS_MAGIC, statfs},
    unistd::Uid,
};

use crate::cmd::{command, output, run, succeeds};

/// Debian packages: the eBPF linker's LLVM, the tools the tests and the demo
/// drive, and the ones the benchmarks use.
const PACKAGES: &[&str] = &[
    // bpf-linker against rustc's LLVM (22).
    "llvm-22-dev",
    "libpolly-22-dev",
    "build-essential",
    "pkg-config",
    // Tests and demo.
    "iproute2",
    "iputils-ping",
    "util-linux",
    "bpftool",
    "iptables",
    "nftables",
    // The CNI plugin's tests: a real podman (CNI backend), host-local IPAM,
    // busybox for the containers' root filesystem.
    "podman",
    "runc",
    "containernetworking-plugins",
    "busybox-static",
    // Debugging and benchmarks.
    "tcpdump",
    "ethtool",
    "conntrack",
    "iperf3",
    "sockperf",
    "netsniff-ng",
    "hping3",
    "python3-scapy",
    "linux-perf",
];

const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPF_LINKER_VERSION: &str = "0.13.0";
const BPFFS: &str = "/sys/fs/bpf";

pub fn exec() -> Result<()> {
    if !Uid::effective().is_root() {
        bail!("setup needs root: it installs packages and mounts bpffs");
    }
    let steps: [(&str, Step); 5] = [
        ("debian packages", packages),
        ("rust components", rust_components),
        ("nightly rust-src", nightly_rust_src),
        ("bpf-linker (LLVM 22)", bpf_linker),
        ("bpffs at /sys/fs/bpf", bpffs),
    ];
    for (name, step) in steps {
        match step().with_context(|| format!("setup step `{name}`"))? {
            Outcome::Present => eprintln!("setup: {name}: present"),
            Outcome::Done(what) => eprintln!("setup: {name}: {what}"),
        }
    }
    Ok(())
}

type Step = fn() -> Result<Outcome>;

enum Outcome {
    Present,
    Done(String),
}

fn packages() -> Result<Outcome> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !package_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(Outcome::Present);
    }
    let apt = |args: &[&str]| {
        let mut cmd = command("apt-get", args);
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install)?;
    Ok(Outcome::Done(format!("installed {}", missing.join(" "))))
}

fn package_installed(name: &str) -> bool {
    output(&mut command("dpkg-query", &["-W", "-f=${Status}", name]))
        .is_ok_and(|s| s.trim() == "install ok installed")
}

/// rustfmt and clippy for the stable toolchain (the checks `test` runs).
fn rust_components() -> Result<Outcome> {
    let installed = output(&mut command(
        "rustup",
        &["component", "list", "--installed"],
    ))?;
    let missing: Vec<&str> = ["rustfmt", "clippy"]
        .into_iter()
        .filter(|c| !installed.lines().any(|l| l.starts_with(c)))
        .collect();
    if missing.is_empty() {
        return Ok(Outcome::Present);
    }
    let mut args = vec!["component", "add"];
    args.extend(&missing);
    run(&mut command("rustup", &args))?;
    Ok(Outcome::Done(format!("added {}", missing.join(" "))))
}

/// The eBPF crate builds with nightly's `-Z build-std=core`, which needs the
/// standard library's source.
fn nightly_rust_src() -> Result<Outcome> {
    let installed = output(&mut command(
        "rustup",
        &["component", "list", "--toolchain", "nightly", "--installed"],
    ));
    if installed.is_ok_and(|s| s.lines().any(|l| l.starts_with("rust-src"))) {
        return Ok(Outcome::Present);
    }
    run(&mut command(
        "rustup",
        &[
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ],
    ))?;
    Ok(Outcome::Done("installed".into()))
}

/// bpf-linker must use the LLVM that rustc's is (22); Debian's default
/// `llvm-config` (14) on PATH would be picked otherwise.
fn bpf_linker() -> Result<Outcome> {
    if bpf_linker_uses_llvm22() {
        return Ok(Outcome::Present);
    }
    let mut cmd = command(
        "cargo",
        &[
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--force",
            "--no-default-features",
            "--features",
            "llvm-22",
        ],
    );
    let path = env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![PathBuf::from(LLVM_PREFIX).join("bin")];
    paths.extend(env::split_paths(&path));
    cmd.env("PATH", env::join_paths(paths).context("building PATH")?)
        .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX);
    run(&mut cmd)?;
    if !bpf_linker_uses_llvm22() {
        bail!(
            "bpf-linker installed but does not run against LLVM 22 (see `ldd $(which bpf-linker)`)"
        );
    }
    Ok(Outcome::Done(format!("installed {BPF_LINKER_VERSION}")))
}

fn bpf_linker_uses_llvm22() -> bool {
    let Ok(path) = output(&mut command("sh", &["-c", "command -v bpf-linker"])) else {
        return false;
    };
    succeeds(&mut command("bpf-linker", &["--version"]))
        && output(&mut command("ldd", &[path.trim()]))
            .is_ok_and(|libs| libs.contains("libLLVM.so.22") && !libs.contains("not found"))
}

fn bpffs() -> Result<Outcome> {
    if statfs(BPFFS).is_ok_and(|fs| fs.filesystem_type() == BPF_FS_MAGIC) {
        return Ok(Outcome::Present);
    }
    std::fs::create_dir_all(BPFFS).with_context(|| format!("creating {BPFFS}"))?;
    mount(
        Some("bpf"),
        BPFFS,
        Some("bpf"),
        MsFlags::empty(),
        None::<&str>,
    )
    .with_context(|| format!("mounting bpffs at {BPFFS}"))?;
    Ok(Outcome::Done("mounted".into()))
}
