//! What netfwd has made, written down before it is made, so `down` can remove
//! it even after a crash half-way through `up`. One JSON file per network under
//! /run/netfwd; a lock on that directory serialises `up` and `down`.

use std::{
    fs::{self, File},
    io::Write as _,
    net::Ipv4Addr,
    path::PathBuf,
};

use anyhow::{Context as _, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::{
    config::{Network, Published},
    netns::NetnsId,
    network::Attachment,
};

pub const STATE_DIR: &str = "/run/netfwd";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    /// The network as last applied (or being applied).
    pub network: Network,
    /// The namespace the network's host side lives in.
    pub host_netns: NetnsId,
    /// Namespaces netfwd created (and so deletes); pre-existing ones are left.
    pub created_netns: Vec<String>,
    /// Endpoints added with `netfwd attach`, kept by `up`.
    #[serde(default)]
    pub attached: Vec<Attachment>,
    /// Ports published with `netfwd publish`, kept by `up` (the config's own
    /// win over them).
    #[serde(default)]
    pub published: Vec<Published>,
}

impl State {
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

fn path(name: &str) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("{name}.json"))
}

impl State {
    pub fn load(name: &str) -> Result<Option<State>> {
        let path = path(name);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("parsing {}", path.display()))
    }

    /// Every network netfwd knows of on this machine, in any namespace.
    pub fn all() -> Result<Vec<State>> {
        let entries = match fs::read_dir(STATE_DIR) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("listing {STATE_DIR}")),
        };
        let mut states = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {STATE_DIR}"))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Some(state) = State::load(name)? {
                states.push(state);
            }
        }
        states.sort_by(|a, b| a.network.name.cmp(&b.network.name));
        Ok(states)
    }

    /// Writes the state atomically (temp file + rename): a crash leaves the
    /// old state or the new one, never half of one.
    pub fn save(&self) -> Result<()> {
        fs::create_dir_all(STATE_DIR).with_context(|| format!("creating {STATE_DIR}"))?;
        let path = path(&self.network.name);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).context("serialising state")?;
        let mut file = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))
    }

    /// Removes the state and the network's lock file.
    pub fn remove(name: &str) -> Result<()> {
        remove_if_present(&path(name))?;
        remove_if_present(&network_lock_path(name))
    }
}

/// Held while a network is changed. It locks the state directory itself, so
/// changes to all networks are serialised (which keeps the cross-network
/// checks, overlapping subnets and shared namespaces, free of races) and no
/// lock file is left behind.
pub struct StateLock {
    _lock: Flock<File>,
}

pub fn lock() -> Result<StateLock> {
    fs::create_dir_all(STATE_DIR).with_context(|| format!("creating {STATE_DIR}"))?;
    let dir = File::open(STATE_DIR).with_context(|| format!("opening {STATE_DIR}"))?;
    let lock = Flock::lock(dir, FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("locking {STATE_DIR}"))?;
    Ok(StateLock { _lock: lock })
}

/// Held across a multi-step change of one network that must not interleave
/// with another of the same network (a CNI ADD: IPAM lease, `up`, attach,
/// published ports), while other networks go on. `down` removes its file
/// with the state.
pub struct NetworkLock {
    _lock: Flock<File>,
}

fn network_lock_path(name: &str) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("{name}.lock"))
}

pub fn network_lock(name: &str) -> Result<NetworkLock> {
    fs::create_dir_all(STATE_DIR).with_context(|| format!("creating {STATE_DIR}"))?;
    let path = network_lock_path(name);
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(NetworkLock { _lock: lock })
}

fn remove_if_present(path: &std::path::Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}
