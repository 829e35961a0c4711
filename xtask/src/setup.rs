//! `cargo xtask setup`: everything a fresh machine of our kind lacks, each
//! step checked first so a second run changes nothing and takes seconds.

use std::{
    env,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use nix::{
    mount::{MsFlags, mount},
    sys::statfs::{BPF_FS_MAGIC, statfs},
    unistd::Uid,
};

use crate::{
    cmd::{command, output, run, succeeds},
    toolchain,
};

/// Debian packages: the tools the tests and the demo drive, and the ones the
/// benchmarks use. bpf-linker's LLVM packages come on top, in the version the
/// pinned eBPF toolchain's rustc is built on (`llvm_packages`).
const PACKAGES: &[&str] = &[
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
    // The Docker driver's tests: a real dockerd, started only inside their
    // sandboxes (see `NoServiceStarts`).
    "docker.io",
    // The cluster: etcd for the tests' three members, protoc and the
    // well-known protos to build the etcd-client crate.
    "etcd-server",
    "etcd-client",
    "protobuf-compiler",
    "libprotobuf-dev",
    // Debugging and benchmarks.
    "tcpdump",
    "ethtool",
    "conntrack",
    "iperf3",
    "sockperf",
    "netsniff-ng",
    "hping3",
    "python3-scapy",
    "strace",
    "linux-perf",
];

const BPF_LINKER_VERSION: &str = "0.13.0";
/// The LLVM majors bpf-linker BPF_LINKER_VERSION builds against (its
/// `llvm-N` features).
const BPF_LINKER_LLVM: std::ops::RangeInclusive<u32> = 21..=23;
const BPFFS: &str = "/sys/fs/bpf";

pub fn exec() -> Result<()> {
    if !Uid::effective().is_root() {
        bail!("setup needs root: it installs packages and mounts bpffs");
    }
    let steps: [(&str, Step); 4] = [
        ("pinned rust toolchains", toolchains),
        ("debian packages", packages),
        ("bpf-linker", bpf_linker),
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

/// The userspace and eBPF toolchains, each by its pinned name and with the
/// components the build and the checks use.
fn toolchains() -> Result<Outcome> {
    let mut done = Vec::new();
    for pin in [toolchain::userspace()?, toolchain::ebpf()?] {
        done.extend(pin.install()?);
    }
    Ok(if done.is_empty() {
        Outcome::Present
    } else {
        Outcome::Done(done.join("; "))
    })
}

fn packages() -> Result<Outcome> {
    let llvm = toolchain::ebpf()?.llvm_major()?;
    let llvm_packages = llvm_packages(llvm);
    let wanted = PACKAGES
        .iter()
        .copied()
        .chain(llvm_packages.iter().map(String::as_str));
    let missing: Vec<&str> = wanted.filter(|p| !package_installed(p)).collect();
    if missing.is_empty() {
        return Ok(Outcome::Present);
    }
    let apt = |args: &[&str]| {
        let mut cmd = command("apt-get", args);
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["update", "-q"])?;
    for package in &llvm_packages {
        if !package_available(package) {
            let pin = toolchain::ebpf()?;
            bail!(
                "the eBPF toolchain {} ({}) is built on LLVM {llvm}, but no package source \
                 here has {package} to build bpf-linker against: move the pin in {} to a \
                 nightly whose `rustc -vV` names an LLVM this machine packages",
                pin.channel,
                pin.file,
                pin.file
            );
        }
    }
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    let _no_starts = NoServiceStarts::ensure()?;
    apt(&install)?;
    Ok(Outcome::Done(format!("installed {}", missing.join(" "))))
}

/// Debian's `policy-rc.d`, refusing every service start while packages
/// install, unless the machine already has one: docker.io's would start a
/// dockerd on the machine itself, which adds a bridge and iptables rules to
/// the real host's network. Removed on drop if it was made here.
struct NoServiceStarts(Option<&'static Path>);

impl NoServiceStarts {
    const PATH: &'static str = "/usr/sbin/policy-rc.d";

    fn ensure() -> Result<NoServiceStarts> {
        let path = Path::new(Self::PATH);
        if path.exists() {
            return Ok(NoServiceStarts(None));
        }
        std::fs::write(
            path,
            "#!/bin/sh\n# netfwd's setup: no service starts while it installs.\nexit 101\n",
        )
        .with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
        Ok(NoServiceStarts(Some(path)))
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Some(path) = self.0
            && let Err(e) = std::fs::remove_file(path)
        {
            eprintln!("setup: removing {}: {e}", path.display());
        }
    }
}

/// What bpf-linker is built against: LLVM `major`'s libraries and Polly.
fn llvm_packages(major: u32) -> [String; 2] {
    [format!("llvm-{major}-dev"), format!("libpolly-{major}-dev")]
}

fn llvm_prefix(major: u32) -> PathBuf {
    PathBuf::from(format!("/usr/lib/llvm-{major}"))
}

fn package_installed(name: &str) -> bool {
    output(&mut command("dpkg-query", &["-W", "-f=${Status}", name]))
        .is_ok_and(|s| s.trim() == "install ok installed")
}

fn package_available(name: &str) -> bool {
    output(&mut command("apt-cache", &["policy", name])).is_ok_and(|policy| {
        policy
            .lines()
            .find_map(|l| l.trim().strip_prefix("Candidate: "))
            .is_some_and(|c| c != "(none)")
    })
}

/// bpf-linker reads the bitcode the pinned eBPF rustc writes, so it must be
/// built against the same LLVM major; when the two differ (a moved pin, or
/// a bpf-linker built for something else) it is rebuilt. Debian's default
/// `llvm-config` (14) on PATH would be picked otherwise, hence PATH and
/// LLVM_SYS_*_PREFIX.
fn bpf_linker() -> Result<Outcome> {
    let pin = toolchain::ebpf()?;
    let rustc_llvm = pin.llvm_major()?;
    let before = bpf_linker_llvm_major();
    if before == Some(rustc_llvm) {
        return Ok(Outcome::Present);
    }
    if !BPF_LINKER_LLVM.contains(&rustc_llvm) {
        bail!(
            "the eBPF toolchain {} ({}) is built on LLVM {rustc_llvm}, which bpf-linker \
             {BPF_LINKER_VERSION} cannot be built against (LLVM {}-{}): move the pin in {} \
             to a nightly whose `rustc -vV` names one of those",
            pin.channel,
            pin.file,
            BPF_LINKER_LLVM.start(),
            BPF_LINKER_LLVM.end(),
            pin.file
        );
    }
    let prefix = llvm_prefix(rustc_llvm);
    let feature = format!("llvm-{rustc_llvm}");
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
            &feature,
        ],
    );
    let path = env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![prefix.join("bin")];
    paths.extend(env::split_paths(&path));
    cmd.env("PATH", env::join_paths(paths).context("building PATH")?)
        .env(format!("LLVM_SYS_{rustc_llvm}1_PREFIX"), &prefix);
    run(&mut cmd)?;
    match bpf_linker_llvm_major() {
        Some(major) if major == rustc_llvm => {}
        found => bail!(
            "bpf-linker installed but runs against LLVM {}, not {rustc_llvm} (see `ldd $(command -v bpf-linker)`)",
            found.map_or("(unknown)".into(), |m| m.to_string())
        ),
    }
    Ok(Outcome::Done(match before {
        Some(old) => format!(
            "rebuilt {BPF_LINKER_VERSION} against LLVM {rustc_llvm} (was LLVM {old}; {} is on {rustc_llvm})",
            pin.channel
        ),
        None => format!("installed {BPF_LINKER_VERSION} against LLVM {rustc_llvm}"),
    }))
}

/// The LLVM major the installed bpf-linker runs against (from the libLLVM it
/// loads), None when there is none that runs.
fn bpf_linker_llvm_major() -> Option<u32> {
    let path = output(&mut command("sh", &["-c", "command -v bpf-linker"])).ok()?;
    if !succeeds(&mut command("bpf-linker", &["--version"])) {
        return None;
    }
    let libs = output(&mut command("ldd", &[path.trim()])).ok()?;
    if libs.contains("not found") {
        return None;
    }
    libs.split_whitespace().find_map(|lib| {
        let version = lib
            .strip_prefix("libLLVM.so.")
            .or_else(|| lib.strip_prefix("libLLVM-"))?;
        version
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
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
