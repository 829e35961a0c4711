//! The locks that serialise changes: one on the state directory for every
//! change of any network, and one file per network for a multi-step change
//! of that network alone (a CNI ADD).

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use nix::{
    errno::Errno,
    fcntl::{Flock, FlockArg},
};

use super::{STATE_DIR, remove_if_present};
use crate::{name::NetworkName, private_dir};

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

/// Unlinks network `name`'s lock file unless someone holds it.
pub(super) fn remove_network_lock(name: &NetworkName) -> Result<()> {
    remove_lock_file(&network_lock_path(name))
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

#[cfg(test)]
mod tests {
    use std::{
        sync::mpsc,
        thread,
        time::{Duration, Instant},
    };

    use super::*;
    use crate::private_dir::scratch;

    /// Whether someone holds the lock at `path` now.
    fn held(path: &Path) -> bool {
        let file = File::open(path).unwrap();
        Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err()
    }

    /// Waits until some thread is blocked on a lock of the file at `path`:
    /// the kernel lists a waiter in /proc/locks with `->`, by inode.
    fn wait_for_a_blocked_waiter(path: &Path) {
        let inode = format!(":{}", fs::metadata(path).unwrap().ino());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let locks = fs::read_to_string("/proc/locks").unwrap();
            let blocked = locks.lines().any(|l| {
                l.contains("->") && l.split_whitespace().any(|field| field.ends_with(&inode))
            });
            if blocked {
                return;
            }
            assert!(Instant::now() < deadline, "no waiter blocked:\n{locks}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_waiter_whose_lock_file_was_unlinked_locks_the_new_one() {
        let dir = scratch("lock-unlinked");
        let path = dir.join("net.lock");
        let first = lock_file(&path).unwrap();
        let (got, took) = mpsc::channel();
        let (looked, done_looking) = mpsc::channel::<()>();
        let waiter = {
            let path = path.clone();
            thread::spawn(move || {
                let lock = lock_file(&path).unwrap();
                got.send(()).unwrap();
                // Hold it until the main thread has looked.
                let _ = done_looking.recv();
                drop(lock);
            })
        };
        // The waiter has opened the file and blocks on it; the holder unlinks
        // it (as `down` once did) and lets go.
        wait_for_a_blocked_waiter(&path);
        fs::remove_file(&path).unwrap();
        drop(first);
        took.recv_timeout(Duration::from_secs(5)).unwrap();
        // What the waiter holds is what the path names: a third process
        // opening the path must find it locked.
        assert!(path.exists(), "the waiter holds an unlinked file");
        assert!(held(&path), "two holders of one network's lock");
        looked.send(()).unwrap();
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
