//! Network names are paths (`/sys/fs/bpf/netfwd/<net>`, `/run/netfwd/<net>.json`)
//! and interface prefixes (`nf<net>-`): a bad one, from any input, exits 2
//! and touches nothing; files netfwd keeps that are symbolic links, or name
//! no network, are never followed or used.
//!
//! Every run here is inside a [`PrivateWorld`]: a private mount namespace
//! with its own bpffs and /run (and the root read-only), so a regression can
//! only hurt that throwaway copy. A bad name is refused before anything is
//! made, whatever the mode: all but the symlinked-directory test run in the
//! TC pass only (`xtask/src/xdp_pass.rs`).

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use std::path::PathBuf;

use netfwd_common::names::LINKS_DIR;
use netfwd_tests::{
    BPF_PIN_ROOT, PrivateWorld, STATE_DIR, TempDir, assert_bad_input, cni::cni_bin, describe,
};

/// Names that are no network name; several point out of the directories.
const BAD_NAMES: &[&str] = &[
    "",
    ".",
    "..",
    "/",
    "../x",
    "../../etc",
    "../../../../etc",
    "x/..",
    "a/b",
    "other/links",
    "a.b",
    "Demo",
    "toolongnm",
    "x y",
];

/// A world with decoys planted where a bad name would reach: another
/// network's pins and state, a file of someone else's in /run, a state file
/// that is a symbolic link to a file outside.
struct Decoys {
    world: PrivateWorld,
    outside: TempDir,
}

impl Decoys {
    fn plant(tag: &str) -> Decoys {
        let world = PrivateWorld::new(tag);
        let outside = TempDir::new(tag);
        std::fs::write(outside.path().join("decoy"), "keep me").unwrap();
        for dir in [
            &format!("{BPF_PIN_ROOT}/other/{LINKS_DIR}"),
            STATE_DIR,
            "/run/else",
        ] {
            std::fs::create_dir_all(world.path(dir)).unwrap();
        }
        std::fs::write(world.path("/run/else/file"), "keep me").unwrap();
        std::fs::write(world.path(&format!("{STATE_DIR}/other.json")), "{}").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("decoy"),
            world.path(&format!("{STATE_DIR}/x.json")),
        )
        .unwrap();
        Decoys { world, outside }
    }

    fn decoy(&self) -> PathBuf {
        self.outside.path().join("decoy")
    }

    /// What the world and the outside hold now.
    fn snapshot(&self) -> (Vec<String>, Vec<String>, String) {
        (
            self.world.tree("/sys/fs/bpf"),
            self.world.tree("/run"),
            std::fs::read_to_string(self.decoy()).unwrap_or_default(),
        )
    }
}

#[test]
fn bad_names_on_the_command_line_exit_2_and_touch_nothing() {
    let d = Decoys::plant("bncli");
    let before = d.snapshot();
    for name in BAD_NAMES {
        let commands: [Vec<&str>; 8] = [
            vec!["down", "--name", name],
            vec!["status", "--name", name],
            vec!["stats", "--name", name, "--json"],
            vec!["nat", "list", "--name", name],
            vec!["attach", "--name", name, "--pid", "1"],
            vec!["detach", "--name", name, "--ip", "192.0.2.7"],
            vec![
                "publish",
                "--name",
                name,
                "--proto",
                "tcp",
                "--host-port",
                "8080",
                "--endpoint",
                "192.0.2.7",
                "--port",
                "80",
            ],
            vec![
                "unpublish",
                "--name",
                name,
                "--proto",
                "tcp",
                "--host-port",
                "8080",
            ],
        ];
        for args in commands {
            let out = d.world.netfwd(&args);
            assert_bad_input(&out, "--name");
            assert_eq!(before, d.snapshot(), "netfwd {args:?} changed something");
        }
    }
    assert_eq!(std::fs::read_to_string(d.decoy()).unwrap(), "keep me");
}

#[test]
fn bad_names_in_a_config_exit_2_and_touch_nothing() {
    let d = Decoys::plant("bncfg");
    let before = d.snapshot();
    for name in BAD_NAMES {
        let quoted = serde_json::to_string(name).unwrap();
        let configs = [
            (
                format!("[network]\nname = {quoted}\nsubnet = \"10.91.0.0/24\"\n"),
                "network.name",
            ),
            (
                format!(
                    "[network]\nname = \"good\"\nsubnet = \"10.91.0.0/24\"\n[[allow]]\nnetwork = {quoted}\n"
                ),
                "allow[0].network",
            ),
        ];
        for (text, field) in configs {
            let path = d.outside.path().join("net.toml");
            std::fs::write(&path, &text).unwrap();
            let path = path.to_str().unwrap();
            for command in ["up", "down"] {
                let out = d.world.netfwd(&[command, "-c", path]);
                assert_bad_input(&out, field);
                assert_eq!(
                    before,
                    d.snapshot(),
                    "{command} with {text:?} changed something"
                );
            }
        }
    }
}

