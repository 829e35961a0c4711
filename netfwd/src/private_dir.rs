//! The directories netfwd keeps its own things in — /run/netfwd (state,
//! locks), /sys/fs/bpf/netfwd (pins) and the per-network directories in
//! them. `down` removes what is in them, so they must be ours: they are made
//! owner-only (0700), never reached through a symbolic link, and refused when
//! someone else owns them or may write to them.

use std::{
    fs::{self, DirBuilder},
    io,
    os::unix::fs::{DirBuilderExt as _, MetadataExt as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

/// Makes `root` and `root/below[0]/below[1]/…` (each missing one owner-only)
/// and checks each is a directory of ours; returns the last.
pub fn ensure(root: &Path, below: &[&str]) -> Result<PathBuf> {
    let mut path = root.to_owned();
    make_or_check(&path)?;
    for part in below {
        path.push(part);
        make_or_check(&path)?;
    }
    Ok(path)
}

/// `root/below…` when it exists, each component checked as [`ensure`] does;
/// `None` when one is missing.
pub fn existing(root: &Path, below: &[&str]) -> Result<Option<PathBuf>> {
    let mut path = root.to_owned();
    if !is_ours(&path)? {
        return Ok(None);
    }
    for part in below {
        path.push(part);
        if !is_ours(&path)? {
            return Ok(None);
        }
    }
    Ok(Some(path))
}

fn make_or_check(path: &Path) -> Result<()> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    }
    if is_ours(path)? {
        return Ok(());
    }
    bail!("{} vanished as it was made", path.display())
}

/// Whether `path` is a directory of ours (false: absent); an error when it
/// is a symbolic link, not a directory, someone else's or writable by others.
fn is_ours(path: &Path) -> Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
    };
    if meta.file_type().is_symlink() {
        bail!(
            "{} is a symbolic link; netfwd refuses to follow it",
            path.display()
        );
    }
    if !meta.is_dir() {
        bail!(
            "{} is not a directory; netfwd refuses to use it",
            path.display()
        );
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        bail!(
            "{} is owned by uid {}, not by root or netfwd's user; netfwd refuses to use it",
            path.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "{} is writable by others (mode {:o}); netfwd refuses to use it",
            path.display(),
            meta.mode() & 0o7777
        );
    }
    Ok(true)
}

/// Removes `dir` (checked to be a directory of ours) and everything in it;
/// symbolic links inside are removed, never followed. Ok if absent.
pub fn remove_tree(dir: &Path) -> Result<()> {
    if !is_ours(dir)? {
        return Ok(());
    }
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// A fresh owner-only directory for a unit test, `tag` naming it.
#[cfg(test)]
pub fn scratch(tag: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("netfwd-unit-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    use super::*;

    #[test]
    fn made_directories_are_owner_only() {
        let root = scratch("mode");
        let made = ensure(&root, &["net", "links"]).unwrap();
        assert_eq!(made, root.join("net/links"));
        for dir in [root.join("net"), made] {
            assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        }
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_symlinked_component_is_refused_and_its_target_left_alone() {
        let root = scratch("link");
        let elsewhere = scratch("elsewhere");
        fs::write(elsewhere.join("decoy"), "keep").unwrap();
        symlink(&elsewhere, root.join("net")).unwrap();
        let err = ensure(&root, &["net", "links"]).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        assert!(existing(&root, &["net"]).is_err());
        assert!(remove_tree(&root.join("net")).is_err());
        assert!(!elsewhere.join("links").exists());
        assert_eq!(fs::read_to_string(elsewhere.join("decoy")).unwrap(), "keep");
        fs::remove_dir_all(root).unwrap();
        fs::remove_dir_all(elsewhere).unwrap();
    }

    #[test]
    fn a_directory_others_may_write_is_refused() {
        let root = scratch("open");
        fs::create_dir(root.join("net")).unwrap();
        fs::set_permissions(root.join("net"), fs::Permissions::from_mode(0o777)).unwrap();
        let err = ensure(&root, &["net"]).unwrap_err();
        assert!(format!("{err:#}").contains("writable by others"), "{err:#}");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        let root = scratch("owner");
        fs::create_dir(root.join("net")).unwrap();
        nix::unistd::chown(
            &root.join("net"),
            Some(nix::unistd::Uid::from_raw(65534)),
            None,
        )
        .unwrap();
        let err = existing(&root, &["net"]).unwrap_err();
        assert!(format!("{err:#}").contains("owned by uid 65534"), "{err:#}");
        fs::remove_dir_all(root).unwrap();
    }
}
