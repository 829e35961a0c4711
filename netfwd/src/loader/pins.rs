//! Where a network's datapath is pinned under `/sys/fs/bpf/netfwd/`, and
//! taking pins away: its maps and links in `<network>/` (TCX links in
//! `links/`, XDP links in `xdp-links/`, its verified programs in
//! `programs/<datapath hash>/`), the shared NAT table of each uplink in
//! `uplink-<netns cookie>-<uplink>/`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use netfwd_common::names;

use super::attach::{self, AttachedProgram};
use crate::{name::NetworkName, netlink::Link, private_dir};

/// Where a network's maps and links are pinned.
pub(super) fn pin_dir(network: &NetworkName) -> PathBuf {
    Path::new(names::PIN_ROOT).join(network.as_str())
}

/// Where the network's loaded programs are pinned, one directory per build
/// of the datapath: a pin of another build's program is never taken for
/// this build's.
pub(super) const PROGRAMS_DIR: &str = "programs";

/// The hash of the compiled datapath (build.rs).
const DATAPATH_HASH: &str = env!("NETFWD_DATAPATH_HASH");

/// Where program `name` of this build is pinned, in pin directory `dir`.
pub(super) fn program_pin(dir: &Path, name: &str) -> PathBuf {
    dir.join(PROGRAMS_DIR).join(DATAPATH_HASH).join(name)
}

/// Unpins the programs of other builds in pin directory `dir` (an upgrade
/// replaces them in every link it attaches; those still attached stay
/// loaded by their links).
pub(super) fn drop_programs_of_other_builds(dir: &Path) -> Result<()> {
    let programs = dir.join(PROGRAMS_DIR);
    let entries = match std::fs::read_dir(&programs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", programs.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", programs.display()))?;
        if entry.file_name() != DATAPATH_HASH {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn links_dir(network: &NetworkName) -> PathBuf {
    pin_dir(network).join(names::LINKS_DIR)
}

fn xdp_links_dir(network: &NetworkName) -> PathBuf {
    pin_dir(network).join(names::XDP_LINKS_DIR)
}

/// Where network `name`'s datapath is pinned, as `status` shows it.
pub fn pins_shown(name: &NetworkName) -> String {
    pin_dir(name).display().to_string()
}

/// Where the NAT table of uplink `uplink` of the namespace with cookie
/// `netns_cookie` (never reused, unlike its inode number) is pinned. One
/// table per uplink, shared by every network masqueraded behind it: an
/// uplink port is then reserved once for the uplink (a `BPF_NOEXIST`
/// insert), never by two networks at once, and any network's uplink program
/// finds any flow's ingress entry (it passes on to the next program an
/// ingress packet whose endpoint is not its own). The `-` keeps the name
/// apart from network names (`[a-z0-9_]`); bpffs refuses dots in names, so
/// an interface name's other bytes are written `%xx`.
pub(super) fn uplink_nat_dir(netns_cookie: u64, uplink: &str) -> PathBuf {
    let mut name = format!("{UPLINK_NAT_PREFIX}{netns_cookie}-");
    for b in uplink.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02x}"));
        }
    }
    Path::new(names::PIN_ROOT).join(name)
}

const UPLINK_NAT_PREFIX: &str = "uplink-";

/// Where the NAT table of `uplink` in the namespace with cookie
/// `netns_cookie` is pinned, as `status` shows it.
pub fn uplink_nat_shown(netns_cookie: u64, uplink: &str) -> String {
    uplink_nat_dir(netns_cookie, uplink).display().to_string()
}

/// The shared NAT tables pinned now, by directory name.
fn uplink_nat_dirs() -> Result<Vec<PathBuf>> {
    let root = Path::new(names::PIN_ROOT);
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", root.display())),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", root.display()))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(UPLINK_NAT_PREFIX)
        {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Unpins a shared NAT table no network uses any more (its flows go with it).
fn remove_uplink_nat(dir: &Path) -> Result<()> {
    let is_ours = dir.parent() == Some(Path::new(names::PIN_ROOT))
        && dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(UPLINK_NAT_PREFIX));
    if !is_ours {
        anyhow::bail!("{} is not a shared NAT table's directory", dir.display());
    }
    private_dir::remove_tree(dir)
}

/// Unpins the shared NAT tables of uplinks no network in `in_use` (by the
/// cookie of its namespace and its uplink) is behind any more.
pub fn prune_uplink_nat(in_use: impl IntoIterator<Item = (u64, String)>) -> Result<()> {
    let used: Vec<PathBuf> = in_use
        .into_iter()
        .map(|(cookie, uplink)| uplink_nat_dir(cookie, &uplink))
        .collect();
    for dir in uplink_nat_dirs()? {
        if !used.contains(&dir) {
            remove_uplink_nat(&dir)?;
        }
    }
    Ok(())
}

/// The program attached to `ifname` through the network's pinned link, if any.
pub fn attached(network: &NetworkName, ifname: &str) -> Result<Option<AttachedProgram>> {
    match attach::open_pinned(&links_dir(network).join(ifname))? {
        Some(link) => attach::attached_program(ifname, &link),
        None => Ok(None),
    }
}

/// Whether our XDP program runs on `link` (through the network's pinned
/// link).
pub fn xdp_attached(network: &NetworkName, link: &Link) -> Result<bool> {
    match attach::open_pinned(&xdp_links_dir(network).join(&link.name))? {
        Some(pinned) => attach::xdp_link_running(&pinned, link.xdp_prog_id),
        None => Ok(false),
    }
}

/// Unpins the links (TC and XDP) of an interface, detaching the programs if
/// the interface still exists. Ok if there were none.
pub fn unpin_link(network: &NetworkName, ifname: &str) -> Result<()> {
    remove_file_if_exists(&links_dir(network).join(ifname))?;
    unpin_xdp_link(network, ifname)
}

/// Unpins the XDP link of an interface (back to TC alone there).
pub fn unpin_xdp_link(network: &NetworkName, ifname: &str) -> Result<()> {
    remove_file_if_exists(&xdp_links_dir(network).join(ifname))
}

/// Detaches the socket hooks (the network publishes nothing any more).
pub fn unpin_socket_hooks(network: &NetworkName) -> Result<()> {
    for (_, link) in super::SOCKET_HOOKS {
        remove_file_if_exists(&links_dir(network).join(link))?;
    }
    Ok(())
}

/// Names of the interfaces that have a pinned link (TC or XDP). The socket
/// hooks' links, beside them in `links/`, are no interface's: `up` would
/// otherwise take them for a stale interface's and unpin them, leaving the
/// host's connections to published ports untranslated until it attached
/// them again.
pub fn pinned_links(network: &NetworkName) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for dir in [links_dir(network), xdp_links_dir(network)] {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for e in entries {
            let name = e
                .with_context(|| format!("listing {}", dir.display()))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            let socket_hook = super::SOCKET_HOOKS.iter().any(|(_, link)| *link == name);
            if !socket_hook && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// Removes every pin of a network: links (detaching programs), maps (freed once
/// no program holds them), the directory. Ok if nothing was there. The pin
/// root and the network's directory must be directories of ours, not
/// symbolic links.
pub fn remove_pins(network: &NetworkName) -> Result<()> {
    match private_dir::existing(Path::new(names::PIN_ROOT), &[network.as_str()])? {
        Some(dir) => private_dir::remove_tree(&dir),
        None => Ok(()),
    }
}

pub(super) fn remove_file_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}
