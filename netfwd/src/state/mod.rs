//! What netfwd has made, written down before it is made, so `down` can remove
//! it even after a crash half-way through `up`. One JSON file per network under
//! /run/netfwd, in a versioned format of its own (`file`); `lock` serialises
//! the changes.

mod file;
mod lock;

use std::{
    collections::HashSet,
    fs::{self, OpenOptions},
    io::{self, Write as _},
    net::{Ipv4Addr, Ipv6Addr},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::{
    config::{self, Endpoint, Network, Published, Slot},
    name::NetworkName,
    netns::{self, Here, NetnsId},
    private_dir,
};

pub use lock::{NetworkLock, StateLock, lock, network_lock};

pub const STATE_DIR: &str = "/run/netfwd";

/// An attached endpoint, as recorded in the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub ip: Ipv4Addr,
    /// In a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// Its veth's.
    pub slot: Slot,
    /// The interface's name inside the namespace.
    pub ifname: String,
    /// As given: `/proc/PID/ns/net` or a namespace file.
    pub netns_path: PathBuf,
    pub pid: Option<u32>,
    /// The namespace attached: a PID reused by another process, or a path
    /// mounted over, is not it. None for Docker's endpoints: Docker makes
    /// the namespace only after `Join`, and removes it itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_id: Option<NetnsId>,
    /// Its cookie: unlike the inode number in `netns_id`, never given to a
    /// namespace made later. Absent from attachments of older netfwd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_cookie: Option<u64>,
    /// The CNI runtime's container ID, for endpoints a CNI ADD made (Docker:
    /// the endpoint ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Docker moved the inner end into the namespace itself (`Join`), and
    /// named it: `ifname` is the name netfwd gave it in the host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handed_off: bool,
    /// The MAC address asked for (Docker's `--mac-address`), kept for a
    /// pair made again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<[u8; 6]>,
}

impl Attachment {
    /// Whether the namespace is still there (the process still runs); a
    /// Docker endpoint's is Docker's to judge.
    pub fn present(&self) -> bool {
        self.netns_id.is_none() || self.is_in(&self.netns_path)
    }

    /// Whether the namespace at `path` is the one attached (never for a
    /// Docker endpoint's, which netfwd does not know).
    pub fn is_in(&self, path: &Path) -> bool {
        let Some(netns_id) = self.netns_id else {
            return false;
        };
        netns::is_netns_path(path).unwrap_or(false)
            && netns::id_of(path).is_ok_and(|id| id == netns_id)
            && self
                .netns_cookie
                .is_none_or(|cookie| netns::cookie_of(path).is_ok_and(|found| found == cookie))
    }

    /// Whether a CNI ADD made this endpoint for `container_id`'s `ifname`.
    pub fn is_cni(&self, container_id: &str, ifname: &str) -> bool {
        self.container_id.as_deref() == Some(container_id) && self.ifname == ifname
    }
}

#[derive(Clone, Debug)]
pub struct State {
    /// The network as last applied (or being applied).
    pub network: Network,
    /// The namespace the network's host side lives in.
    pub host_netns: NetnsId,
    /// Its cookie: unlike the inode number in `host_netns`, never given to
    /// another namespace. Absent from states of older netfwd until their
    /// next `up`.
    pub host_netns_cookie: Option<u64>,
    /// Namespaces netfwd created (and so deletes); pre-existing ones are left.
    pub created_netns: Vec<String>,
    /// Endpoints added with `netfwd attach`, kept by `up`.
    pub attached: Vec<Attachment>,
    /// Ports published with `netfwd publish`, kept by `up` (the config's own
    /// win over them).
    pub published: Vec<Published>,
}

impl State {
    /// Config `net` with the slots this state gave its endpoints: an
    /// endpoint recorded (same namespace, same address) keeps its veth; a
    /// new one takes the lowest slot no recorded endpoint holds, so that a
    /// veth of one going (or changing address) is removed, never reused.
    pub fn with_slots_kept(&self, net: &Network) -> Result<Network> {
        let recorded = |ep: &Endpoint| {
            self.network
                .endpoints
                .iter()
                .find(|old| old.netns == ep.netns && old.ip == ep.ip)
                .map(|old| old.slot)
        };
        let kept: Vec<Option<Slot>> = net.endpoints.iter().map(recorded).collect();
        let taken = self.slots_held();
        let mut unused = Slot::unused(&taken);
        let mut net = net.clone();
        for (ep, kept) in net.endpoints.iter_mut().zip(kept) {
            ep.slot = match kept {
                Some(slot) => slot,
                None => unused
                    .next()
                    .context("the network has as many endpoints as it can name")?,
            };
        }
        Ok(net)
    }

