//! Where the host's cgroup v2 hierarchy is: the socket hook for published
//! ports attaches there, so the host's own processes are covered.

use std::{fs, path::PathBuf};

use anyhow::{Context as _, Result};

/// The mount point of the cgroup v2 hierarchy (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on hybrid hosts), if mounted.
pub fn v2_root() -> Result<Option<PathBuf>> {
    const MOUNTINFO: &str = "/proc/self/mountinfo";
    let text = fs::read_to_string(MOUNTINFO).with_context(|| format!("reading {MOUNTINFO}"))?;
    // "... mount_point options - fstype source super_options"
    Ok(text.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let fstype = after.split_whitespace().next()?;
        let mount_point = before.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(mount_point))
    }))
}
