//! `netfwd daemon` run in a sandbox.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{process::netfwd_bin, sandbox::Sandbox};

pub struct Daemon(Option<std::process::Child>);

/// Whether `status --json` (its output) shows networks whose endpoints,
/// uplink and LAN interface all have their program attached.
fn all_attached(status: &Output) -> bool {
    let Ok(status) = serde_json::from_slice::<Value>(&status.stdout) else {
        return false;
    };
    let attached = |i: &Value| i["program"].is_object();
    status["networks"].as_array().is_some_and(|networks| {
        !networks.is_empty()
            && networks.iter().all(|n| {
                n["endpoints"]
                    .as_array()
                    .is_some_and(|eps| eps.iter().all(attached))
                    && [&n["uplink"], &n["lan"]]
                        .into_iter()
                        .all(|i| i.is_null() || attached(i))
            })
    })
}

impl Daemon {
    /// Starts `netfwd --netns <host> daemon -c <config> <args…>` and waits
    /// for it to bring the network up.
    pub fn start(sb: &Sandbox, config: &Path, args: &[&str]) -> Daemon {
        let mut cmd = Command::new(netfwd_bin());
        cmd.arg("--netns")
            .arg(sb.host())
            .arg("daemon")
            .arg("-c")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut daemon = Daemon(Some(cmd.spawn().unwrap()));
        // Up, with its programs attached, before traffic is asked of it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !all_attached(&sb.netfwd(&["status", "--json"])) {
            assert!(daemon.running(), "the daemon exited while starting");
            assert!(
                Instant::now() < deadline,
                "the daemon brought no network up in 20 s"
            );
            thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    /// Still running (not exited on its own)?
    pub fn running(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The daemon's process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(std::process::Child::id)
    }

    /// SIGKILL: no chance to clean anything up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then a clean exit within 5 s, or a panic.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(status.success(), "daemon exited with {status}");
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            panic!("the daemon did not stop on SIGTERM");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}