    /// The slot for a new endpoint: the lowest nobody holds.
    pub fn unused_slot(&self) -> Result<Slot> {
        Slot::unused(&self.slots_held())
            .next()
            .context("the network has as many endpoints as it can name")
    }

    /// The slots of every recorded endpoint, the config's and the attached.
    fn slots_held(&self) -> HashSet<Slot> {
        self.network
            .endpoints
            .iter()
            .map(|e| e.slot)
            .chain(self.attached.iter().map(|a| a.slot))
            .collect()
    }

    /// Withdraws the run-time published ports whose endpoint is no longer
    /// in the network (detached, its process gone, or dropped from the
    /// config), as Docker withdraws a container's ports with the container:
    /// a later endpoint given the same address must not inherit them. Says
    /// whether any went.
    pub fn withdraw_orphan_ports(&mut self) -> bool {
        let endpoints: Vec<Ipv4Addr> = self
            .network
            .endpoints
            .iter()
            .map(|e| e.ip)
            .chain(self.attached.iter().map(|a| a.ip))
            .collect();
        let before = self.published.len();
        self.published.retain(|p| endpoints.contains(&p.ip));
        self.published.len() != before
    }

    /// Whether the network's host side lives in namespace `here`.
    pub fn lives_in(&self, here: &Here) -> bool {
        here.is(self.host_netns, self.host_netns_cookie)
    }

    /// Whether the network is an orphan: its host namespace is gone (see
    /// [`netns::is_alive`]), and its veths and routes with it.
    pub fn is_orphan(&self) -> Result<bool> {
        Ok(!netns::is_alive(self.host_netns, self.host_netns_cookie)?)
    }

    /// Every published port: the config's, then the run-time ones.
    pub fn all_published(&self) -> Vec<Published> {
        let mut all = self.network.published.clone();
        for p in &self.published {
            if !all
                .iter()
                .any(|c| c.proto == p.proto && c.host_port == p.host_port)
            {
                all.push(*p);
            }
        }
        all
    }
}

fn path(name: &NetworkName) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("{name}.json"))
}

impl State {
    /// The recorded state of network `name`; `None` if there is none. A
    /// state file that is a symbolic link, or that records another name, is
    /// an error (never followed, never used).
    pub fn load(name: &NetworkName) -> Result<Option<State>> {
        if private_dir::existing(Path::new(STATE_DIR), &[])?.is_none() {
            return Ok(None);
        }
        let path = path(name);
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                bail!(
                    "{} is a symbolic link; netfwd refuses to follow it",
                    path.display()
                )
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let text =
            io::read_to_string(file).with_context(|| format!("reading {}", path.display()))?;
        let state = file::read(&text).with_context(|| format!("parsing {}", path.display()))?;
        if state.network.name != *name {
            bail!(
                "{} records network {:?}; netfwd does not use it",
                path.display(),
                state.network.name.as_str()
            );
        }
        // Namespace names become paths under /run/netns that `down` unmounts
        // and removes.
        for ns in state
            .created_netns
            .iter()
            .chain(state.network.endpoints.iter().map(|e| &e.netns))
        {
            config::validate_netns_name(&path.display().to_string(), ns)?;
        }
        Ok(Some(state))
    }

    /// The recorded state of network `name`, which must live in this
    /// namespace (for commands that change one network in place).
    pub fn load_own(name: &NetworkName) -> Result<State> {
        let Some(st) = State::load(name)? else {
            return Err(crate::input_error!("--name: no network {name}"));
        };
        if !st.lives_in(&Here::current()?) {
            return Err(crate::input_error!(
                "--name: network {name} lives in another network namespace"
            ));
        }
        Ok(st)
    }

