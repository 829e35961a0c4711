//! The CNI directories: a plugin directory of the test's own (`netfwd` -> the
//! `netfwd-cni` binary, `host-local` from containernetworking-plugins), an
//! IPAM data directory of its own, and a podman whose every directory
//! (storage, run root, network configs, CNI plugins) is the test's. The
//! plugin and podman always run inside the sandbox host
//! (`nsenter --net=/run/netns/<host>`), so the plugin's host side is never
//! the real host.

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    NETFWD_TIMEOUT, TempDir, assert_ok, describe, netfwd_bin, nsenter_net, run_with_input,
    run_with_timeout,
};

/// Debian's CNI plugins (containernetworking-plugins).
const SYSTEM_PLUGINS: &str = "/usr/lib/cni";
/// What `podman run` may take, a container start included.
const PODMAN_TIMEOUT: Duration = Duration::from_secs(90);

/// The plugin binary, built beside `netfwd`.
pub fn cni_bin() -> PathBuf {
    netfwd_bin().with_file_name("netfwd-cni")
}

/// Plugin and IPAM directories of one test.
pub struct CniDirs {
    dir: TempDir,
}

impl CniDirs {
    pub fn new(tag: &str) -> CniDirs {
        let bin = cni_bin();
        assert!(
            bin.is_file(),
            "{} not found: build it (cargo build --release -p netfwd)",
            bin.display()
        );
        let dir = TempDir::new(&format!("cni-{tag}"));
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        symlink(&bin, plugins.join("netfwd")).unwrap();
        symlink(
            Path::new(SYSTEM_PLUGINS).join("host-local"),
            plugins.join("host-local"),
        )
        .unwrap();
        CniDirs { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CNI_PATH: the plugin and host-local.
    pub fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// host-local's `dataDir`.
    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    /// The addresses host-local holds for network `net`.
    pub fn leases(&self, net: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.ipam_dir().join(net)) else {
            return Vec::new();
        };
        let mut ips: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect();
        ips.sort();
        ips
    }

    /// The plugin's network config: netfwd over host-local in `subnet`.
    pub fn conf(&self, version: &str, net: &str, subnet: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": net,
            "type": "netfwd",
            "subnet": subnet,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": subnet }]],
                "dataDir": self.ipam_dir(),
            },
            "mode": crate::test_mode(),
        })
    }

    /// Runs the plugin in `host` with `CNI_COMMAND=command`, the given
    /// `CNI_*` variables and `stdin`.
    pub fn plugin(&self, host: &str, command: &str, vars: &[(&str, &str)], stdin: &str) -> Output {
        let mut cmd = nsenter_net(host);
        cmd.arg(self.plugin_dir().join("netfwd"))
            .env("CNI_COMMAND", command)
            .env("CNI_PATH", self.plugin_dir())
            .env("RUST_BACKTRACE", "0");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        run_with_input(&mut cmd, stdin.as_bytes(), NETFWD_TIMEOUT)
    }
}

/// The JSON a plugin printed on stdout.
pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}",
            describe(&format!("plugin output is no JSON ({e})"), out)
        )
    })
}

/// A podman of the test's own, driving the netfwd plugin; every container
/// it made is removed (CNI DEL) on drop, inside the sandbox host.
pub struct Podman<'a> {
    dirs: &'a CniDirs,
    host: String,
    /// conmon's and the containers' cgroups go under this (in every
    /// hierarchy), not podman's shared `libpod_parent`; removed on drop.
    cgroup_parent: String,
}

