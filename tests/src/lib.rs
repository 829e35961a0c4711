//! The lab for netfwd's privileged integration tests.
//!
//! Every test builds a [`Sandbox`]: its own "host" network namespace (with `lo`
//! up) in which netfwd runs through `netfwd --netns <host> …`, a private
//! directory for config files, and unique names for everything it makes. The
//! sandbox's `Drop` runs `netfwd down` for each network it handed out, deletes
//! every namespace it named and never panics, so a failing test still leaves
//! the machine as it found it.
//!
//! Rules the helpers keep: the real host's network is never touched (tools run
//! in a namespace through `nsenter --net=/run/netns/<ns>`, never through `ip
//! netns exec`, which hides /sys/fs/bpf); traffic only goes to addresses inside
//! namespaces a test made; every command and socket has a time limit.

// Tests report broken expectations by panicking; `unwrap` on a std lock or
// a thread join is as good as `expect` here.
#![allow(clippy::unwrap_used)]

use std::{
    cell::RefCell,
    ffi::OsStr,
    fmt::Write as _,
    fs::File,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

pub mod cgroup;
pub mod cni;
pub mod outside;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use aya::programs::{SchedClassifier, TcAttachType};
use nix::sched::{CloneFlags, setns};
use serde_json::Value;

/// Where netfwd keeps the pins of network `NET`: `BPF_PIN_ROOT/NET`.
pub const BPF_PIN_ROOT: &str = "/sys/fs/bpf/netfwd";
/// Where netfwd keeps the state of network `NET`: `STATE_DIR/NET.json`.
pub const STATE_DIR: &str = "/run/netfwd";
/// Time limit of one netfwd run.
pub const NETFWD_TIMEOUT: Duration = Duration::from_secs(60);
/// Time limit of one helper tool run (ip, nsenter, bpftool, …).
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(20);
/// Echo requests per ping.
pub const PING_COUNT: u64 = 3;
/// netfwd's exit code for bad input.
pub const EXIT_BAD_INPUT: i32 = 2;

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub(crate) fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// The netfwd binary: `$NETFWD_BIN`, or `<workspace>/target/release/netfwd`.
pub fn netfwd_bin() -> PathBuf {
    match std::env::var_os("NETFWD_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/netfwd"),
    }
}

/// The datapath mode the scenario tests run in: `NETFWD_TEST_MODE` (`tc`,
/// the default, or `xdp`); `cargo xtask test` runs them in both.
pub fn test_mode() -> &'static str {
    match std::env::var("NETFWD_TEST_MODE").as_deref() {
        Ok("xdp") => "xdp",
        _ => "tc",
    }
}

/// `[network]` of `text` with the test mode set, unless the text sets one.
fn with_test_mode(text: &str) -> String {
    if test_mode() == "tc" || text.contains("\nmode =") {
        return text.to_owned();
    }
    // At the end of the section, so the lines a test names keep their numbers.
    let Some(start) = text.find("[network]\n") else {
        return text.to_owned();
    };
    let end = text[start + 1..]
        .find("\n[")
        .map_or(text.len(), |i| start + 1 + i + 1);
    let mut out = text.to_owned();
    let line = if out[..end].ends_with('\n') { "" } else { "\n" };
    out.insert_str(end, &format!("{line}mode = \"xdp\"\n"));
    out
}

/// `/run/netns/<ns>`.
pub fn netns_path(ns: &str) -> PathBuf {
    Path::new("/run/netns").join(ns)
}

// ---------------------------------------------------------------------------
// Running commands with a time limit
// ---------------------------------------------------------------------------

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