    /// Every network netfwd knows of on this machine, in any namespace. A
    /// state file whose name is no network name, or that cannot be used, is
    /// reported and skipped.
    pub fn all() -> Result<Vec<State>> {
        if private_dir::existing(Path::new(STATE_DIR), &[])?.is_none() {
            return Ok(Vec::new());
        }
        let entries = fs::read_dir(STATE_DIR).with_context(|| format!("listing {STATE_DIR}"))?;
        let mut states = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {STATE_DIR}"))?;
            let file_name = entry.file_name();
            let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let Ok(name) = NetworkName::parse("state file", stem) else {
                log::warn!(
                    "skipping {}: {stem:?} is not a network name",
                    entry.path().display()
                );
                continue;
            };
            match State::load(&name) {
                Ok(Some(state)) => states.push(state),
                Ok(None) => {}
                Err(e) => log::warn!("skipping the state of network {name}: {e:#}"),
            }
        }
        states.sort_by(|a, b| a.network.name.cmp(&b.network.name));
        Ok(states)
    }

    /// Writes the state atomically (see [`write_atomically`]).
    pub fn save(&self) -> Result<()> {
        private_dir::ensure(Path::new(STATE_DIR), &[])?;
        let text = file::write(self).context("serialising state")?;
        write_atomically(&path(&self.network.name), &text)
    }

    /// Removes the state, and the network's lock file unless someone holds
    /// it (see [`NetworkLock`]).
    pub fn remove(name: &NetworkName) -> Result<()> {
        if private_dir::existing(Path::new(STATE_DIR), &[])?.is_none() {
            return Ok(());
        }
        let state = path(name);
        // A save a crash cut short leaves its temp file: gone with the rest.
        remove_if_present(&temp_path(&state))?;
        remove_if_present(&state)?;
        lock::remove_network_lock(name)
    }
}

/// Writes `text` to `path` atomically (temp file + rename), owner-only: a
/// crash leaves the old file or the new one, never half of one. The temp
/// file is made afresh (`O_EXCL`): whatever was left at its name, a symbolic
/// link included, is unlinked, never written through.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = temp_path(path);
    remove_if_present(&tmp)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// Where [`write_atomically`] writes `path`'s next contents first.
fn temp_path(path: &Path) -> PathBuf {
    path.with_extension("json.tmp")
}

pub fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(config: &str) -> State {
        State {
            network: config::parse(config).unwrap(),
            host_netns: NetnsId { dev: 0, ino: 0 },
            host_netns_cookie: None,
            created_netns: Vec::new(),
            attached: Vec::new(),
            published: Vec::new(),
        }
    }

    const NETWORK: &str = "[network]\nname = \"demo\"\nsubnet = \"10.88.0.0/24\"\n";

    /// An endpoint kept keeps its veth; a new one, or one whose address
    /// changed, takes the lowest slot no recorded endpoint holds.
    #[test]
    fn up_keeps_recorded_slots_and_fills_gaps() {
        let mut st = state(&format!(
            "{NETWORK}[[endpoint]]\nnetns = \"a\"\n[[endpoint]]\nnetns = \"b\"\n\
             [[endpoint]]\nnetns = \"c\"\nip = \"10.88.0.9\"\n"
        ));
        let slots = |net: &Network| -> Vec<String> {
            net.endpoints
                .iter()
                .map(|e| net.host_ifname(e.slot))
                .collect()
        };
        assert_eq!(slots(&st.network), ["nfdemo-0", "nfdemo-1", "nfdemo-2"]);
        st.attached.push(Attachment {
            ip: "10.88.0.20".parse().unwrap(),
            ip6: None,
            slot: st.unused_slot().unwrap(),
            ifname: "eth0".into(),
            netns_path: "/proc/1/ns/net".into(),
            pid: Some(1),
            netns_id: None,
            netns_cookie: None,
            container_id: None,
            handed_off: false,
            mac: None,
        });
        assert_eq!(st.network.host_ifname(st.attached[0].slot), "nfdemo-3");

        // `a` goes, `c` moves to another address, `d` is new.
        let config = config::parse(&format!(
            "{NETWORK}[[endpoint]]\nnetns = \"d\"\n[[endpoint]]\nnetns = \"b\"\nip = \"10.88.0.3\"\n\
             [[endpoint]]\nnetns = \"c\"\nip = \"10.88.0.10\"\n"
        ))
        .unwrap();
        assert_eq!(st.network.endpoints[1].ip.to_string(), "10.88.0.3");
        let net = st.with_slots_kept(&config).unwrap();
        assert_eq!(slots(&net), ["nfdemo-4", "nfdemo-1", "nfdemo-5"]);
        // Once applied, the slots of those gone are free again.
        let applied = State {
            network: net,
            ..st.clone()
        };
        assert_eq!(
            applied.unused_slot().unwrap(),
            config::Slot::nth(0).unwrap()
        );
    }
}
