//! Network namespaces, named the way `ip netns` names them: a bind mount of
//! the namespace file at `/run/netns/<name>`, under a shared mount so other
//! mount namespaces see it. Namespaces `ip netns add` made work here and the
//! other way round.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::{
        fd::{AsFd as _, AsRawFd as _, OwnedFd},
        unix::fs::MetadataExt as _,
    },
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow, bail};
use nix::{
    errno::Errno,
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, setns, unshare},
    sys::socket::{AddressFamily, SockFlag, SockType, socket},
    sys::statfs::{NSFS_MAGIC, statfs},
};
use serde::{Deserialize, Serialize};

/// Where `ip netns` keeps its names.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The namespace this thread is in.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Identity of a network namespace (device and inode of its nsfs file), the
/// same however the namespace was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetnsId {
    pub dev: u64,
    pub ino: u64,
}

pub fn current_id() -> Result<NetnsId> {
    id_of(Path::new(THREAD_NETNS))
}

/// The identity of the namespace at `path` (a name's bind mount, or
/// `/proc/PID/ns/net`).
pub fn id_of(path: &Path) -> Result<NetnsId> {
    let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(NetnsId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// The namespace the calling thread is in, as a state records one.
#[derive(Clone, Copy, Debug)]
pub struct Here {
    pub id: NetnsId,
    pub cookie: u64,
}

impl Here {
    pub fn current() -> Result<Here> {
        Ok(Here {
            id: current_id()?,
            cookie: cookie()?,
        })
    }

    /// Whether the namespace recorded as `id` and `cookie` is this one. The
    /// inode number alone is not enough: the kernel gives a gone
    /// namespace's to the next one made. States written before cookies were
    /// recorded match by `id`.
    pub fn is(&self, id: NetnsId, cookie: Option<u64>) -> bool {
        self.id == id && cookie.is_none_or(|c| c == self.cookie)
    }
}

/// Whether the namespace recorded as `id` (and `cookie`, when recorded)
/// still exists, as far as can be seen from here.
///
/// A namespace lives while something holds it: a process (any thread) in
/// it, a bind mount of it (`ip netns` names, runtimes' own directories), an
/// open descriptor. This looks at the first two: the calling thread's
/// namespace, every nsfs mount of this mount namespace
/// (/proc/self/mountinfo) and every thread's in /proc. A namespace held
/// only by a descriptor, or mounted only in another mount namespace with no
/// process in it, is taken for gone. Two live namespaces never share an
/// inode number, but a gone one's is reused: the first of them that opens
/// is entered and its cookie (never reused) decides.
pub fn is_alive(id: NetnsId, cookie: Option<u64>) -> Result<bool> {
    for path in paths_to(id)? {
        let Some(wanted) = cookie else {
            return Ok(true);
        };
        // One that vanished while we looked is not it; try the next.
        if let Ok(found) = cookie_of(&path) {
            return Ok(found == wanted);
        }
    }
    Ok(false)
}

/// Paths that open, now, a namespace whose device and inode are `id`.
fn paths_to(id: NetnsId) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    if current_id()? == id {
        paths.push(PathBuf::from(THREAD_NETNS));
    }
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    paths.extend(
        mountinfo
            .lines()
            .filter_map(mounted_netns)
            .filter(|(mounted, _)| *mounted == id)
            .map(|(_, path)| path),
    );
    let procs = fs::read_dir("/proc").context("listing /proc")?;
    for proc in procs.flatten() {
        // Processes and threads come and go while we look: what vanished
        // held nothing.
        let Ok(tasks) = fs::read_dir(proc.path().join("task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let path = task.path().join("ns/net");
            if id_of(&path).is_ok_and(|found| found == id) {
                paths.push(path);
            }
        }
    }
    Ok(paths)
}

/// The network namespace a mountinfo line mounts, and where:
/// `44 43 0:4 net:[4026532252] /run/netns/x rw shared:2 - nsfs nsfs rw`.
fn mounted_netns(line: &str) -> Option<(NetnsId, PathBuf)> {
    let mut fields = line.split(' ');
    let dev = fields.nth(2)?;
    let ino = fields.next()?.strip_prefix("net:[")?.strip_suffix(']')?;
    let mount_point = fields.next()?;
    let (major, minor) = dev.split_once(':')?;
    let id = NetnsId {
        dev: nix::sys::stat::makedev(major.parse().ok()?, minor.parse().ok()?),
        ino: ino.parse().ok()?,
    };
    Some((id, PathBuf::from(unescape_mount_point(mount_point))))
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mount_point(escaped: &str) -> String {
    escaped
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The kernel's cookie for the namespace the calling thread is in (what
/// `bpf_get_netns_cookie` returns for sockets there).
pub fn cookie() -> Result<u64> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("opening a socket")?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as nix::libc::socklen_t;
    // SAFETY: a valid socket fd, and a u64 buffer of the length passed.
    let rc = unsafe {
        nix::libc::getsockopt(
            sock.as_raw_fd(),
            nix::libc::SOL_SOCKET,
            nix::libc::SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("getsockopt(SO_NETNS_COOKIE)");
    }
    Ok(cookie)
}

/// The cookie of the namespace at `path`.
pub fn cookie_of(path: &Path) -> Result<u64> {
    within(path, cookie)?
}

/// Runs `f` with the calling thread in the namespace at `path`, then steps
/// back. Sockets `f` opens stay in that namespace; nothing else runs on the
/// thread meanwhile.
pub fn within<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T> {
    let home = open(Path::new(THREAD_NETNS))?;
    let target = open(path)?;
    setns(target.as_fd(), CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering netns {}", path.display()))?;
    let made = f();
    if let Err(e) = setns(home.as_fd(), CloneFlags::CLONE_NEWNET) {
        // Carrying on in the wrong namespace would change the wrong
        // devices; nothing sane is left to do.
        eprintln!("netfwd: fatal: cannot return to the original netns: {e}");
        std::process::abort();
    }
    Ok(made)
}

/// Whether `path` is a namespace file (nsfs). Absent is `Ok(false)`.
pub fn is_netns_path(path: &Path) -> Result<bool> {
    match statfs(path) {
        Ok(fs) => Ok(fs.filesystem_type() == NSFS_MAGIC),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(anyhow!("{}: {e}", path.display())),
    }
}

/// Whether namespace `name` exists. A file of that name that is not a
/// namespace (a stale, unmounted name) is an error, never silently reused.
pub fn exists(name: &str) -> Result<bool> {
    let p = path(name);
    if is_netns_path(&p)? {
        return Ok(true);
    }
    match fs::symlink_metadata(&p) {
        Ok(_) => bail!("{} exists but is not a network namespace", p.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("inspecting {}", p.display())),
    }
}

pub fn open(path: &Path) -> Result<OwnedFd> {
    let file = File::open(path).with_context(|| format!("opening netns {}", path.display()))?;
    Ok(OwnedFd::from(file))
}

/// Moves the calling thread into the namespace at `path`.
pub fn enter(path: &Path) -> Result<()> {
    let fd = open(path)?;
    setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering netns {}", path.display()))
}

/// Creates namespace `name` (its `lo` still down: bringing it up is
/// netlink's, `netlink::create_netns`). On failure nothing of it is
/// left.
pub fn create(name: &str) -> Result<()> {
    let p = path(name);
    ensure_run_dir_shared()?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
        .with_context(|| format!("creating {}", p.display()))?;
    let made = bind_new_netns(&p);
    if made.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = delete(name);
    }
    made
}

fn bind_new_netns(p: &Path) -> Result<()> {
    // unshare() moves only the calling thread, so a short-lived thread makes
    // the namespace and pins it with a bind mount before it exits.
    let target = p.to_owned();
    std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
        mount(
            Some(THREAD_NETNS),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting a new netns on {}", target.display()))
    })
    .join()
    .map_err(|_| anyhow!("netns creation thread panicked"))?
}

/// `/run/netns` must be a shared mount point so namespaces named in it show
/// in every mount namespace that shares it; this is what `ip netns` does.
fn ensure_run_dir_shared() -> Result<()> {
    fs::create_dir_all(NETNS_RUN_DIR).with_context(|| format!("creating {NETNS_RUN_DIR}"))?;
    let make_shared = || {
        mount(
            None::<&str>,
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Ok(()) => Ok(()),
        // Not yet a mount point: bind it onto itself first.
        Err(Errno::EINVAL) => {
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .with_context(|| format!("bind-mounting {NETNS_RUN_DIR} on itself"))?;
            make_shared().with_context(|| format!("making {NETNS_RUN_DIR} shared"))
        }
        Err(e) => Err(e).with_context(|| format!("making {NETNS_RUN_DIR} shared")),
    }
}

/// Removes namespace `name`'s name; the namespace itself goes when its last
/// user does. Absent is fine.
pub fn delete(name: &str) -> Result<()> {
    let p = path(name);
    match umount2(&p, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).with_context(|| format!("unmounting {}", p.display())),
    }
    match fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mounted_netns_is_read_from_mountinfo() {
        let line = "44 43 0:4 net:[4026532252] /run/netns/x\\040y rw shared:2 - nsfs nsfs rw";
        assert_eq!(
            mounted_netns(line),
            Some((
                NetnsId {
                    dev: nix::sys::stat::makedev(0, 4),
                    ino: 4026532252
                },
                PathBuf::from("/run/netns/x y")
            ))
        );
        let other = "45 43 0:4 mnt:[4026531841] /run/x rw - nsfs nsfs rw";
        assert_eq!(mounted_netns(other), None);
        assert_eq!(mounted_netns("25 1 8:1 / / rw - ext4 /dev/sda1 rw"), None);
    }

    #[test]
    fn our_own_namespace_is_alive_and_a_wrong_cookie_is_not() {
        let here = Here::current().unwrap();
        assert!(is_alive(here.id, Some(here.cookie)).unwrap());
        assert!(is_alive(here.id, None).unwrap());
        assert!(!is_alive(here.id, Some(here.cookie + 1_000_000)).unwrap());
    }
}