/// Runs a tool; panics with its output unless it succeeds. Returns stdout.
pub fn tool_ok<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let shown = show_command(&cmd);
    let out = run_with_timeout(&mut cmd, TOOL_TIMEOUT);
    assert!(out.status.success(), "{}", describe(&shown, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a tool and returns its output whatever its exit status.
pub fn tool<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_with_timeout(&mut cmd, TOOL_TIMEOUT)
}

/// Runs `args` inside namespace `ns` (network namespace only:
/// `nsenter --net=/run/netns/<ns>`). Returns its output whatever its status.
pub fn in_ns<S: AsRef<OsStr>>(ns: &str, args: &[S]) -> Output {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns_path(ns).display()))
        .arg("--")
        .args(args);
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
    assert!(out.status.success(), "{}", describe(&shown, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------
// Namespaces, temp dirs, config files
// ---------------------------------------------------------------------------

/// Names of the namespaces `ip netns list` shows.
pub fn netns_list() -> Vec<String> {
    tool_ok("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Whether `ip netns` knows namespace `ns`.
pub fn netns_exists(ns: &str) -> bool {
    netns_list().iter().any(|n| n == ns)
}

/// Deletes namespace `ns` if it exists; reports (does not panic) on failure.
fn delete_netns_quietly(ns: &str) {
    let path = netns_path(ns);
    if std::fs::symlink_metadata(&path).is_err() {
        return;
    }
    let out = tool("ip", &["netns", "del", ns]);
    if !out.status.success() {
        eprintln!("cleanup: {}", describe(&format!("ip netns del {ns}"), &out));
    }
}

/// A network namespace made with `ip netns add`, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// `ip netns add <name>` and `ip -n <name> link set lo up`.
    pub fn create(name: &str) -> Netns {
        assert!(
            !netns_exists(name),
            "namespace {name} exists already: refusing to adopt it"
        );
        tool_ok("ip", &["netns", "add", name]);
        let ns = Netns {
            name: name.to_owned(),
        };
        tool_ok("ip", &["-n", name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        netns_path(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_netns_quietly(&self.name);
    }
}

/// A private directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "netfwd-tests-{}-{}-{tag}",
            std::process::id(),
            next_id()
        ));
        if let Err(e) = std::fs::create_dir(&path) {
            panic!("creating {}: {e}", path.display());
        }
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("cleanup: removing {}: {e}", self.path.display());
        }
    }
}

/// A regular file at `path` (e.g. a fake `/run/netns/<x>`), removed on drop.
pub struct FileGuard {
    path: PathBuf,
}

impl FileGuard {
    pub fn create(path: &Path, contents: &str) -> FileGuard {
        assert!(
            std::fs::symlink_metadata(path).is_err(),
            "{} exists already",
            path.display()
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, contents).unwrap();
        FileGuard {
            path: path.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            eprintln!("cleanup: removing {}: {e}", self.path.display());
        }
    }
}

/// One `[[endpoint]]` of a config.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    pub netns: String,
    pub ip: Option<String>,
}

/// A netfwd config, rendered to TOML by [`NetConfig::to_toml`].
#[derive(Clone, Debug)]
pub struct NetConfig {
    pub name: String,
    pub subnet: String,
    pub gateway: Option<String>,
    pub endpoints: Vec<EndpointConfig>,
}

impl NetConfig {
    pub fn new(name: &str, subnet: &str, gateway: Option<&str>) -> NetConfig {
        NetConfig {
            name: name.to_owned(),
            subnet: subnet.to_owned(),
            gateway: gateway.map(str::to_owned),
            endpoints: Vec::new(),
        }
    }

    /// Adds an endpoint in namespace `netns`, with address `ip` if given.
    pub fn endpoint(mut self, netns: &str, ip: Option<&str>) -> NetConfig {
        self.endpoints.push(EndpointConfig {
            netns: netns.to_owned(),
            ip: ip.map(str::to_owned),
        });
        self
    }

    pub fn to_toml(&self) -> String {
        let mut s = String::from("[network]\n");
        let _ = writeln!(s, "name = {:?}", self.name);
        let _ = writeln!(s, "subnet = {:?}", self.subnet);
        if let Some(gw) = &self.gateway {
            let _ = writeln!(s, "gateway = {gw:?}");
        }
        for ep in &self.endpoints {
            s.push_str("\n[[endpoint]]\n");
            let _ = writeln!(s, "netns = {:?}", ep.netns);
            if let Some(ip) = &ep.ip {
                let _ = writeln!(s, "ip = {ip:?}");
            }
        }
        s
    }
}

// ---------------------------------------------------------------------------
// A throwaway copy of netfwd's directories, for input that must touch nothing
// ---------------------------------------------------------------------------

