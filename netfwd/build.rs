//! Builds the eBPF object (netfwd-ebpf) with its pinned nightly and
//! bpf-linker, and leaves it in OUT_DIR for `include_bytes_aligned!`; then
//! describes the build for `netfwd --version` (`NETFWD_COMMIT`,
//! `NETFWD_DATAPATH`, `NETFWD_TOOLCHAINS`) and names the object for the
//! loader (`NETFWD_DATAPATH_HASH`: programs pinned from another object are
//! not reused).

use std::{fs, path::Path, process::Command};

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let root_dir = Path::new(&manifest_dir)
        .parent()
        .context("netfwd has no parent directory")?
        .join("netfwd-ebpf");
    let toolchain = pinned_toolchain(&root_dir.join("rust-toolchain.toml"))?;
    let root_dir = root_dir.to_str().context("netfwd-ebpf path is not UTF-8")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "netfwd-ebpf",
            root_dir,
            no_default_features: true,
            features: if std::env::var_os("CARGO_FEATURE_DATAPATH_MONITOR").is_some() {
                &["monitor"]
            } else {
                &[]
            },
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )?;
    let out_dir = std::env::var("OUT_DIR").context("OUT_DIR")?;
    let object = Path::new(&out_dir).join("netfwd");
    let object = fs::read(&object).with_context(|| format!("reading {}", object.display()))?;
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    // One variable a line of `--version`: a value cannot hold a newline.
    println!(
        "cargo:rustc-env=NETFWD_COMMIT={}",
        commit(Path::new(&manifest_dir))
    );
    let hash = fnv1a(&object);
    println!("cargo:rustc-env=NETFWD_DATAPATH_HASH={hash:016x}");
    println!(
        "cargo:rustc-env=NETFWD_DATAPATH={hash:016x} ({} bytes)",
        object.len()
    );
    println!(
        "cargo:rustc-env=NETFWD_TOOLCHAINS={}; eBPF: {toolchain}",
        command_line(&rustc, &["--version"]).unwrap_or_else(|| "rustc unknown".to_owned())
    );
    Ok(())
}

/// The commit netfwd is built from; "unknown" outside a git checkout (a
/// source tarball).
fn commit(dir: &Path) -> String {
    let Some(hash) = command_line_in(dir, "git", &["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_owned();
    };
    // Rebuilt when HEAD moves: a checkout (HEAD itself) or a commit (the
    // branch it names).
    let mut watched = vec!["HEAD".to_owned()];
    watched.extend(command_line_in(dir, "git", &["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        // A packed ref has no file of its own: watching a missing file would
        // rebuild every time.
        if let Some(path) = command_line_in(dir, "git", &["rev-parse", "--git-path", &name])
            .map(|p| dir.join(p))
            .filter(|p| p.exists())
        {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    hash
}

/// The first line `program args` prints, if it runs and succeeds.
fn command_line(program: &str, args: &[&str]) -> Option<String> {
    command_line_in(Path::new("."), program, args)
}

fn command_line_in(dir: &Path, program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.lines().next().unwrap_or("").trim().to_owned())
}

/// FNV-1a of the datapath object: tells two builds of it apart in
/// `--version` (not a security hash).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The eBPF toolchain's channel as netfwd-ebpf/rust-toolchain.toml pins it
/// (a dated nightly whose LLVM matches bpf-linker's; never the floating one).
fn pinned_toolchain(file: &Path) -> anyhow::Result<String> {
    println!("cargo:rerun-if-changed={}", file.display());
    let text = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let doc: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", file.display()))?;
    doc.get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(toml::Value::as_str)
        .map(String::from)
        .with_context(|| format!("{}: no toolchain.channel", file.display()))
}
