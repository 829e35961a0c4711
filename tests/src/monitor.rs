//! `netfwd monitor --json` run in a sandbox: its JSON lines kept as they
//! come, to be waited for with a deadline.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use netfwd::commands::monitor::LISTENING;
use serde_json::Value;

use crate::{
    process::{NETFWD_TIMEOUT, netfwd_bin},
    sandbox::Sandbox,
};

/// A `netfwd monitor --json` child; killed on drop (its events then stop
/// on their own within the switch's deadline).
pub struct Monitor {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

/// Keeps every line of `from` with `keep`.
fn collect<R: std::io::Read + Send + 'static>(from: R, keep: impl Fn(String) + Send + 'static) {
    thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            keep(line);
        }
    });
}

impl Monitor {
    /// Starts `netfwd --netns <host> monitor --json <args…>` and waits until
    /// its events are on.
    pub fn start(sb: &Sandbox, args: &[&str]) -> Monitor {
        let mut child = Command::new(netfwd_bin())
            .arg("--netns")
            .arg(sb.host())
            .args(["monitor", "--json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let kept = lines.clone();
        collect(child.stdout.take().unwrap(), move |line| {
            eprintln!("monitor event: {line}");
            let value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("monitor printed {line:?}, not JSON: {e}"));
            kept.lock().unwrap().push(value);
        });
        let kept = stderr.clone();
        collect(child.stderr.take().unwrap(), move |line| {
            eprintln!("monitor: {line}");
            let mut kept = kept.lock().unwrap();
            kept.push_str(&line);
            kept.push('\n');
        });
        let mut monitor = Monitor {
            child: Some(child),
            lines,
            stderr,
        };
        crate::poll("the monitor listening", NETFWD_TIMEOUT, || {
            assert!(monitor.running(), "the monitor exited before listening");
            monitor
                .stderr
                .lock()
                .unwrap()
                .contains(LISTENING)
                .then_some(())
        });
        monitor
    }

    /// The lines printed so far that `keep` keeps.
    pub fn lines(&self, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| keep(l))
            .cloned()
            .collect()
    }

    /// Waits up to `limit` for `count` lines that `keep` keeps.
    pub fn wait_for(
        &self,
        what: &str,
        count: usize,
        limit: Duration,
        keep: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        crate::poll(what, limit, || {
            let lines = self.lines(&keep);
            (lines.len() >= count).then_some(lines)
        })
    }

    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM; how it exited, within netfwd's time limit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the monitor was stopped already");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        crate::poll("the monitor's exit", NETFWD_TIMEOUT, || {
            child.try_wait().unwrap()
        })
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
