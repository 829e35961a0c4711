//! `docker run --rm IMAGE true` on a network of netfwd's Docker driver
//! against the same on a network of Docker's own bridge driver (its
//! iptables rules on), one dockerd of the bench's own (data root, exec
//! root, socket, containerd namespaces) in a sandbox host with netfwd's
//! plugin beside it, the runs alternating. The plugin runs with a state
//! directory and bpffs of its own, as the CNI rows do.

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::{sys::signal, unistd::Pid};

use super::{
    control::{PrivateState, UPLINK, uplink_to},
    report::median,
};
use crate::cmd::{command, output, succeeds};

const IMAGE: &str = "netfwd-bench-busybox";
/// What starting dockerd or the plugin, or one docker command, may take.
const LIMIT: Duration = Duration::from_secs(90);

/// Runs the rows; returns their Markdown section.
pub fn exec(netfwd: &Path, quick: bool, dir: &Path) -> Result<String> {
    let runs = if quick { 5 } else { 20 };
    let lab = DockerLab::start(netfwd, dir)?;
    let netfwd_net = format!("{}-nf", lab.prefix);
    let bridge_net = format!("{}-br", lab.prefix);
    let uplink = format!("uplink={UPLINK}");
    lab.docker(&[
        "network",
        "create",
        "-d",
        &lab.driver,
        "--subnet",
        "10.203.0.0/24",
        "-o",
        &uplink,
        &netfwd_net,
    ])?;
    lab.docker(&[
        "network",
        "create",
        "-d",
        "bridge",
        "--subnet",
        "10.204.0.0/24",
        &bridge_net,
    ])?;
    let run = |net: &str| -> Result<f64> {
        let start = Instant::now();
        lab.docker(&["run", "--rm", "--network", net, IMAGE, "true"])?;
        Ok(start.elapsed().as_secs_f64() * 1000.0)
    };
    // The first run on each loads what stays loaded (netfwd's programs).
    run(&netfwd_net)?;
    run(&bridge_net)?;
    let (mut on_netfwd, mut on_bridge) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let order = if i % 2 == 0 {
            [(&netfwd_net, true), (&bridge_net, false)]
        } else {
            [(&bridge_net, false), (&netfwd_net, true)]
        };
        for (net, is_netfwd) in order {
            let ms = run(net)?;
            if is_netfwd {
                on_netfwd.push(ms);
            } else {
                on_bridge.push(ms);
            }
        }
    }
    lab.docker(&["network", "rm", &netfwd_net, &bridge_net])?;
    // Sorted by `median`: first and last are the extremes.
    let (n50, b50) = (median(&mut on_netfwd), median(&mut on_bridge));
    Ok(format!(
        "\n`docker run --rm IMAGE true`, {runs} alternating runs on one dockerd (Docker {}): \
         on a netfwd network {n50:.0} ms p50 ({:.0}–{:.0}), on a Docker bridge network \
         {b50:.0} ms ({:.0}–{:.0}); **{:.2}×**.\n",
        lab.version()?,
        on_netfwd.first().copied().unwrap_or(f64::NAN),
        on_netfwd.last().copied().unwrap_or(f64::NAN),
        on_bridge.first().copied().unwrap_or(f64::NAN),
        on_bridge.last().copied().unwrap_or(f64::NAN),
        n50 / b50
    ))
}

/// dockerd and netfwd's plugin in a sandbox host; stopped and removed on
/// drop.
struct DockerLab {
    prefix: String,
    host: String,
    /// Behind the host's uplink.
    far: String,
    driver: String,
    dir: PathBuf,
    plugin: Option<Child>,
    dockerd: Option<Child>,
    /// Where the plugin runs.
    private: Option<PrivateState>,
}

