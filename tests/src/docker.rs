//! The Docker lab: `netfwd docker-plugin` and a dockerd of the test's own,
//! both in the sandbox host namespace. dockerd gets its own data root, exec
//! root, pidfile, socket and containerd namespaces, and `--bridge=none
//! --iptables=false --ip6tables=false`, so netfwd is the only datapath, and
//! `--live-restore`, so containers outlive a restart of dockerd; its
//! one image is `docker import` of a busybox root filesystem (no registry).
//! Containers, networks, dockerd and the plugin are removed on drop.

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{
    guards::TempDir,
    next_id,
    process::{assert_ok, netfwd_bin, nsenter_net, run_with_timeout},
    sandbox::Sandbox,
};

/// The image every container runs.
pub const IMAGE: &str = "netfwd-test-busybox";
/// Time limit of one docker CLI run.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(90);

pub struct DockerLab {
    /// The driver's name: `docker network create -d <driver>`.
    pub driver: String,
    host: String,
    dir: TempDir,
    plugin: Option<Child>,
    dockerd: Option<Child>,
}

impl DockerLab {
    /// The plugin and dockerd in `sb`'s host, and the busybox image.
    pub fn new(sb: &Sandbox) -> DockerLab {
        let driver = format!("nft{}-{}", std::process::id(), next_id());
        let dir = TempDir::new("docker");
        let mut lab = DockerLab {
            driver,
            host: sb.host().to_owned(),
            dir,
            plugin: None,
            dockerd: None,
        };
        lab.start_plugin();
        lab.start_dockerd();
        lab.import_image();
        lab
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::File::create(self.dir.path().join(name)).unwrap()
    }

    pub fn socket(&self) -> PathBuf {
        plugin_socket(&self.driver)
    }

    /// (Re)starts `netfwd docker-plugin` and waits for its socket.
    pub fn start_plugin(&mut self) {
        let mut cmd = plugin_command(&self.host, &self.driver);
        cmd.stderr(self.log("plugin.log"));
        self.plugin = Some(cmd.spawn().unwrap());
        wait_for(self.dir(), "the plugin's socket", || self.socket().exists());
    }

    /// Stops the plugin (SIGTERM), as a restart would.
    pub fn stop_plugin(&mut self) {
        stop(self.plugin.take(), Duration::from_secs(10));
    }

    fn dockerd_args(&self) -> Vec<String> {
        let dir = self.dir.path();
        let id = format!("nft{}-{}", std::process::id(), self.driver);
        vec![
            "dockerd".into(),
            format!("--data-root={}", dir.join("data").display()),
            format!("--exec-root={}", dir.join("exec").display()),
            format!("--pidfile={}", dir.join("docker.pid").display()),
            format!("--host=unix://{}", self.docker_socket().display()),
            "--bridge=none".into(),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--live-restore".into(),
            format!("--containerd-namespace={id}"),
            format!("--containerd-plugins-namespace={id}-p"),
        ]
    }

    fn docker_socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// (Re)starts dockerd and waits until it answers.
    pub fn start_dockerd(&mut self) {
        let mut cmd = nsenter_net(&self.host);
        cmd.args(self.dockerd_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.log("dockerd.log"));
        self.dockerd = Some(cmd.spawn().unwrap());
        wait_for(self.dir(), "dockerd", || {
            self.docker(&["info"]).status.success()
        });
    }

    /// Stops dockerd (SIGTERM).
    pub fn stop_dockerd(&mut self) {
        stop(self.dockerd.take(), Duration::from_secs(30));
    }

    fn import_image(&self) {
        let rootfs = self.dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "sleep", "ip", "ping", "nc", "httpd", "wget", "cat", "echo", "nslookup", "mkdir",
        ] {
            symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        let tar = self.dir.path().join("rootfs.tar");
        crate::tool_ok(
            "tar",
            &[
                "-C",
                rootfs.to_str().unwrap(),
                "-cf",
                tar.to_str().unwrap(),
                ".",
            ],
        );
        self.docker_ok(&["import", tar.to_str().unwrap(), IMAGE]);
    }

