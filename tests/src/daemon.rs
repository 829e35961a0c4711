//! `netfwd daemon` run in a sandbox.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread,
};

use crate::{
    process::{NETFWD_TIMEOUT, netfwd_bin},
    sandbox::Sandbox,
};

/// A `netfwd daemon` child, its log kept to wait for its lines (and shown
/// on the test's stderr); killed on drop.
pub struct Daemon {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

/// What the daemon logs once its first maintenance pass is done.
const READY_LINE: &str = "ready: first maintenance pass done";

impl Daemon {
    /// Starts `netfwd --netns <host> daemon -c <config> <args…>` and waits
    /// for its ready line: the network up and one maintenance pass done.
    pub fn start(sb: &Sandbox, config: &Path, args: &[&str]) -> Daemon {
        let mut daemon = Daemon::spawn(sb, config, args);
        daemon.wait_until_ready();
        daemon
    }

    /// Waits for its ready line.
    pub fn wait_until_ready(&mut self) {
        self.wait_for(READY_LINE);
    }

    /// The lines of its log so far that contain `text`.
    pub fn lines_with(&self, text: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .lines()
            .filter(|l| l.contains(text))
            .map(str::to_owned)
            .collect()
    }

    /// Starts it and returns at once.
    pub fn spawn(sb: &Sandbox, config: &Path, args: &[&str]) -> Daemon {
        let mut child = Command::new(netfwd_bin())
            .arg("--netns")
            .arg(sb.host())
            .arg("daemon")
            .arg("-c")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let kept = log.clone();
        let host = sb.host().to_owned();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("daemon {host}: {line}");
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        Daemon {
            child: Some(child),
            log,
        }
    }

    /// Waits for a line of its log containing `text`, as long as any netfwd
    /// command is given (its start-up `up` verifies programs, which a
    /// loaded machine makes slow); panics if it exits first.
    pub fn wait_for(&mut self, text: &str) {
        let what = format!("the daemon's log line {text:?}");
        crate::poll(&what, NETFWD_TIMEOUT, || {
            if self.log.lock().unwrap().contains(text) {
                return Some(());
            }
            assert!(self.running(), "the daemon exited while {what} was awaited");
            None
        });
    }

    /// Still running (not exited on its own)?
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The daemon's process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no chance to clean anything up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; how it exited, within netfwd's time limit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the daemon was stopped already");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        crate::poll("the daemon's exit", NETFWD_TIMEOUT, || {
            child.try_wait().unwrap()
        })
    }

    /// SIGTERM, and a clean exit.
    pub fn stop(&mut self) {
        let status = self.terminate();
        assert!(status.success(), "daemon exited with {status}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}