/// A private mount namespace held by a sleeping process: every mount
/// read-only but its own bpffs on /sys/fs/bpf and its own tmpfs on /run. netfwd run in it ([`PrivateWorld::run`]) sees
/// only this copy, so a regression that removes what a bad name points at
/// can hurt nothing else. The test plants and inspects files in it through
/// [`PrivateWorld::path`] (`/proc/<pid>/root/…`). Everything in it goes with
/// the process when it is dropped. It runs in a network namespace of its
/// own, too: a regression must not reach the real host's interfaces either.
pub struct PrivateWorld {
    holder: std::process::Child,
    netns: Netns,
}

/// Run inside `unshare --mount --propagation private`: the copy, then a
/// line saying it is ready, then sleep.
const PRIVATE_WORLD_SETUP: &str = r#"set -e
for m in $(findmnt -rn -o TARGET); do
    # One that went meanwhile (another sandbox's namespace) needs nothing.
    mount -o remount,bind,ro "$m" 2>/dev/null || ! mountpoint -q "$m"
done
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs -o mode=0755 tmpfs /run
echo ready
exec sleep infinity"#;

impl PrivateWorld {
    pub fn new(tag: &str) -> PrivateWorld {
        let netns = Netns::create(&format!(
            "nft{}-{tag}{}-world",
            std::process::id(),
            next_id()
        ));
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(PRIVATE_WORLD_SETUP)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start unshare: {e}"));
        let mut ready = [0u8; 6];
        let read = holder.stdout.take().unwrap().read_exact(&mut ready);
        if read.is_err() || &ready != b"ready\n" {
            let _ = holder.kill();
            let out = holder.wait_with_output().unwrap();
            panic!("{}", describe("making a private mount namespace", &out));
        }
        PrivateWorld { holder, netns }
    }

    /// Where `inside` (an absolute path as netfwd sees it) is from here.
    pub fn path(&self, inside: &str) -> PathBuf {
        let inside = inside.strip_prefix('/').unwrap_or(inside);
        PathBuf::from(format!("/proc/{}/root", self.holder.id())).join(inside)
    }

    /// Runs `program args…` in the copy, with `vars` set and `stdin`.
    pub fn run<S: AsRef<OsStr>>(
        &self,
        program: &Path,
        args: &[S],
        vars: &[(&str, &str)],
        stdin: &[u8],
    ) -> Output {
        // nsenter opens both namespace files before it enters either.
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns.path().display()))
            .arg(format!("--mount=/proc/{}/ns/mnt", self.holder.id()))
            .arg("--")
            .arg(program)
            .args(args)
            .envs(vars.iter().copied())
            .env("RUST_BACKTRACE", "0");
        run_with_input(&mut cmd, stdin, NETFWD_TIMEOUT)
    }

    /// `netfwd args…` in the copy.
    pub fn netfwd<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.run(&netfwd_bin(), args, &[], b"")
    }

    /// Every path under `inside` in the copy, symbolic links not followed,
    /// with what each is: a snapshot to compare before and after.
    pub fn tree(&self, inside: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let shown = path
                    .strip_prefix(base)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => {
                        out.push(format!("{shown}/"));
                        walk(&path, base, out);
                    }
                    Ok(t) if t.is_symlink() => {
                        let target = std::fs::read_link(&path).unwrap_or_default();
                        out.push(format!("{shown} -> {}", target.display()));
                    }
                    _ => out.push(shown),
                }
            }
        }
        let base = self.path("/");
        let mut out = Vec::new();
        walk(&self.path(inside), &base, &mut out);
        out.sort();
        out
    }
}

impl Drop for PrivateWorld {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

// ---------------------------------------------------------------------------
// The sandbox
// ---------------------------------------------------------------------------

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
        self.networks.borrow_mut().push(name.clone());
        name
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
        assert!(out.status.success(), "{}", describe(&shown, &out));
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
            &["ip", "-j", "link", "show", outside::UPLINK],
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

/// `netfwd daemon` in the sandbox host, stopped with SIGTERM.
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

// ---------------------------------------------------------------------------
// Traffic
// ---------------------------------------------------------------------------

/// Echo requests sent and replies received by one ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingResult {
    pub transmitted: u64,
    pub received: u64,
}

