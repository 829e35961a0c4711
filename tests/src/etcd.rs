//! An etcd cluster for the cluster tests (three members, or one): one member per
//! namespace, each plugged into a test's [`Switch`] at 192.0.2.2X, with its
//! data directory under a [`TempDir`]; every member killed and every
//! directory and namespace removed on drop.

use std::{
    fs::File,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::{
    guards::TempDir,
    netns::{Netns, netns_path},
    next_id,
    process::{eventually, in_ns, poll},
    switch::Switch,
};

/// How long a cluster may take to elect a leader or come back.
const QUORUM_TIMEOUT: Duration = Duration::from_secs(30);

struct Member {
    name: String,
    ip: String,
    child: Option<Child>,
    /// Dropped after the child is killed.
    ns: Netns,
}

pub struct Etcd {
    members: Vec<Member>,
    token: String,
    dir: TempDir,
}

impl Etcd {
    /// Three members on `switch` (ports `e0`..`e2`), with quorum.
    pub fn start(switch: &Switch, tag: &str) -> Etcd {
        Etcd::with_members(switch, tag, 3)
    }

    /// One member (`e0`, 192.0.2.21), for a test of the clients, not of
    /// etcd's quorum.
    pub fn single(switch: &Switch, tag: &str) -> Etcd {
        Etcd::with_members(switch, tag, 1)
    }

    fn with_members(switch: &Switch, tag: &str, count: usize) -> Etcd {
        let token = format!("nft{}-{tag}{}", std::process::id(), next_id());
        let members = (0..count)
            .map(|i| {
                let ns = Netns::create(&format!("{token}-etcd{i}"));
                let ip = format!("192.0.2.2{}", i + 1);
                switch.plug(ns.name(), &ip, &format!("e{i}"));
                Member {
                    name: format!("e{i}"),
                    ip,
                    child: None,
                    ns,
                }
            })
            .collect();
        let mut etcd = Etcd {
            members,
            token,
            dir: TempDir::new(tag),
        };
        etcd.start_all();
        etcd.wait_for_quorum();
        etcd
    }

    /// The client URLs, as `[cluster] etcd` takes them.
    pub fn urls(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://{}:2379", m.ip))
            .collect()
    }

    /// `etcd = [...]` for a config.
    pub fn toml_urls(&self) -> String {
        let quoted: Vec<String> = self.urls().iter().map(|u| format!("{u:?}")).collect();
        format!("[{}]", quoted.join(", "))
    }

    /// Starts member `i` (again: its data directory is kept).
    pub fn start_member(&mut self, i: usize) {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://{}:2380", m.name, m.ip))
            .collect();
        let member = &self.members[i];
        let data = self.dir.path().join(&member.name);
        let log = File::create(self.dir.path().join(format!("{}.log", member.name))).unwrap();
        let (peer, client) = (
            format!("http://{}:2380", member.ip),
            format!("http://{}:2379", member.ip),
        );
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns_path(member.ns.name()).display()))
            .arg("etcd")
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.members[i].child = Some(child);
    }

    /// Kills member `i` (SIGKILL: as a crash).
    pub fn stop_member(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills every member at once (quorum is lost in one instant, not
    /// member by member).
    pub fn stop_all(&mut self) {
        for m in &mut self.members {
            if let Some(child) = &mut m.child {
                let _ = child.kill();
            }
        }
        for i in 0..self.members.len() {
            self.stop_member(i);
        }
    }

    /// Starts every member again.
    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.start_member(i);
        }
    }

    /// Waits until a member answers as the leader's follower or leader.
    pub fn wait_for_quorum(&self) {
        poll("etcd's quorum", QUORUM_TIMEOUT, || self.leader());
    }

    /// The index of the member that leads, if one does as its peers see it.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find_map(|i| {
            let status = self.etcdctl(i, &["endpoint", "status", "-w", "json"])?;
            let status = &status[0]["Status"];
            let me = status["header"]["member_id"].as_u64()?;
            (status["leader"].as_u64()? == me).then_some(i)
        })
    }

    /// `etcdctl` against member `i` alone, from its own namespace; its JSON
    /// output, or `None` if it failed.
    pub fn etcdctl(&self, i: usize, args: &[&str]) -> Option<Value> {
        let out = self.etcdctl_out(i, args);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    fn etcdctl_out(&self, i: usize, args: &[&str]) -> Output {
        let m = &self.members[i];
        let endpoint = format!("--endpoints=http://{}:2379", m.ip);
        let mut all = vec!["etcdctl", endpoint.as_str(), "--command-timeout=2s"];
        all.extend_from_slice(args);
        in_ns(m.ns.name(), &all)
    }

    /// Every key under `prefix` and its value, read through member `i`.
    pub fn keys(&self, i: usize, prefix: &str) -> Vec<(String, String)> {
        let text = poll("an etcd read", QUORUM_TIMEOUT, || {
            let out = self.etcdctl_out(i, &["get", "--prefix", prefix]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        });
        // Key and value on a line each.
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .map(|kv| {
                (
                    kv[0].to_owned(),
                    kv.get(1).copied().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// The namespace of member `i`.
    pub fn netns(&self, i: usize) -> &str {
        self.members[i].ns.name()
    }

    /// Waits until every member is back in the cluster.
    pub fn wait_for_all(&self) {
        eventually("every etcd member healthy", QUORUM_TIMEOUT, || {
            (0..self.members.len()).all(|i| {
                self.etcdctl(i, &["endpoint", "health", "-w", "json"])
                    .is_some()
            })
        });
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop_all();
        // The namespaces go with the members, the data with `dir`.
    }
}
