//! Network namespaces by name: their paths, whether they exist, entering
//! one from a thread, and a namespace that is deleted on drop.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use netfwd::netns::NETNS_RUN_DIR;
use nix::sched::{CloneFlags, setns};

use crate::process::{describe, tool, tool_ok};

/// `/run/netns/<ns>`.
pub fn netns_path(ns: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(ns)
}

/// Names of the namespaces `ip netns list` shows.
pub fn netns_list() -> Vec<String> {
    tool_ok("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Whether `ip netns` knows namespace `ns`.
pub fn netns_exists(ns: &str) -> bool {
    netns_list().iter().any(|n| n == ns)
}

/// Deletes namespace `ns` if it exists; reports (does not panic) on failure.
pub(crate) fn delete_netns_quietly(ns: &str) {
    let path = netns_path(ns);
    if std::fs::symlink_metadata(&path).is_err() {
        return;
    }
    let out = tool("ip", &["netns", "del", ns]);
    if !out.status.success() {
        eprintln!("cleanup: {}", describe(&format!("ip netns del {ns}"), &out));
    }
}

/// A network namespace made with `ip netns add`, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// `ip netns add <name>` and `ip -n <name> link set lo up`.
    pub fn create(name: &str) -> Netns {
        assert!(
            !netns_exists(name),
            "namespace {name} exists already: refusing to adopt it"
        );
        tool_ok("ip", &["netns", "add", name]);
        let ns = Netns {
            name: name.to_owned(),
        };
        tool_ok("ip", &["-n", name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        netns_path(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_netns_quietly(&self.name);
    }
}

/// Moves the calling thread into network namespace `ns`.
pub fn enter_netns(ns: &str) -> Result<()> {
    let path = netns_path(ns);
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns into {}", path.display()))
}

/// A `sleep` in a network namespace of its own (`unshare --net`), as a
/// container's process; killed and reaped on drop, its namespace with it.
pub struct Unshared(std::process::Child);

impl Unshared {
    /// Starts it and returns once its namespace is its own.
    pub fn start() -> Unshared {
        // Guarded at once: dropping it kills and reaps the process.
        let p = Unshared(
            std::process::Command::new("unshare")
                .args(["--net", "sleep", "120"])
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        crate::poll(
            "unshare --net taking effect",
            std::time::Duration::from_secs(5),
            || {
                std::fs::read_link(p.netns_path())
                    .is_ok_and(|ns| ns != own)
                    .then_some(())
            },
        );
        p
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }

    pub fn pid(&self) -> String {
        self.id().to_string()
    }

    pub fn netns_path(&self) -> String {
        format!("/proc/{}/ns/net", self.id())
    }
}

impl Drop for Unshared {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
