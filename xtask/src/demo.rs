//! The default demo: seed 001's network (three endpoints on 192.168.28.0/24,
//! gateway .5, the host, masquerade to the outside) brought up by netfwd
//! inside a sandbox "host" namespace of its own, with an "internet"
//! namespace behind its uplink, so the real host's network is never touched.
//!
//! The sandbox itself is made with `ip netns`: it is the demo's scaffolding,
//! not the product (netfwd makes everything else over netlink).

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{command, output, run, succeeds};

const SUBNET: &str = "192.168.28.0/24";
const GATEWAY: &str = "192.168.28.5";
const ENDPOINT_IPS: [&str; 3] = ["192.168.28.1", "192.168.28.2", "192.168.28.3"];
/// Another address of the host's own (seed 001 step 3 pings "the host"), from
/// a documentation range.
const HOST_OTHER_ADDR: &str = "198.51.100.1";
/// The sandbox host's uplink and the "internet" router behind it.
const UPLINK: &str = "up0";
const UPLINK_ADDR: &str = "203.0.113.2/24";
const INTERNET_ADDR: &str = "203.0.113.1";

pub fn exec(netfwd: &Path, keep: bool) -> Result<()> {
    let sandbox = Sandbox::create(netfwd)?;
    let result = sandbox.show();
    if keep && result.is_ok() {
        sandbox.keep();
        return Ok(());
    }
    result
}

/// The demo's namespaces and network; removed on drop unless kept.
struct Sandbox {
    netfwd: PathBuf,
    id: u32,
    host: String,
    internet: String,
    network: String,
    endpoints: Vec<String>,
    dir: PathBuf,
    kept: bool,
}

impl Sandbox {
    fn create(netfwd: &Path) -> Result<Sandbox> {
        // Unique per run: the network name has at most 8 characters.
        let id = std::process::id() % 10_000;
        let sb = Sandbox {
            netfwd: netfwd.to_owned(),
            id,
            host: format!("demo{id}-host"),
            internet: format!("demo{id}-inet"),
            network: format!("demo{id}"),
            endpoints: (1..=3).map(|i| format!("demo{id}-ns{i}")).collect(),
            dir: std::env::temp_dir().join(format!("netfwd-demo-{id}")),
            kept: false,
        };
        run(&mut command("ip", &["netns", "add", &sb.host]))?;
        run(&mut command("ip", &["netns", "add", &sb.internet]))?;
        sb.ip_in_host(&["link", "set", "lo", "up"])?;
        sb.ip_in_host(&["addr", "add", &format!("{HOST_OTHER_ADDR}/32"), "dev", "lo"])?;
        sb.ip_in_host(&[
            "link",
            "add",
            UPLINK,
            "type",
            "veth",
            "peer",
            "name",
            "inet0",
            "netns",
            &sb.internet,
        ])?;
        sb.ip_in_host(&["addr", "add", UPLINK_ADDR, "dev", UPLINK])?;
        sb.ip_in_host(&["link", "set", UPLINK, "up"])?;
        sb.ip_in_host(&["route", "add", "default", "via", INTERNET_ADDR])?;
        let inet = |args: &[&str]| {
            let mut full = vec!["-n", sb.internet.as_str()];
            full.extend(args);
            run(&mut command("ip", &full))
        };
        inet(&["link", "set", "lo", "up"])?;
        inet(&[
            "addr",
            "add",
            &format!("{INTERNET_ADDR}/24"),
            "dev",
            "inet0",
        ])?;
        inet(&["link", "set", "inet0", "up"])?;
        fs::create_dir_all(&sb.dir).with_context(|| format!("creating {}", sb.dir.display()))?;
        let config = sb.config();
        fs::write(sb.config_path(), &config).context("writing the demo config")?;
        println!("demo config ({}):\n{config}", sb.config_path().display());
        sb.netfwd(&["up", "-c", &sb.config_path().to_string_lossy()])?;
        Ok(sb)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("net.toml")
    }

