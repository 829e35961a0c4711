//! Builds the eBPF object (netfwd-ebpf) with the nightly toolchain and
//! bpf-linker, and leaves it in OUT_DIR for `include_bytes_aligned!`.

use std::path::Path;

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let root_dir = Path::new(&manifest_dir)
        .parent()
        .context("netfwd has no parent directory")?
        .join("netfwd-ebpf");
    let root_dir = root_dir.to_str().context("netfwd-ebpf path is not UTF-8")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "netfwd-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