/// `ping -c 3 -W 1 -i 0.2 <ip>` from namespace `from_ns`.
pub fn ping_counts(from_ns: &str, ip: &str) -> (PingResult, Output) {
    let count = PING_COUNT.to_string();
    let out = in_ns(
        from_ns,
        &["ping", "-n", "-q", "-c", &count, "-W", "1", "-i", "0.2", ip],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // "3 packets transmitted, 3 received, 0% packet loss, time 402ms"
    let mut result = PingResult {
        transmitted: 0,
        received: 0,
    };
    for line in text.lines().filter(|l| l.contains("packets transmitted")) {
        let numbers: Vec<u64> = line
            .split(',')
            .filter_map(|part| part.split_whitespace().next()?.parse().ok())
            .collect();
        if numbers.len() >= 2 {
            result = PingResult {
                transmitted: numbers[0],
                received: numbers[1],
            };
        }
    }
    (result, out)
}

/// Whether every echo request of a `ping -c 3 -W 1` from `from_ns` to `ip` was
/// answered.
pub fn ping(from_ns: &str, ip: &str) -> bool {
    let (r, out) = ping_counts(from_ns, ip);
    let ok = out.status.success() && r.transmitted == PING_COUNT && r.received == PING_COUNT;
    if !ok {
        eprintln!("{}", describe(&format!("[{from_ns}] ping {ip}"), &out));
    }
    ok
}

/// Asserts that `ping` from `from_ns` to `ip` gets every reply.
pub fn assert_ping(from_ns: &str, ip: &str) {
    assert!(ping(from_ns, ip), "ping from {from_ns} to {ip} failed");
}

/// Runs a socket call again when a signal interrupts it: with a timeout
/// set, Linux fails a blocked socket call with EINTR instead of restarting
/// it. The test process does catch a signal now and then (its only handler
/// beyond Rust's own is glibc's internal signal 33): the soak's minute-long
/// echo streams died of it.
pub fn retry_eintr<T>(mut call: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            done => return done,
        }
    }
}

/// Moves the calling thread into network namespace `ns`.
pub fn enter_netns(ns: &str) -> Result<()> {
    let path = netns_path(ns);
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns into {}", path.display()))
}

const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// A TCP exchange: a server in `to_ns` listens on `to_ip:port` and echoes one
/// message; a client in `from_ns` connects, sends `payload`, reads the echo and
/// compares. Each side runs in its own thread that `setns`es into its
/// namespace, so the test thread never changes namespace.
pub fn tcp_exchange(
    from_ns: &str,
    to_ns: &str,
    to_ip: &str,
    port: u16,
    payload: &[u8],
) -> Result<()> {
    let ip: Ipv4Addr = to_ip.parse().with_context(|| format!("address {to_ip}"))?;
    let addr = SocketAddr::from((ip, port));
    let expected_len = payload.len();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();

    let server_ns = to_ns.to_owned();
    let server = thread::spawn(move || -> Result<Vec<u8>> {
        let listener = enter_netns(&server_ns)
            .and_then(|()| {
                TcpListener::bind(addr).with_context(|| format!("[{server_ns}] bind {addr}"))
            })
            .and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            });
        let listener = match listener {
            Ok(l) => {
                let _ = ready_tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                return Err(e);
            }
        };
        let deadline = Instant::now() + TCP_TIMEOUT * 2;
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        bail!(
                            "[{server_ns}] no connection on {addr} within {:?}",
                            TCP_TIMEOUT * 2
                        );
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e).context(format!("[{server_ns}] accept on {addr}")),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(TCP_TIMEOUT))?;
        stream.set_write_timeout(Some(TCP_TIMEOUT))?;
        let mut got = vec![0u8; expected_len];
        stream
            .read_exact(&mut got)
            .with_context(|| format!("[{server_ns}] reading {expected_len} bytes"))?;
        stream
            .write_all(&got)
            .with_context(|| format!("[{server_ns}] echoing"))?;
        stream.flush()?;
        // Wait for the client to close, so the echo is not cut off by a reset.
        let mut rest = [0u8; 1];
        let _ = retry_eintr(|| stream.read(&mut rest));
        Ok(got)
    });

    let ready = ready_rx
        .recv_timeout(TCP_TIMEOUT)
        .map_err(|_| anyhow!("server in {to_ns} did not start"))
        .and_then(|r| r);
    let client_result = match ready {
        Err(e) => Err(e),
        Ok(()) => {
            let client_ns = from_ns.to_owned();
            let payload = payload.to_vec();
            let client = thread::spawn(move || -> Result<Vec<u8>> {
                enter_netns(&client_ns)?;
                let mut stream = TcpStream::connect_timeout(&addr, TCP_TIMEOUT)
                    .with_context(|| format!("[{client_ns}] connect to {addr}"))?;
                stream.set_read_timeout(Some(TCP_TIMEOUT))?;
                stream.set_write_timeout(Some(TCP_TIMEOUT))?;
                stream
                    .write_all(&payload)
                    .with_context(|| format!("[{client_ns}] sending to {addr}"))?;
                let mut echo = vec![0u8; payload.len()];
                stream
                    .read_exact(&mut echo)
                    .with_context(|| format!("[{client_ns}] reading the echo from {addr}"))?;
                Ok(echo)
            });
            client
                .join()
                .map_err(|_| anyhow!("client thread panicked"))
                .and_then(|r| r)
        }
    };
    let server_result = server
        .join()
        .map_err(|_| anyhow!("server thread panicked"))
        .and_then(|r| r);
    let echo = client_result.context(format!("TCP {from_ns} -> {to_ns} {addr}"))?;
    let received = server_result.context(format!("TCP {from_ns} -> {to_ns} {addr}"))?;
    ensure!(
        received == payload,
        "TCP {from_ns} -> {addr}: server received {} bytes that differ from the {} sent",
        received.len(),
        payload.len()
    );
    ensure!(
        echo == payload,
        "TCP {from_ns} -> {addr}: echo differs from what was sent"
    );
    Ok(())
}

