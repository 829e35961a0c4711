//! What netfwd has made, written down before it is made, so `down` can remove
//! it even after a crash half-way through `up`. One JSON file per network under
//! /run/netfwd, in a versioned format of its own (`file`); a lock on that
//! directory serialises `up` and `down`.

mod file;

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    net::Ipv4Addr,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use nix::{
    errno::Errno,
    fcntl::{Flock, FlockArg},
};
use serde::{Deserialize, Serialize};

use crate::{
    config::{self, Network, Published},
    name::NetworkName,
    netns::{self, Here, NetnsId},
    private_dir,
};

pub const STATE_DIR: &str = "/run/netfwd";

/// An attached endpoint, as recorded in the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub ip: Ipv4Addr,
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
        remove_if_present(&path(name))?;
        remove_lock_file(&network_lock_path(name))
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
    let dir = private_dir::ensure(Path::new(STATE_DIR), &[])?;
    let dir = File::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let lock = Flock::lock(dir, FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("locking {STATE_DIR}"))?;
    Ok(StateLock { _lock: lock })
}

/// Held across a multi-step change of one network that must not interleave
/// with another of the same network (a CNI ADD: IPAM lease, `up`, attach,
/// published ports), while other networks go on.
///
/// Its file may be unlinked (by `down`) while a process waits for it; that
/// process then holds a lock on a file nobody else will open. So a lock
/// counts only once the path still names the very file locked, else it is
/// taken again; and the file is only ever unlinked by someone holding it.
pub struct NetworkLock {
    _lock: Flock<File>,
}

fn network_lock_path(name: &NetworkName) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("{name}.lock"))
}

pub fn network_lock(name: &NetworkName) -> Result<NetworkLock> {
    private_dir::ensure(Path::new(STATE_DIR), &[])?;
    lock_file(&network_lock_path(name))
}

fn lock_file(path: &Path) -> Result<NetworkLock> {
    loop {
        let file = open_lock_file(path, true)?
            .with_context(|| format!("{} vanished as it was made", path.display()))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| errno)
            .with_context(|| format!("locking {}", path.display()))?;
        if names_locked_file(path, &lock)? {
            return Ok(NetworkLock { _lock: lock });
        }
    }
}

/// Unlinks the lock file at `path` if nobody holds it; a held one stays
/// (its holder or a later `down` removes it). Ok if absent.
fn remove_lock_file(path: &Path) -> Result<()> {
    let Some(file) = open_lock_file(path, false)? else {
        return Ok(());
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            if names_locked_file(path, &lock)? {
                remove_if_present(path)?;
            }
            Ok(())
        }
        Err((_, Errno::EWOULDBLOCK)) => Ok(()),
        Err((_, errno)) => Err(errno).with_context(|| format!("locking {}", path.display())),
    }
}

/// Opens (or with `create`, makes) a lock file, never through a symbolic
/// link; `None` if absent.
fn open_lock_file(path: &Path, create: bool) -> Result<Option<File>> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

/// Whether `path` still names the file `lock` holds (not unlinked, not
/// replaced).
fn names_locked_file(path: &Path, lock: &Flock<File>) -> Result<bool> {
    let held = lock
        .metadata()
        .with_context(|| format!("inspecting {}", path.display()))?;
    match fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("inspecting {}", path.display())),
    }
}

/// Writes `text` to `path` atomically (temp file + rename), owner-only: a
/// crash leaves the old file or the new one, never half of one. The temp
/// file is made afresh (`O_EXCL`): whatever was left at its name, a symbolic
/// link included, is unlinked, never written through.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
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
    use std::{sync::mpsc, thread, time::Duration};

    use super::*;
    use crate::private_dir::scratch;

    /// Whether someone holds the lock at `path` now.
    fn held(path: &Path) -> bool {
        let file = File::open(path).unwrap();
        Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err()
    }

    #[test]
    fn a_waiter_whose_lock_file_was_unlinked_locks_the_new_one() {
        let dir = scratch("lock-unlinked");
        let path = dir.join("net.lock");
        let first = lock_file(&path).unwrap();
        let (got, took) = mpsc::channel();
        let waiter = {
            let path = path.clone();
            thread::spawn(move || {
                let lock = lock_file(&path).unwrap();
                got.send(()).unwrap();
                // Hold it until the main thread has looked.
                thread::sleep(Duration::from_millis(500));
                drop(lock);
            })
        };
        // The waiter has opened the file and blocks on it; the holder unlinks
        // it (as `down` once did) and lets go.
        thread::sleep(Duration::from_millis(200));
        fs::remove_file(&path).unwrap();
        drop(first);
        took.recv_timeout(Duration::from_secs(5)).unwrap();
        // What the waiter holds is what the path names: a third process
        // opening the path must find it locked.
        assert!(path.exists(), "the waiter holds an unlinked file");
        assert!(held(&path), "two holders of one network's lock");
        waiter.join().unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_held_lock_file_is_not_removed() {
        let dir = scratch("lock-held");
        let path = dir.join("net.lock");
        let lock = lock_file(&path).unwrap();
        remove_lock_file(&path).unwrap();
        assert!(path.exists() && held(&path));
        drop(lock);
        remove_lock_file(&path).unwrap();
        assert!(!path.exists());
        remove_lock_file(&path).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_symlinked_lock_file_is_not_followed() {
        let dir = scratch("lock-symlink");
        let decoy = dir.join("decoy");
        fs::write(&decoy, "keep").unwrap();
        let path = dir.join("net.lock");
        std::os::unix::fs::symlink(&decoy, &path).unwrap();
        assert!(lock_file(&path).is_err());
        assert_eq!(fs::read_to_string(&decoy).unwrap(), "keep");
        fs::remove_dir_all(dir).unwrap();
    }
}
