//! Running commands with a time limit: netfwd, tools, and tools inside a
//! namespace (through `nsenter --net`, never `ip netns exec`, which hides
//! /sys/fs/bpf).

use std::{
    ffi::OsStr,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use crate::netns::netns_path;

/// Time limit of one netfwd run.
pub const NETFWD_TIMEOUT: Duration = Duration::from_secs(60);
/// Time limit of one helper tool run (ip, nsenter, bpftool, …).
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// The netfwd binary: `$NETFWD_BIN`, or `<workspace>/target/release/netfwd`.
pub fn netfwd_bin() -> PathBuf {
    match std::env::var_os("NETFWD_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/netfwd"),
    }
}

/// Runs `cmd` with stdin closed, collecting stdout and stderr; kills it after
/// `limit` (the returned status is then the kill's, i.e. not success).
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    run_limited(cmd, None, limit)
}

/// Like [`run_with_timeout`], with `input` on stdin.
pub fn run_with_input(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    run_limited(cmd, Some(input), limit)
}

fn run_limited(cmd: &mut Command, input: Option<&[u8]>, limit: Duration) -> Output {
    let shown = show_command(cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => panic!("cannot start `{shown}`: {e}"),
    };
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        let input = input.to_vec();
        // A child that exits without reading must not block us.
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                match child.wait() {
                    Ok(status) => break status,
                    Err(e) => panic!("waiting for `{shown}`: {e}"),
                }
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for `{shown}`: {e}"),
        }
    };
    // A grandchild may keep a pipe open: do not wait for it forever.
    let grace = Duration::from_secs(2);
    let stdout = stdout.recv_timeout(grace).unwrap_or_default();
    let mut stderr = stderr.recv_timeout(grace).unwrap_or_default();
    if timed_out {
        stderr.extend_from_slice(format!("\n[killed after {limit:?}: `{shown}`]\n").as_bytes());
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

fn reader<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

fn show_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// A multi-line description of a finished command, for failure messages.
pub fn describe(what: &str, out: &Output) -> String {
    format!(
        "`{what}` exited with {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics with `what` and its output unless it succeeded.
pub fn assert_ok(what: &str, out: &Output) {
    assert!(out.status.success(), "{}", describe(what, out));
}

/// Runs a tool; panics with its output unless it succeeds. Returns stdout.
pub fn tool_ok<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let shown = show_command(&cmd);
    let out = run_with_timeout(&mut cmd, TOOL_TIMEOUT);
    assert_ok(&shown, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a tool and returns its output whatever its exit status.
pub fn tool<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_with_timeout(&mut cmd, TOOL_TIMEOUT)
}

/// `nsenter --net=/run/netns/<ns>`, to which the caller adds what to run
/// (after more namespaces to enter, if any): the one way into a namespace,
/// since `ip netns exec` remounts /sys and hides the real bpffs.
pub fn nsenter_net(ns: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns_path(ns).display()));
    cmd
}

/// Runs `args` inside namespace `ns` (network namespace only:
/// `nsenter --net=/run/netns/<ns>`). Returns its output whatever its status.
pub fn in_ns<S: AsRef<OsStr>>(ns: &str, args: &[S]) -> Output {
    let mut cmd = nsenter_net(ns);
    cmd.arg("--").args(args);
    run_with_timeout(&mut cmd, TOOL_TIMEOUT)
}

/// Like [`in_ns`], but panics unless the command succeeds; returns stdout.
pub fn in_ns_ok<S: AsRef<OsStr>>(ns: &str, args: &[S]) -> String {
    let out = in_ns(ns, args);
    let shown = format!(
        "nsenter --net={} {}",
        netns_path(ns).display(),
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert_ok(&shown, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `get()`'s stdout once it is `want` (a server starts after `docker run` or
/// `podman run -d` returns), for at most 30 s; what it printed last otherwise.
pub fn until_answer(want: &str, get: impl Fn() -> Output) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = String::from_utf8_lossy(&get().stdout).trim().to_owned();
        if got == want || Instant::now() >= deadline {
            return got;
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// Calls `attempt` until it gives `Some`, for at most `limit`; panics
/// naming `what` otherwise. Tests poll with this instead of sleeping a
/// guess.
pub fn poll<T>(what: &str, limit: Duration, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(done) = attempt() {
            return done;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// [`poll`] for a condition.
pub fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    poll(what, limit, || done().then_some(()));
}
