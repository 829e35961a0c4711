//! A throwaway copy of netfwd's directories, for input that must touch nothing.

use std::{
    ffi::OsStr,
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use crate::{
    netns::Netns,
    next_id,
    process::{NETFWD_TIMEOUT, describe, netfwd_bin, nsenter_net, run_with_input},
};

/// A private mount namespace held by a sleeping process: every mount
/// read-only but its own bpffs on /sys/fs/bpf and its own tmpfs on /run. netfwd run in it ([`PrivateWorld::run`]) sees
/// only this copy, so a regression that removes what a bad name points at
/// can hurt nothing else. The test plants and inspects files in it through
/// [`PrivateWorld::path`] (`/proc/<pid>/root/…`). Everything in it goes with
/// the process when it is dropped. It runs in a network namespace of its
/// own, too: a regression must not reach the real host's interfaces either.
pub struct PrivateWorld {
    holder: std::process::Child,
    netns: Netns,
}

/// Run inside `unshare --mount --propagation private`: the copy, then a
/// line saying it is ready, then sleep.
const PRIVATE_WORLD_SETUP: &str = r#"set -e
for m in $(findmnt -rn -o TARGET); do
    # One that went meanwhile (another sandbox's namespace) needs nothing.
    mount -o remount,bind,ro "$m" 2>/dev/null || ! mountpoint -q "$m"
done
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs -o mode=0755 tmpfs /run
echo ready
exec sleep infinity"#;

impl PrivateWorld {
    pub fn new(tag: &str) -> PrivateWorld {
        let netns = Netns::create(&format!(
            "nft{}-{tag}{}-world",
            std::process::id(),
            next_id()
        ));
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(PRIVATE_WORLD_SETUP)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start unshare: {e}"));
        let mut ready = [0u8; 6];
        let read = holder.stdout.take().unwrap().read_exact(&mut ready);
        if read.is_err() || &ready != b"ready\n" {
            let _ = holder.kill();
            let out = holder.wait_with_output().unwrap();
            panic!("{}", describe("making a private mount namespace", &out));
        }
        PrivateWorld { holder, netns }
    }

    /// Where `inside` (an absolute path as netfwd sees it) is from here.
    pub fn path(&self, inside: &str) -> PathBuf {
        let inside = inside.strip_prefix('/').unwrap_or(inside);
        PathBuf::from(format!("/proc/{}/root", self.holder.id())).join(inside)
    }

    /// Runs `program args…` in the copy, with `vars` set and `stdin`.
    pub fn run<S: AsRef<OsStr>>(
        &self,
        program: &Path,
        args: &[S],
        vars: &[(&str, &str)],
        stdin: &[u8],
    ) -> Output {
        // nsenter opens both namespace files before it enters either.
        let mut cmd = nsenter_net(self.netns.name());
        cmd.arg(format!("--mount=/proc/{}/ns/mnt", self.holder.id()))
            .arg("--")
            .arg(program)
            .args(args)
            .envs(vars.iter().copied())
            .env("RUST_BACKTRACE", "0");
        run_with_input(&mut cmd, stdin, NETFWD_TIMEOUT)
    }

    /// `netfwd args…` in the copy.
    pub fn netfwd<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.run(&netfwd_bin(), args, &[], b"")
    }

    /// Every path under `inside` in the copy, symbolic links not followed,
    /// with what each is: a snapshot to compare before and after.
    pub fn tree(&self, inside: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let shown = path
                    .strip_prefix(base)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => {
                        out.push(format!("{shown}/"));
                        walk(&path, base, out);
                    }
                    Ok(t) if t.is_symlink() => {
                        let target = std::fs::read_link(&path).unwrap_or_default();
                        out.push(format!("{shown} -> {}", target.display()));
                    }
                    _ => out.push(shown),
                }
            }
        }
        let base = self.path("/");
        let mut out = Vec::new();
        walk(&self.path(inside), &base, &mut out);
        out.sort();
        out
    }
}

impl Drop for PrivateWorld {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