    /// `docker <args>` against this lab's dockerd, with a time limit.
    pub fn docker(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("docker");
        cmd.arg("-H")
            .arg(format!("unix://{}", self.docker_socket().display()))
            .args(args);
        run_with_timeout(&mut cmd, DOCKER_TIMEOUT)
    }

    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert_ok(&format!("docker {}", args.join(" ")), &out);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `docker network create -d <driver> --subnet <subnet> <extra> <name>`,
    /// with `-o mode=xdp` in the XDP pass.
    pub fn network(&self, name: &str, subnet: &str, extra: &[&str]) -> String {
        let mut args = vec!["network", "create", "-d", &self.driver, "--subnet", subnet];
        if crate::test_mode() == "xdp" {
            args.extend_from_slice(&["-o", "mode=xdp"]);
        }
        args.extend_from_slice(extra);
        args.push(name);
        self.docker_ok(&args)
    }

    /// `docker network create -d <driver> --ipam-driver <driver> --ipam-opt
    /// cluster=<file> <extra> <name>` (with `-o mode=xdp` in the XDP pass):
    /// its output, failed or not.
    pub fn cluster_network(&self, name: &str, file: &str, extra: &[&str]) -> Output {
        let cluster = format!("cluster={file}");
        let mut args = vec![
            "network",
            "create",
            "-d",
            &self.driver,
            "--ipam-driver",
            &self.driver,
            "--ipam-opt",
            &cluster,
        ];
        if crate::test_mode() == "xdp" {
            args.extend_from_slice(&["-o", "mode=xdp"]);
        }
        args.extend_from_slice(extra);
        args.push(name);
        self.docker(&args)
    }

