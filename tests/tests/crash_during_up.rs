//! `down` works after a crash half-way through `up` (docs/operations.md):
//! `netfwd up` is killed with SIGKILL as soon as each step of its work shows
//! (its state written, the first endpoint's namespace made, a host veth
//! made, its pins made, an endpoint's program attached, the uplink's program
//! attached) and at fixed times after it starts; each time, `down --name`
//! exits 0 and leaves nothing.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use netfwd_tests::{
    BPF_PIN_ROOT, NetConfig, STATE_DIR, Sandbox, assert_nothing_left, assert_ok,
    internet::{Internet, UPLINK},
    netfwd_bin, netns_path, network_links,
};

const SUBNET: &str = "10.61.0.0/24";
/// Endpoints per network: enough that `up` is still at work after the
/// first one shows.
const ENDPOINTS: usize = 4;

/// What shows that `up` has come to a step, asked of the machine as `up`
/// runs.
enum Step {
    StateWritten,
    FirstNetnsMade,
    HostVethMade,
    PinsMade,
    EndpointProgramAttached,
    UplinkProgramAttached,
    /// Not a step: a fixed time after `up` started.
    After(Duration),
}

impl Step {
    fn reached(&self, sb: &Sandbox, net: &str, first_ns: &str, started: Instant) -> bool {
        let pins = Path::new(BPF_PIN_ROOT).join(net);
        match self {
            Step::StateWritten => Path::new(STATE_DIR).join(format!("{net}.json")).exists(),
            Step::FirstNetnsMade => netns_path(first_ns).exists(),
            Step::HostVethMade => !network_links(sb.host(), net).is_empty(),
            Step::PinsMade => pins.exists(),
            Step::EndpointProgramAttached => pinned_links(&pins).iter().any(|l| l != UPLINK),
            Step::UplinkProgramAttached => pinned_links(&pins).iter().any(|l| l == UPLINK),
            Step::After(t) => started.elapsed() >= *t,
        }
    }
}

/// The interfaces whose TCX link is pinned under `pins`.
fn pinned_links(pins: &Path) -> Vec<String> {
    std::fs::read_dir(pins.join("links"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `netfwd up -c <config>` in `sb`'s host, kills it with SIGKILL as
/// soon as `step` shows, and asserts it was killed before it finished.
fn kill_up_at(sb: &Sandbox, config: &PathBuf, net: &str, first_ns: &str, step: &Step) {
    let mut up = Command::new(netfwd_bin())
        .arg("--netns")
        .arg(sb.host())
        .arg("up")
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    while !step.reached(sb, net, first_ns, started) {
        if let Some(status) = up.try_wait().unwrap() {
            panic!("`up` exited ({status}) before the step was seen");
        }
        assert!(Instant::now() < deadline, "the step was not seen in 30 s");
        thread::sleep(Duration::from_millis(1));
    }
    up.kill().unwrap();
    let status = up.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "`up` finished ({status}) before it was killed"
    );
}

/// For each step, a new network whose `up` is killed at that step; `down`
/// must then exit 0 and leave nothing: no namespace, veth, pin, state or
/// TCX attachment (the uplink's included).
#[test]
fn down_leaves_nothing_after_up_is_killed_at_each_step() {
    let sb = Sandbox::new("crashup");
    let _internet = Internet::new(&sb);
    let steps = [
        ("state written", Step::StateWritten),
        ("first namespace made", Step::FirstNetnsMade),
        ("a host veth made", Step::HostVethMade),
        ("pins made", Step::PinsMade),
        (
            "an endpoint's program attached",
            Step::EndpointProgramAttached,
        ),
        ("the uplink's program attached", Step::UplinkProgramAttached),
        ("10 ms in", Step::After(Duration::from_millis(10))),
        ("500 ms in", Step::After(Duration::from_millis(500))),
    ];
    for (i, (what, step)) in steps.iter().enumerate() {
        let net = sb.net_name();
        let eps: Vec<String> = (0..ENDPOINTS)
            .map(|e| sb.ns(&format!("s{i}e{e}")))
            .collect();
        let uplinked = NetConfig::new(&net, SUBNET, None).uplink(UPLINK);
        let cfg = eps.iter().fold(uplinked, |cfg, ep| cfg.endpoint(ep, None));
        let config = sb.write_config(&cfg.to_toml());
        kill_up_at(&sb, &config, &net, &eps[0], step);
        let out = sb.netfwd(&["down", "--name", &net]);
        assert_ok(&format!("down after `up` was killed at {what}"), &out);
        let eps: Vec<&str> = eps.iter().map(String::as_str).collect();
        assert_nothing_left(sb.host(), &net, &eps);
    }
}