    fn config(&self) -> String {
        let mut s = format!(
            "[network]\nname = \"{}\"\nsubnet = \"{SUBNET}\"\ngateway = \"{GATEWAY}\"\nuplink = \"{UPLINK}\"\n",
            self.network
        );
        for (ns, ip) in self.endpoints.iter().zip(ENDPOINT_IPS) {
            let _ = write!(s, "\n[[endpoint]]\nnetns = \"{ns}\"\nip = \"{ip}\"\n");
        }
        s
    }

    fn ip_in_host(&self, args: &[&str]) -> Result<()> {
        let mut full = vec!["-n", self.host.as_str()];
        full.extend(args);
        run(&mut command("ip", &full))
    }

    fn netfwd(&self, args: &[&str]) -> Result<()> {
        let mut full = vec!["--netns", self.host.as_str()];
        full.extend(args);
        run(&mut command(&self.netfwd.to_string_lossy(), &full))
    }

    /// Prints who reaches whom, then netfwd's status with its counters.
    fn show(&self) -> Result<()> {
        let mut targets: Vec<(String, &str)> = self
            .endpoints
            .iter()
            .zip(ENDPOINT_IPS)
            .map(|(ns, ip)| (ns.clone(), ip))
            .collect();
        targets.push(("gateway".into(), GATEWAY));
        targets.push(("host-other".into(), HOST_OTHER_ADDR));
        targets.push(("internet".into(), INTERNET_ADDR));
        let mut sources = vec![self.host.clone()];
        sources.extend(self.endpoints.iter().cloned());

        println!("\nconnectivity (ping, 1 packet, 1 s):");
        let labels: Vec<String> = targets.iter().map(|(n, ip)| format!("{n} {ip}")).collect();
        let width = labels
            .iter()
            .chain(&sources)
            .map(String::len)
            .max()
            .unwrap_or(0);
        let mut header = format!("{:<width$}", "from \\ to");
        for label in &labels {
            let _ = write!(header, " {label:<width$}");
        }
        println!("{header}");
        let mut failures = 0;
        for src in &sources {
            let mut row = format!("{src:<width$}");
            for (name, ip) in &targets {
                let cell = if name == src {
                    "-"
                } else if ping(src, ip) {
                    "ok"
                } else {
                    failures += 1;
                    "FAIL"
                };
                let _ = write!(row, " {cell:<width$}");
            }
            println!("{row}");
        }
        println!();
        self.netfwd(&["status"])?;
        let bridges = output(&mut command(
            "ip",
            &["-n", &self.host, "-o", "link", "show", "type", "bridge"],
        ))?;
        println!(
            "\nbridge devices in the sandbox host: {}",
            if bridges.trim().is_empty() {
                "none"
            } else {
                bridges.trim()
            }
        );
        if failures > 0 {
            bail!("{failures} connectivity check(s) failed");
        }
        Ok(())
    }

    fn keep(mut self) {
        self.kept = true;
        let id = self.id;
        println!(
            "\nleft up (--keep). Try:\n  nsenter --net=/run/netns/demo{id}-ns1 ping 192.168.28.2\n  {bin} --netns {host} status\n\
             remove it with:\n  {bin} --netns {host} down --name {net} && ip netns del {host} && ip netns del {inet}",
            bin = self.netfwd.display(),
            host = self.host,
            inet = self.internet,
            net = self.network,
        );
    }
}

fn ping(from_ns: &str, ip: &str) -> bool {
    succeeds(&mut command(
        "nsenter",
        &[
            &format!("--net=/run/netns/{from_ns}"),
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "-q",
            ip,
        ],
    ))
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Err(e) = self.netfwd(&["down", "--name", &self.network]) {
            eprintln!("xtask: cleaning up the demo: {e:#}");
        }
        for ns in [&self.host, &self.internet] {
            if let Err(e) = run(&mut command("ip", &["netns", "del", ns])) {
                eprintln!("xtask: cleaning up the demo: {e:#}");
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
