//! A cgroup v2 directory of a test's own, for `host_cgroup`: published
//! ports are reached from the sandbox host by processes in it.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use crate::netns::netns_path;

/// A cgroup v2 directory of the test's own: host processes run in it reach
/// published ports; removed on drop.
pub struct Cgroup(pub PathBuf);

impl Cgroup {
    pub fn new(tag: &str) -> Cgroup {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = mountinfo
            .lines()
            .find_map(|l| {
                let (before, after) = l.split_once(" - ")?;
                (after.split_whitespace().next()? == "cgroup2")
                    .then(|| before.split_whitespace().nth(4).map(PathBuf::from))?
            })
            .expect("no cgroup v2 hierarchy");
        let dir = root.join(format!("netfwd-test-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Cgroup(dir)
    }

    /// Runs `python3 -c <script> <args>` in the sandbox host, inside this
    /// cgroup; returns stdout.
    pub fn run_in_host(&self, host: &str, script: &str, args: &[&str]) -> String {
        let procs = self.0.join("cgroup.procs");
        let mut sh = format!(
            "echo $$ > {} && exec nsenter --net={} /usr/bin/python3 -c \"$0\"",
            procs.display(),
            netns_path(host).display()
        );
        for a in args {
            sh.push(' ');
            sh.push_str(a);
        }
        let out = Command::new("sh")
            .args(["-c", &sh, script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Its processes have exited by now; an empty cgroup can go.
        let _ = std::fs::remove_dir(&self.0);
    }
}
