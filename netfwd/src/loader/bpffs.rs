//! The bpffs that holds the pins.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use nix::{
    mount::{MsFlags, mount},
    sys::statfs::{BPF_FS_MAGIC, statfs},
};

const BPFFS: &str = "/sys/fs/bpf";

/// Makes sure a bpffs is mounted at /sys/fs/bpf, mounting one if not. Refuses
/// under a private mount namespace (`ip netns exec` remounts /sys): pins made
/// there would vanish with it.
pub fn ensure_bpffs() -> Result<()> {
    let path = Path::new(BPFFS);
    if is_bpffs(path)? {
        return Ok(());
    }
    if in_init_mount_namespace() == Some(false) {
        bail!(
            "{BPFFS} is not a bpffs in this mount namespace (started under `ip netns exec`?); \
             run netfwd with `--netns NAME` or `nsenter --net=/run/netns/NAME` instead"
        );
    }
    mount(
        Some("bpf"),
        BPFFS,
        Some("bpf"),
        MsFlags::empty(),
        None::<&str>,
    )
    .with_context(|| format!("mounting bpffs at {BPFFS}"))
}

fn is_bpffs(path: &Path) -> Result<bool> {
    let fs = statfs(path).with_context(|| format!("statfs {}", path.display()))?;
    Ok(fs.filesystem_type() == BPF_FS_MAGIC)
}

/// Whether we share PID 1's mount namespace; None where that cannot be read
/// (some sandboxes deny it even to root), and then the mount goes ahead.
fn in_init_mount_namespace() -> Option<bool> {
    let ours = std::fs::read_link("/proc/self/ns/mnt").ok()?;
    let init = std::fs::read_link("/proc/1/ns/mnt").ok()?;
    Some(ours == init)
}
