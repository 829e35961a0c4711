//! Builds the eBPF object (netfwd-ebpf) with its pinned nightly and
//! bpf-linker, and leaves it in OUT_DIR for `include_bytes_aligned!`.

use std::{fs, path::Path};

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
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
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
