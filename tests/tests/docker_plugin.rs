//! The Docker plugin's socket, without dockerd: what reaches it cannot stop
//! it from serving, and its calls keep its records straight.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use std::{
    fs::OpenOptions,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use netfwd_tests::{STATE_DIR, Sandbox, docker::PluginAlone, in_ns_ok, internet::Internet};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{Value, json};

/// Docker ID `n` (below 16) of this test process: 64 hex digits, the first
/// six (netfwd's network name is `dk` and them) unique to it.
fn docker_id(n: u32) -> String {
    let unique = (std::process::id() % 0x10_0000) << 4 | n;
    format!("{unique:06x}{}", "0".repeat(58))
}

/// The plugin's record of a network or an endpoint (`kind`), removed on
/// drop: a failed test leaves none behind.
struct Record(PathBuf);

impl Record {
    fn of(kind: &str, id: &str) -> Record {
        Record(
            Path::new(STATE_DIR)
                .join("docker")
                .join(kind)
                .join(format!("{id}.json")),
        )
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A Docker network of the plugin in `sb`: its netfwd network goes with
/// the sandbox.
struct DockerNetwork {
    id: String,
    name: String,
    _record: Record,
}

impl DockerNetwork {
    fn new(sb: &Sandbox, n: u32) -> DockerNetwork {
        let id = docker_id(n);
        let name = format!("dk{}", &id[..6]);
        sb.owns_network(&name);
        DockerNetwork {
            _record: Record::of("networks", &id),
            id,
            name,
        }
    }

    fn create_body(&self, subnet: &str, gateway: &str) -> String {
        json!({
            "NetworkID": self.id,
            "Options": {},
            "IPv4Data": [{ "Pool": subnet, "Gateway": gateway }],
        })
        .to_string()
    }
}

/// A call that must answer 200.
fn ok(plugin: &PluginAlone, call: &str, body: &str) {
    let (status, answer) = plugin.call(call, body).unwrap();
    assert_eq!(status, 200, "{call}: {answer}");
}

#[test]
fn the_plugin_outlives_its_descriptors_running_out_and_a_held_network_lock() {
    let sb = Sandbox::new("dkfd");
    let _internet = Internet::new(&sb);
    // Room for a network's maps and programs (about 40 descriptors while
    // it is made), not for the idle connections.
    let mut plugin = PluginAlone::new(&sb, 128);

    // More idle connections than the plugin has descriptors.
    let idle: Vec<UnixStream> = (0..200)
        .map(|_| UnixStream::connect(plugin.socket()).unwrap())
        .collect();
    thread::sleep(Duration::from_secs(2));
    assert!(
        plugin.is_alive(),
        "the plugin exited with 200 idle connections"
    );
    drop(idle);
    let (status, body) = plugin.call("Plugin.Activate", "{}").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("NetworkDriver"), "{body}");

    // A CLI holds the network's lock while Docker creates it: the call
    // waits, and the plugin still answers what needs no lock.
    let network = DockerNetwork::new(&sb, 1);
    let lock_path = Path::new(STATE_DIR).join(format!("{}.lock", network.name));
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    let held = Flock::lock(lock_file, FlockArg::LockExclusive).unwrap();
    let create = network.create_body("10.93.0.0/24", "10.93.0.1/24");
    let created = thread::scope(|s| {
        let creating = s.spawn(|| plugin.call("NetworkDriver.CreateNetwork", &create));
        thread::sleep(Duration::from_millis(500));
        let asked = Instant::now();
        let (status, body) = plugin.call("NetworkDriver.GetCapabilities", "{}").unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "answered only after {:?}",
            asked.elapsed()
        );
        assert!(
            !creating.is_finished(),
            "CreateNetwork did not wait for the lock"
        );
        drop(held);
        creating.join().unwrap().unwrap()
    });
    assert_eq!(created.0, 200, "{}", created.1);
    let delete = json!({ "NetworkID": network.id }).to_string();
    ok(&plugin, "NetworkDriver.DeleteNetwork", &delete);
    assert!(plugin.is_alive(), "the plugin exited");
}

/// A second `ProgramExternalConnectivity` for an endpoint replaces the
/// first's ports, and `RevokeExternalConnectivity` withdraws every port.
#[test]
fn a_second_program_replaces_the_ports_and_revoke_withdraws_them_all() {
    let sb = Sandbox::new("dkprog");
    let _internet = Internet::new(&sb);
    // In the sandbox's own namespace: no port of the machine's is taken.
    let metrics = "127.0.0.1:9465";
    let plugin = PluginAlone::with_args(&sb, 1024, &["--metrics", metrics]);
    let network = DockerNetwork::new(&sb, 2);
    let endpoint_id = docker_id(3);
    let _endpoint_record = Record::of("endpoints", &endpoint_id);
    let endpoint = json!({ "NetworkID": network.id, "EndpointID": endpoint_id });
    let with = |extra: Value| {
        let mut body = endpoint.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body.to_string()
    };
    let program = |host_port: u16| {
        with(json!({ "Options": { "com.docker.network.portmap": [{
            "Proto": 6, "Port": 80, "HostIP": "", "HostPort": host_port, "HostPortEnd": host_port,
        }]}}))
    };
    ok(
        &plugin,
        "NetworkDriver.CreateNetwork",
        &network.create_body("10.94.0.0/24", "10.94.0.1/24"),
    );
    ok(
        &plugin,
        "NetworkDriver.CreateEndpoint",
        &with(json!({ "Interface": { "Address": "10.94.0.2/24" } })),
    );
    ok(
        &plugin,
        "NetworkDriver.Join",
        &with(json!({ "SandboxKey": "/var/run/docker/netns/none" })),
    );
    let published = || sb.network_status(&network.name)["published"].clone();
    ok(
        &plugin,
        "NetworkDriver.ProgramExternalConnectivity",
        &program(30071),
    );
    ok(
        &plugin,
        "NetworkDriver.ProgramExternalConnectivity",
        &program(30072),
    );
    let now = published();
    assert_eq!(now.as_array().map(Vec::len), Some(1), "{now:#}");
    assert_eq!(now[0]["host_port"], 30072, "{now:#}");
    // The plugin serves its networks' metrics, as the daemon does its own.
    let url = format!("http://{metrics}/metrics");
    let text = in_ns_ok(sb.host(), &["curl", "-sfS", "--max-time", "10", &url]);
    for line in [
        format!("netfwd_endpoints{{network=\"{}\"}} 1", network.name),
        format!("netfwd_published_ports{{network=\"{}\"}} 1", network.name),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    let endpoint = endpoint.to_string();
    ok(
        &plugin,
        "NetworkDriver.RevokeExternalConnectivity",
        &endpoint,
    );
    assert_eq!(published(), json!([]));
    ok(&plugin, "NetworkDriver.Leave", &endpoint);
    ok(&plugin, "NetworkDriver.DeleteEndpoint", &endpoint);
    let delete = json!({ "NetworkID": network.id }).to_string();
    ok(&plugin, "NetworkDriver.DeleteNetwork", &delete);
}