impl<'a> Podman<'a> {
    /// podman for sandbox host `host`, with a busybox root filesystem and
    /// network configs in the test's CNI directories.
    pub fn new(dirs: &'a CniDirs, host: &str) -> Podman<'a> {
        let dir = dirs.dir();
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "sleep", "ip", "ping", "nc", "httpd", "wget", "cat", "echo",
        ] {
            symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        std::fs::create_dir_all(dir.join("net.d")).unwrap();
        let conf = format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{plugins}\"]\n\
             network_config_dir = \"{netd}\"\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\nevents_logfile_path = \"{events}\"\n",
            plugins = dirs.plugin_dir().display(),
            netd = dir.join("net.d").display(),
            events = dir.join("events.log").display(),
        );
        std::fs::write(dir.join("containers.conf"), conf).unwrap();
        Podman {
            dirs,
            host: host.to_owned(),
            cgroup_parent: format!(
                "/netfwd-test-podman-{}-{}",
                std::process::id(),
                crate::next_id()
            ),
        }
    }

    /// Writes the conflist of network `net` with the plugin config `plugin`.
    pub fn add_network(&self, net: &str, plugin: &Value) {
        let conflist = json!({
            "cniVersion": plugin["cniVersion"],
            "name": net,
            "plugins": [plugin],
        });
        std::fs::write(
            self.dirs
                .dir()
                .join("net.d")
                .join(format!("{net}.conflist")),
            conflist.to_string(),
        )
        .unwrap();
    }

    fn command(&self) -> Command {
        let dir = self.dirs.dir();
        let mut cmd = nsenter_net(&self.host);
        cmd.arg("podman")
            .arg("--root")
            .arg(dir.join("storage"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .arg("--tmpdir")
            .arg(dir.join("tmp"))
            .args(["--storage-driver", "vfs"])
            .env("CONTAINERS_CONF", dir.join("containers.conf"));
        cmd
    }

    /// `podman <args>`, with a time limit.
    pub fn podman(&self, args: &[&str]) -> Output {
        let mut cmd = self.command();
        cmd.args(args);
        run_with_timeout(&mut cmd, PODMAN_TIMEOUT)
    }

    pub fn podman_ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert_ok(&format!("podman {}", args.join(" ")), &out);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `podman run -d` of `argv` in busybox on network `net`, with `extra`
    /// options (e.g. `-p 8080:80`); returns the container ID.
    pub fn run(&self, name: &str, net: &str, extra: &[&str], argv: &[&str]) -> String {
        let rootfs = self.rootfs();
        let rootfs = rootfs.to_str().unwrap();
        // Options before --rootfs: its path ends them.
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--cap-add",
            "NET_RAW",
            "--cgroup-parent",
            &self.cgroup_parent,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--rootfs", rootfs]);
        args.extend_from_slice(argv);
        self.podman_ok(&args)
    }

    /// The busybox root filesystem every container runs.
    pub fn rootfs(&self) -> PathBuf {
        self.dirs.dir().join("rootfs")
    }

    /// `podman exec <name> <argv>`.
    pub fn exec(&self, name: &str, argv: &[&str]) -> Output {
        let mut args = vec!["exec", name];
        args.extend_from_slice(argv);
        self.podman(&args)
    }

    /// The container's address on its first network.
    pub fn ip_of(&self, name: &str) -> String {
        self.podman_ok(&[
            "inspect",
            name,
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        ])
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        // DEL for every container while the network is still up.
        let out = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        if !out.status.success() {
            eprintln!("cleanup: {}", describe("podman rm -a -f", &out));
        }
        remove_cgroup_everywhere(&self.cgroup_parent);
    }
}

/// Removes cgroup directory `path` (and the empty ones below it) from every
/// hierarchy under /sys/fs/cgroup; reports, never panics.
fn remove_cgroup_everywhere(path: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let roots = hierarchies
        .filter_map(|h| Some(h.ok()?.path()))
        .chain([PathBuf::from("/sys/fs/cgroup")]);
    for root in roots {
        let dir = root.join(path.trim_start_matches('/'));
        if dir.is_dir()
            && let Err(e) = remove_dirs_depth_first(&dir)
        {
            eprintln!("cleanup: removing cgroup {}: {e}", dir.display());
        }
    }
}

fn remove_dirs_depth_first(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_dirs_depth_first(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir)
}
