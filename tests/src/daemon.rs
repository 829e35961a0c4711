//! `netfwd daemon` run in a sandbox.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use crate::{
    process::{NETFWD_TIMEOUT, netfwd_bin},
    sandbox::Sandbox,
};

pub struct Daemon(Option<std::process::Child>);

/// What the daemon logs once its first maintenance pass is done.
const READY_LINE: &str = "ready: first maintenance pass done";

impl Daemon {
    /// Starts `netfwd --netns <host> daemon -c <config> <args…>` and waits
    /// for its ready line: the network up and one maintenance pass done.
    /// Its log goes on to the test's stderr.
    pub fn start(sb: &Sandbox, config: &Path, args: &[&str]) -> Daemon {
        let mut cmd = Command::new(netfwd_bin());
        cmd.arg("--netns")
            .arg(sb.host())
            .arg("daemon")
            .arg("-c")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let log = child.stderr.take().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(log).lines().map_while(Result::ok) {
                eprintln!("daemon: {line}");
                if line.contains(READY_LINE) {
                    let _ = ready_tx.send(());
                }
            }
        });
        let mut daemon = Daemon(Some(child));
        // As long as any netfwd command is given: its `up` verifies
        // programs, which a loaded machine makes slow.
        let deadline = Instant::now() + NETFWD_TIMEOUT;
        while ready_rx.recv_timeout(Duration::from_millis(100)).is_err() {
            assert!(daemon.running(), "the daemon exited while starting");
            assert!(
                Instant::now() < deadline,
                "the daemon was not ready in {NETFWD_TIMEOUT:?}"
            );
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