impl DockerLab {
    fn start(netfwd: &Path, dir: &Path) -> Result<DockerLab> {
        let id = std::process::id();
        let prefix = format!("nfdk{id}");
        let mut lab = DockerLab {
            host: format!("{prefix}-h"),
            far: format!("{prefix}-f"),
            driver: format!("{prefix}-drv"),
            dir: dir.join("docker"),
            prefix,
            plugin: None,
            dockerd: None,
            private: None,
        };
        std::fs::create_dir_all(&lab.dir)?;
        for ns in [&lab.host, &lab.far] {
            output(&mut command("ip", &["netns", "add", ns]))?;
        }
        uplink_to(&lab.host, &lab.far)?;
        let private = PrivateState::new(&lab.dir.join("netfwd-state"))?;
        let mount_ns = format!("--mount={}", private.mount_ns());
        lab.private = Some(private);
        lab.plugin = Some(
            Command::new("nsenter")
                .arg(mount_ns)
                .arg(netfwd)
                .args(["--netns", &lab.host, "docker-plugin", "--name", &lab.driver])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(lab.dir.join("plugin.log"))?)
                .spawn()
                .context("starting netfwd docker-plugin")?,
        );
        let socket = PathBuf::from(format!("/run/docker/plugins/{}.sock", lab.driver));
        wait_for("netfwd's plugin socket", || socket.exists())?;
        let containerd = format!("{}-ctd", lab.prefix);
        lab.dockerd = Some(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", lab.host))
                .arg("dockerd")
                .arg(format!("--data-root={}", lab.dir.join("data").display()))
                .arg(format!("--exec-root={}", lab.dir.join("exec").display()))
                .arg(format!(
                    "--pidfile={}",
                    lab.dir.join("docker.pid").display()
                ))
                .arg(format!("--host=unix://{}", lab.socket().display()))
                .args(["--bridge=none", "--ip6tables=false"])
                .arg(format!("--containerd-namespace={containerd}"))
                .arg(format!("--containerd-plugins-namespace={containerd}-p"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(lab.dir.join("dockerd.log"))?)
                .spawn()
                .context("starting dockerd")?,
        );
        wait_for("dockerd", || lab.docker(&["info"]).is_ok())?;
        lab.import_image()?;
        Ok(lab)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// `docker <args>` against this dockerd, within [`LIMIT`].
    fn docker(&self, args: &[&str]) -> Result<String> {
        let mut full = vec![
            LIMIT.as_secs().to_string(),
            "docker".to_owned(),
            "-H".to_owned(),
            format!("unix://{}", self.socket().display()),
        ];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        output(&mut command("timeout", &full))
    }

    fn version(&self) -> Result<String> {
        Ok(self
            .docker(&["version", "-f", "{{.Server.Version}}"])?
            .trim()
            .to_owned())
    }

    /// The one image: busybox's `true`, imported from a root filesystem (no
    /// registry).
    fn import_image(&self) -> Result<()> {
        let rootfs = self.dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin"))?;
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).context("copying busybox")?;
        symlink("busybox", rootfs.join("bin/true"))?;
        let tar = self.dir.join("rootfs.tar");
        let (rootfs, tar) = (rootfs.display().to_string(), tar.display().to_string());
        output(&mut command("tar", &["-C", &rootfs, "-cf", &tar, "."]))?;
        self.docker(&["import", &tar, IMAGE]).map(drop)
    }
}

/// Waits up to [`LIMIT`] for `ready`.
fn wait_for(what: &str, ready: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + LIMIT;
    while !ready() {
        if Instant::now() >= deadline {
            bail!("{what} not ready in {} s", LIMIT.as_secs());
        }
        thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Stops `child` with SIGTERM, or SIGKILL after [`LIMIT`].
fn stop(child: Option<Child>) {
    let Some(mut child) = child else {
        return;
    };
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = signal::kill(Pid::from_raw(pid), signal::Signal::SIGTERM);
    }
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for DockerLab {
    fn drop(&mut self) {
        stop(self.dockerd.take());
        stop(self.plugin.take());
        drop(self.private.take());
        for ns in [&self.host, &self.far] {
            let _ = succeeds(&mut command("ip", &["netns", "del", ns]));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
