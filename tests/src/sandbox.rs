//! The sandbox: a "host" namespace of its own in which netfwd runs, with
//! everything a test makes in and around it.

use std::{
    cell::RefCell,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

use crate::{
    BPF_PIN_ROOT, STATE_DIR,
    config::{NetConfig, with_test_mode},
    guards::TempDir,
    internet,
    netns::{Netns, delete_netns_quietly},
    next_id,
    process::{
        NETFWD_TIMEOUT, assert_ok, describe, in_ns_ok, netfwd_bin, run_with_timeout, tool_ok,
    },
};

/// A sandbox "host" namespace with everything a test makes in and around it.
pub struct Sandbox {
    prefix: String,
    dir: TempDir,
    /// Networks handed out: `down` on drop.
    networks: RefCell<Vec<String>>,
    /// Namespaces named by [`Sandbox::ns`]: deleted on drop (after `down`).
    namespaces: RefCell<Vec<String>>,
    /// Last, so it is deleted after the networks in it are torn down.
    host: Netns,
}

impl Sandbox {
    /// A new sandbox host namespace `nft<pid>-<tag><n>-host` with `lo` up.
    pub fn new(tag: &str) -> Sandbox {
        let bin = netfwd_bin();
        assert!(
            bin.is_file(),
            "netfwd binary {} not found: build it (cargo build --release -p netfwd) or set NETFWD_BIN",
            bin.display()
        );
        let prefix = format!("nft{}-{tag}{}", std::process::id(), next_id());
        let dir = TempDir::new(tag);
        let host = Netns::create(&format!("{prefix}-host"));
        Sandbox {
            prefix,
            dir,
            networks: RefCell::new(Vec::new()),
            namespaces: RefCell::new(Vec::new()),
            host,
        }
    }

    /// The sandbox host namespace's name.
    pub fn host(&self) -> &str {
        self.host.name()
    }

    /// A unique namespace name `<prefix>-<tag>`, deleted (if it exists) when
    /// the sandbox is dropped.
    pub fn ns(&self, tag: &str) -> String {
        let name = format!("{}-{tag}", self.prefix);
        self.namespaces.borrow_mut().push(name.clone());
        name
    }

    /// A namespace the test makes itself (`ip netns add`), before netfwd.
    pub fn precreated_ns(&self, tag: &str) -> Netns {
        Netns::create(&format!("{}-{tag}", self.prefix))
    }

    /// A unique network name (`t<pid % 10000><n>`, at most 8 characters),
    /// torn down with `netfwd down --name` when the sandbox is dropped.
    pub fn net_name(&self) -> String {
        let name = format!("t{}{}", std::process::id() % 10_000, next_id() % 1000);
        assert!(name.len() <= 8, "network name {name} too long");
        self.owns_network(&name);
        name
    }

    /// Network `name`, which a client of netfwd (the Docker plugin) makes
    /// in this sandbox, is torn down with `netfwd down --name` on drop.
    pub fn owns_network(&self, name: &str) {
        self.networks.borrow_mut().push(name.to_owned());
    }

    /// Writes `text` to a fresh config file of this sandbox.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join(format!("config{}.toml", next_id()));
        std::fs::write(&path, with_test_mode(text)).unwrap();
        path
    }

    /// Runs `netfwd --netns <host> <args…>`.
    pub fn netfwd<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let mut cmd = Command::new(netfwd_bin());
        cmd.arg("--netns").arg(self.host()).args(args);
        cmd.env("RUST_BACKTRACE", "0");
        run_with_timeout(&mut cmd, NETFWD_TIMEOUT)
    }

    /// Runs `netfwd --netns <host> <args…>` and panics unless it exits 0.
    pub fn netfwd_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let out = self.netfwd(args);
        let shown = format!(
            "netfwd --netns {} {}",
            self.host(),
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert_ok(&shown, &out);
        out
    }

    /// `netfwd up -c <file>` with `cfg` written to a file; must succeed.
    pub fn up(&self, cfg: &NetConfig) -> PathBuf {
        let path = self.write_config(&cfg.to_toml());
        self.up_file(&path);
        path
    }

    /// `netfwd up -c <path>`; must succeed.
    pub fn up_file(&self, path: &Path) -> Output {
        self.netfwd_ok(&[OsStr::new("up"), OsStr::new("-c"), path.as_os_str()])
    }

    /// `netfwd status --name <net> --json`, parsed.
    pub fn status_json(&self, net: &str) -> Value {
        let out = self.netfwd_ok(&["status", "--name", net, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json printed no JSON ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The flows of `netfwd nat list --name <net> --json`.
    pub fn nat_flows(&self, net: &str) -> Vec<Value> {
        let out = self.netfwd_ok(&["nat", "list", "--name", net, "--json"]);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        list["networks"][0]["flows"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The MAC of the sandbox host's uplink: frames forged in the internet
    /// namespace are addressed to it.
    pub fn uplink_mac(&self) -> String {
        let links: Value = serde_json::from_str(&in_ns_ok(
            self.host(),
            &["ip", "-j", "link", "show", internet::UPLINK],
        ))
        .unwrap();
        links[0]["address"].as_str().unwrap().to_owned()
    }

    /// The one network of `status --name <net> --json`.
    pub fn network_status(&self, net: &str) -> Value {
        let status = self.status_json(net);
        let networks = status["networks"]
            .as_array()
            .unwrap_or_else(|| panic!("status has no networks array: {status:#}"));
        let found: Vec<&Value> = networks.iter().filter(|n| n["name"] == net).collect();
        assert_eq!(found.len(), 1, "network {net} in status: {status:#}");
        found[0].clone()
    }

    /// Adds address `cidr` to device `dev` of the sandbox host.
    pub fn add_host_addr(&self, cidr: &str, dev: &str) {
        tool_ok("ip", &["-n", self.host(), "addr", "add", cidr, "dev", dev]);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Nothing here panics: this also runs while a failed test unwinds.
        for net in self.networks.borrow().iter() {
            let out = self.netfwd(&["down", "--name", net.as_str()]);
            if !out.status.success() {
                eprintln!(
                    "cleanup: {}",
                    describe(
                        &format!("netfwd --netns {} down --name {net}", self.host()),
                        &out
                    )
                );
            }
        }
        for ns in self.namespaces.borrow().iter() {
            delete_netns_quietly(ns);
        }
        // If `down` failed, still leave no pins (they would keep programs and
        // TCX links alive) and no state of our uniquely named networks.
        for net in self.networks.borrow().iter() {
            let pins = Path::new(BPF_PIN_ROOT).join(net);
            if pins.exists() {
                eprintln!("cleanup: {} left behind; removing it", pins.display());
                if let Err(e) = std::fs::remove_dir_all(&pins) {
                    eprintln!("cleanup: removing {}: {e}", pins.display());
                }
            }
            let state = Path::new(STATE_DIR).join(format!("{net}.json"));
            if state.exists() {
                eprintln!("cleanup: {} left behind; removing it", state.display());
                if let Err(e) = std::fs::remove_file(&state) {
                    eprintln!("cleanup: removing {}: {e}", state.display());
                }
            }
        }
        // `host` (a Netns) and `dir` are dropped after this, host last.
    }
}