#[test]
fn bad_names_in_a_cni_config_are_an_error_and_touch_nothing() {
    let d = Decoys::plant("bncni");
    let before = d.snapshot();
    for name in BAD_NAMES {
        let conf = serde_json::json!({
            "cniVersion": "1.1.0", "name": name, "type": "netfwd",
            "subnet": "10.92.0.0/24",
        });
        for command in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
            let vars = [
                ("CNI_COMMAND", command),
                ("CNI_CONTAINERID", "bad-name-test"),
                // The plugin's own: a namespace file that exists in the
                // world, and that ADD would refuse to attach.
                ("CNI_NETNS", "/proc/self/ns/net"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", "/nonexistent"),
            ];
            let out = d.world.run(
                &cni_bin(),
                &[] as &[&str],
                &vars,
                conf.to_string().as_bytes(),
            );
            assert!(!out.status.success(), "{}", describe(command, &out));
            let error: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", describe(command, &out)));
            assert!(
                error["msg"].as_str().unwrap_or("").contains("network.name"),
                "CNI {command} with {name:?}: {error}"
            );
            assert_eq!(
                before,
                d.snapshot(),
                "CNI {command} with {name:?} changed something"
            );
        }
    }
}

#[test]
fn state_files_that_are_links_or_name_no_network_are_skipped() {
    let d = Decoys::plant("bnstate");
    // A file whose name is no network name, one naming another network than
    // its file name, one whose network name is a path.
    let state = |name: &str| {
        format!(
            r#"{{"network":{{"name":"{name}","subnet":"10.93.0.0/24","gateway":"10.93.0.1","mtu":1500,"endpoints":[]}},
                "host_netns":{{"dev":0,"ino":0}},"created_netns":["../../etc"]}}"#
        )
    };
    for (file, name) in [
        ("BAD", "good"),
        ("good", "other"),
        ("evil", "../x"),
        ("netns", "netns"),
    ] {
        let path = d.world.path(&format!("{STATE_DIR}/{file}.json"));
        std::fs::write(path, state(name)).unwrap();
    }
    let before = d.snapshot();
    for args in [vec!["status"], vec!["status", "--json"], vec!["stats"]] {
        let out = d.world.netfwd(&args);
        assert!(out.status.success(), "{}", describe("status", &out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for skipped in ["BAD.json", "x.json", "good.json", "evil.json", "netns.json"] {
            assert!(stderr.contains(skipped), "{skipped} not reported: {stderr}");
        }
        assert_eq!(before, d.snapshot(), "netfwd {args:?} changed something");
    }
    // Named directly, each is refused, and nothing is removed through it.
    for name in ["x", "good", "evil", "netns"] {
        let out = d.world.netfwd(&["down", "--name", name]);
        assert!(!out.status.success(), "{}", describe("down", &out));
        assert_eq!(before, d.snapshot(), "down --name {name} changed something");
    }
}

#[test]
fn a_symlinked_or_foreign_directory_of_netfwd_is_refused() {
    let d = Decoys::plant("bndir");
    std::fs::create_dir(d.outside.path().join("pins")).unwrap();
    std::fs::write(d.outside.path().join("pins/keep"), "keep me").unwrap();
    // The network's pin directory points outside: `down` must not remove
    // through it, `up` must not create in it.
    std::os::unix::fs::symlink(
        d.outside.path().join("pins"),
        d.world.path(&format!("{BPF_PIN_ROOT}/good")),
    )
    .unwrap();
    let before = d.snapshot();
    let out = d.world.netfwd(&["down", "--name", "good"]);
    assert!(!out.status.success(), "{}", describe("down", &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("symbolic link"),
        "{}",
        describe("down", &out)
    );
    assert_eq!(before, d.snapshot());
    assert!(d.outside.path().join("pins/keep").exists());

    // /run/netfwd owned by someone else, or writable by all.
    let run = d.world.path(STATE_DIR);
    nix::unistd::chown(&run, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let out = d.world.netfwd(&["status"]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("owned by uid 65534"),
        "{}",
        describe("status", &out)
    );
    nix::unistd::chown(&run, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = d.world.netfwd(&["status"]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("writable by others"),
        "{}",
        describe("status", &out)
    );
}