    /// `docker network rm <names>`. dockerd marks a removed container
    /// stopped before it has released its endpoints (`handleContainerExit`
    /// releases them after `SetStopped`), so right after a `docker rm -f`
    /// of many containers a network may still have "active endpoints" for a
    /// moment: retried for up to 30 s, as a script would.
    pub fn network_rm(&self, names: &[&str]) {
        let mut args = vec!["network", "rm"];
        args.extend_from_slice(names);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.docker(&args);
            let busy = String::from_utf8_lossy(&out.stderr).contains("has active endpoints");
            if out.status.success() || !busy || Instant::now() >= deadline {
                assert_ok(&format!("docker {}", args.join(" ")), &out);
                return;
            }
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// `docker run -d --name <name> <extra> IMAGE sleep 3600`.
    pub fn run(&self, name: &str, extra: &[&str]) -> String {
        self.run_cmd(name, extra, &["sleep", "3600"])
    }

    /// `docker run -d --name <name> <extra> IMAGE <argv>`.
    pub fn run_cmd(&self, name: &str, extra: &[&str], argv: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(argv);
        self.docker_ok(&args)
    }

    /// `docker run -d --name <name> --network <network> --mac-address <mac>
    /// IMAGE sleep 3600`, through the Engine API (v1.41): a docker CLI newer
    /// than dockerd 20.10 refuses the flag for it.
    pub fn run_with_mac(&self, name: &str, network: &str, mac: &str) {
        let body = serde_json::json!({
            "Image": IMAGE,
            "Cmd": ["sleep", "3600"],
            "MacAddress": mac,
            "HostConfig": {"NetworkMode": network},
        });
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--fail-with-body", "--unix-socket"])
            .arg(self.docker_socket())
            .args(["-H", "Content-Type: application/json", "-d"])
            .arg(body.to_string())
            .arg(format!(
                "http://localhost/v1.41/containers/create?name={name}"
            ));
        let out = run_with_timeout(&mut cmd, DOCKER_TIMEOUT);
        assert_ok("containers/create", &out);
        self.docker_ok(&["start", name]);
    }

    /// `docker exec <name> <argv>`.
    pub fn exec(&self, name: &str, argv: &[&str]) -> Output {
        let mut args = vec!["exec", name];
        args.extend_from_slice(argv);
        self.docker(&args)
    }

    /// The container's address on network `net`.
    pub fn ip_of(&self, name: &str, net: &str) -> String {
        self.docker_ok(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
            name,
        ])
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// `netfwd --netns <host> docker-plugin --name <driver>`; its stderr is the
/// caller's to set.
fn plugin_command(host: &str, driver: &str) -> Command {
    let mut cmd = Command::new(netfwd_bin());
    cmd.args(["--netns", host, "docker-plugin", "--name", driver])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

fn plugin_socket(driver: &str) -> PathBuf {
    PathBuf::from(format!("/run/docker/plugins/{driver}.sock"))
}

/// Waits up to 60 s for `ready`; the logs are in `logs`.
fn wait_for(logs: &Path, what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} not ready in 60 s; logs in {}",
            logs.display()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// The plugin alone, without dockerd, for tests that talk to its socket:
/// under `prlimit --nofile=<nofile>`, stopped on drop.
pub struct PluginAlone {
    driver: String,
    dir: TempDir,
    child: Option<Child>,
}

impl PluginAlone {
    pub fn new(sb: &Sandbox, nofile: u32) -> PluginAlone {
        PluginAlone::with_args(sb, nofile, &[])
    }

    /// As [`PluginAlone::new`], with more arguments to `docker-plugin`.
    pub fn with_args(sb: &Sandbox, nofile: u32, extra: &[&str]) -> PluginAlone {
        let driver = format!("nft{}-{}", std::process::id(), next_id());
        let dir = TempDir::new("plugin");
        let mut inner = plugin_command(sb.host(), &driver);
        inner.args(extra);
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}"))
            .arg(inner.get_program())
            .args(inner.get_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("plugin.log")).unwrap());
        let plugin = PluginAlone {
            child: Some(cmd.spawn().unwrap()),
            driver,
            dir,
        };
        wait_for(plugin.dir.path(), "the plugin's socket", || {
            plugin.socket().exists()
        });
        plugin
    }

    pub fn socket(&self) -> PathBuf {
        plugin_socket(&self.driver)
    }

    /// Whether the plugin still runs.
    pub fn is_alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("plugin.log")).unwrap_or_default()
    }

    /// POSTs `/<call>` with `body`: the answer's status and body, or the
    /// I/O error, within 30 s.
    pub fn call(&self, call: &str, body: &str) -> std::io::Result<(u16, String)> {
        use std::io::{Read as _, Write as _};
        let mut stream = std::os::unix::net::UnixStream::connect(self.socket())?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "POST /{call} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        Ok((status, body))
    }
}

impl Drop for PluginAlone {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- plugin.log ---\n{}", self.log());
        }
        stop(self.child.take(), Duration::from_secs(10));
    }
}

impl Drop for DockerLab {
    fn drop(&mut self) {
        // A failed test shows the ends of the logs, which go with the lab.
        if thread::panicking() {
            for log in ["plugin.log", "dockerd.log"] {
                let text = std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                eprintln!("--- {log} (last 40 lines) ---\n{tail}");
            }
        }
        if self.dockerd.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
            let nets = self.docker(&[
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("driver={}", self.driver),
            ]);
            for id in String::from_utf8_lossy(&nets.stdout).split_whitespace() {
                let _ = self.docker(&["network", "rm", id]);
            }
        }
        stop(self.dockerd.take(), Duration::from_secs(30));
        stop(self.plugin.take(), Duration::from_secs(10));
        // What dockerd may leave mounted under its data root.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("data"))
            .stderr(Stdio::null())
            .status();
    }
}

/// SIGTERM, then SIGKILL after `grace`.
fn stop(child: Option<Child>, grace: Duration) {
    let Some(mut child) = child else {
        return;
    };
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