/// A payload of `len` bytes that is not all one value (so a corrupted or
/// truncated copy shows).
pub fn payload(tag: &str, len: usize) -> Vec<u8> {
    let seed = tag.as_bytes();
    (0..len)
        .map(|i| seed[i % seed.len().max(1)].wrapping_add((i / 7) as u8))
        .collect()
}

// ---------------------------------------------------------------------------
// Status and counters
// ---------------------------------------------------------------------------

/// The endpoints array of a network's status.
pub fn endpoints(network: &Value) -> &Vec<Value> {
    network["endpoints"]
        .as_array()
        .unwrap_or_else(|| panic!("no endpoints array in {network:#}"))
}

/// The endpoint of `network` in namespace `netns`.
pub fn endpoint<'a>(network: &'a Value, netns: &str) -> &'a Value {
    endpoints(network)
        .iter()
        .find(|e| e["netns"] == netns)
        .unwrap_or_else(|| panic!("no endpoint in {netns} in {network:#}"))
}

/// Packets the endpoint in `netns` had dropped under `reason`.
pub fn drops(network: &Value, netns: &str, reason: &str) -> u64 {
    let ep = endpoint(network, netns);
    ep["counters"]["drops"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("no drop reason {reason} for {netns}: {ep:#}"))
}

/// Counter `field` of the endpoint in `netns`.
pub fn counters(network: &Value, netns: &str, field: &str) -> u64 {
    let ep = endpoint(network, netns);
    ep["counters"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {field} for {netns}: {ep:#}"))
}

/// Sum of counter `field` over every endpoint of `network`.
pub fn sum_counters(network: &Value, field: &str) -> u64 {
    endpoints(network)
        .iter()
        .map(|ep| {
            ep["counters"][field]
                .as_u64()
                .unwrap_or_else(|| panic!("no counter {field}: {ep:#}"))
        })
        .sum()
}

/// A copy of `network` without the counters of its endpoints.
pub fn without_counters(network: &Value) -> Value {
    let mut v = network.clone();
    if let Some(eps) = v["endpoints"].as_array_mut() {
        for ep in eps {
            if let Some(obj) = ep.as_object_mut() {
                obj.remove("counters");
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------
// Host facts and assertions
// ---------------------------------------------------------------------------

/// Names of the links of namespace `ns` (`ip -n <ns> -j link show`).
pub fn link_names(ns: &str) -> Vec<String> {
    let text = tool_ok("ip", &["-n", ns, "-j", "link", "show"]);
    parse_ifnames(&text)
}

fn parse_ifnames(json: &str) -> Vec<String> {
    if json.trim().is_empty() {
        return Vec::new();
    }
    let v: Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("ip -j printed no JSON ({e}): {json}"));
    v.as_array()
        .map(|links| {
            links
                .iter()
                .filter_map(|l| l["ifname"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether namespace `ns` has a link named `ifname`.
pub fn has_link(ns: &str, ifname: &str) -> bool {
    link_names(ns).iter().any(|n| n == ifname)
}

/// The IPv4 addresses (`a.b.c.d/len`) of `dev` in namespace `ns`.
pub fn ipv4_addrs(ns: &str, dev: &str) -> Vec<String> {
    let text = tool_ok("ip", &["-n", ns, "-j", "-4", "addr", "show", "dev", dev]);
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut addrs = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let (Some(local), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                addrs.push(format!("{local}/{len}"));
            }
        }
    }
    addrs
}

/// The TCX attachments in namespace `ns`, one `ifname ingress|egress prog
/// <id> <name>` line each. Asked of the kernel with BPF_PROG_QUERY from a
/// thread inside `ns` (the bpftool here predates TCX in `bpftool net`).
pub fn tcx_attachments(ns: &str) -> Vec<String> {
    let ifnames = link_names(ns);
    let ns = ns.to_owned();
    thread::spawn(move || {
        enter_netns(&ns).unwrap_or_else(|e| panic!("{e:#}"));
        let mut lines = Vec::new();
        for ifname in &ifnames {
            for (dir, attach) in [
                ("ingress", TcAttachType::Ingress),
                ("egress", TcAttachType::Egress),
            ] {
                let (_, progs) = SchedClassifier::query_tcx(ifname, attach)
                    .unwrap_or_else(|e| panic!("querying TCX on {ifname} in {ns}: {e}"));
                for p in progs {
                    let name = p.name_as_str().unwrap_or("?");
                    lines.push(format!("{ifname} {dir} prog {} {name}", p.id()));
                }
            }
        }
        lines
    })
    .join()
    .unwrap()
}

/// Asserts that the sandbox host has no bridge device, no iptables rule and
/// no nftables ruleset.
pub fn assert_no_bridge_and_no_rules(host: &str) {
    let bridges = parse_ifnames(&tool_ok(
        "ip",
        &["-n", host, "-j", "link", "show", "type", "bridge"],
    ));
    assert!(bridges.is_empty(), "bridges in {host}: {bridges:?}");

    let save = in_ns_ok(host, &["iptables-save"]);
    let rules: Vec<&str> = save
        .lines()
        .map(str::trim)
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with('#')
                || l.starts_with('*')
                || l.starts_with(':')
                || *l == "COMMIT")
        })
        .collect();
    assert!(
        rules.is_empty(),
        "iptables rules in {host}: {rules:#?}\n{save}"
    );

    let ruleset = in_ns_ok(host, &["nft", "list", "ruleset"]);
    assert!(
        ruleset.trim().is_empty(),
        "nftables ruleset in {host}:\n{ruleset}"
    );
}

/// Host-side link names of network `net`: `nf<net>-*` (and `np<net>-*`, the
/// name an endpoint's end may carry before it moves into its namespace).
pub fn network_links(host: &str, net: &str) -> Vec<String> {
    let prefixes = [format!("nf{net}-"), format!("np{net}-")];
    link_names(host)
        .into_iter()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .collect()
}

/// Asserts that nothing of network `net` is left: none of `namespaces`
/// exists, no `nf<net>-*` link in `host`, no pin dir, no state file, and no
/// TCX attachment in `host`.
pub fn assert_nothing_left(host: &str, net: &str, namespaces: &[&str]) {
    assert_nothing_of_network(host, net, namespaces);
    let tcx = tcx_attachments(host);
    assert!(tcx.is_empty(), "TCX attachments left in {host}: {tcx:#?}");
}

/// Like [`assert_nothing_left`] but without the TCX check, for a host that
/// holds another network.
pub fn assert_nothing_of_network(host: &str, net: &str, namespaces: &[&str]) {
    let list = netns_list();
    let left: Vec<&&str> = namespaces
        .iter()
        .filter(|ns| list.iter().any(|n| n == **ns))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    for ns in namespaces {
        assert!(
            std::fs::symlink_metadata(netns_path(ns)).is_err(),
            "{} left",
            netns_path(ns).display()
        );
    }
    let links = network_links(host, net);
    assert!(links.is_empty(), "links of {net} left in {host}: {links:?}");
    let pins = Path::new(BPF_PIN_ROOT).join(net);
    assert!(!pins.exists(), "{} left", pins.display());
    let state = Path::new(STATE_DIR).join(format!("{net}.json"));
    assert!(!state.exists(), "{} left", state.display());
}

/// Asserts that a netfwd run failed on bad input: exit code 2 and exactly one
/// stderr line, starting `netfwd: error:` and containing `field`. Returns
/// that line.
pub fn assert_bad_input(out: &Output, field: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(EXIT_BAD_INPUT),
        "expected exit code {EXIT_BAD_INPUT}\n{}",
        describe("netfwd", out)
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got:\n{stderr}");
    let line = lines[0];
    assert!(
        line.starts_with("netfwd: error:"),
        "stderr line does not start with `netfwd: error:`: {line}"
    );
    assert!(
        line.contains(field),
        "stderr line does not name {field}: {line}"
    );
    line.to_owned()
}

// ---------------------------------------------------------------------------
// Forged frames and kernel counters
// ---------------------------------------------------------------------------

/// Sends the frames of scapy expression `frames` (a frame or a list) out of
/// `iface` in `ns`, each `count` times, and returns how many left.
pub fn scapy_sendp(ns: &str, iface: &str, frames: &str, count: u32) -> u64 {
    scapy_sendp_on(&[], ns, iface, frames, count)
}

/// As `scapy_sendp`, run under `prefix` (e.g. `taskset -c 0`).
pub fn scapy_sendp_on(prefix: &[&str], ns: &str, iface: &str, frames: &str, count: u32) -> u64 {
    let script = format!(
        "from scapy.all import *\nf = {frames}\nf = f if isinstance(f, list) else [f]\n\
         sendp(f, iface='{iface}', count={count}, verbose=0)\nprint(len(f) * {count})\n"
    );
    // Debian's python3-scapy is for the system interpreter.
    let mut args = prefix.to_vec();
    args.extend(["/usr/bin/python3", "-c", &script]);
    in_ns_ok(ns, &args).trim().parse().unwrap()
}

/// Runs the calling thread on CPU 0 only (per-CPU datapath state, such as
/// early drop's ring, is then the one the test filled).
pub fn stay_on_cpu0() {
    let mut cpus = nix::sched::CpuSet::new();
    cpus.set(0).unwrap();
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus).unwrap();
}

/// Counter `field` of group `group` (`Ip`, `Icmp`, `Udp`, …) of `ns`'s
/// /proc/net/snmp.
pub fn snmp_counter(ns: &str, group: &str, field: &str) -> u64 {
    let snmp = in_ns_ok(ns, &["cat", "/proc/net/snmp"]);
    let prefix = format!("{group}:");
    let mut lines = snmp.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == field)
        .unwrap_or_else(|| panic!("no {group} {field} in /proc/net/snmp"));
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_renders_to_toml() {
        let cfg = NetConfig::new("demo", "192.168.28.0/24", Some("192.168.28.5"))
            .endpoint("ns1", Some("192.168.28.1"))
            .endpoint("ns2", None);
        assert_eq!(
            cfg.to_toml(),
            "[network]\nname = \"demo\"\nsubnet = \"192.168.28.0/24\"\ngateway = \"192.168.28.5\"\n\
             \n[[endpoint]]\nnetns = \"ns1\"\nip = \"192.168.28.1\"\n\
             \n[[endpoint]]\nnetns = \"ns2\"\n"
        );
    }

    #[test]
    fn ifnames_parse_from_ip_json() {
        assert!(parse_ifnames("").is_empty());
        assert!(parse_ifnames("[]").is_empty());
        assert_eq!(
            parse_ifnames(r#"[{"ifindex":1,"ifname":"lo"},{"ifindex":2,"ifname":"nfx-1"}]"#),
            ["lo", "nfx-1"]
        );
    }
}
