//! Files and directories a test makes, removed on drop.

use std::path::{Path, PathBuf};

use crate::next_id;

/// A private directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "netfwd-tests-{}-{}-{tag}",
            std::process::id(),
            next_id()
        ));
        if let Err(e) = std::fs::create_dir(&path) {
            panic!("creating {}: {e}", path.display());
        }
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("cleanup: removing {}: {e}", self.path.display());
        }
    }
}

/// A regular file at `path` (e.g. a fake `/run/netns/<x>`), removed on drop.
pub struct FileGuard {
    path: PathBuf,
}

impl FileGuard {
    pub fn create(path: &Path, contents: &str) -> FileGuard {
        assert!(
            std::fs::symlink_metadata(path).is_err(),
            "{} exists already",
            path.display()
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, contents).unwrap();
        FileGuard {
            path: path.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            eprintln!("cleanup: removing {}: {e}", self.path.display());
        }
    }
}
