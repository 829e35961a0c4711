//! The two pinned Rust toolchains, read from the `rust-toolchain.toml` files
//! that pin them: the workspace's (userspace: stable) and netfwd-ebpf's (a
//! dated nightly whose LLVM matches bpf-linker's). Nothing here names a
//! floating channel, and nothing installs, updates or removes a toolchain
//! other than these two.

use std::{fs, path::Path};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{command, output, run, workspace_root};

/// A toolchain pinned by a `rust-toolchain.toml`.
pub struct Pin {
    /// Where it is pinned (shown in errors: that is the line to change).
    pub file: &'static str,
    pub channel: String,
    pub components: Vec<String>,
}

/// The userspace toolchain (workspace root).
pub fn userspace() -> Result<Pin> {
    Pin::read("rust-toolchain.toml")
}

/// The eBPF toolchain (netfwd-ebpf/), also read by netfwd's build script.
pub fn ebpf() -> Result<Pin> {
    Pin::read("netfwd-ebpf/rust-toolchain.toml")
}

impl Pin {
    fn read(file: &'static str) -> Result<Self> {
        let path = workspace_root().join(file);
        let text = fs::read_to_string(&path).with_context(|| format!("reading {file}"))?;
        let doc: toml::Table = text.parse().with_context(|| format!("parsing {file}"))?;
        let toolchain = doc
            .get("toolchain")
            .and_then(toml::Value::as_table)
            .with_context(|| format!("{file}: no [toolchain] table"))?;
        let channel = toolchain
            .get("channel")
            .and_then(toml::Value::as_str)
            .with_context(|| format!("{file}: no toolchain.channel"))?;
        if channel == "nightly" || channel == "stable" || channel == "beta" {
            bail!("{file}: channel `{channel}` floats; pin a version or a dated nightly");
        }
        let components = toolchain
            .get("components")
            .and_then(toml::Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(toml::Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            file,
            channel: channel.to_owned(),
            components,
        })
    }

    /// The components of `components` this toolchain lacks; None when the
    /// toolchain itself is not installed (asked first: rustup would install
    /// a missing toolchain on the spot for a component query).
    fn missing_components(&self) -> Result<Option<Vec<&str>>> {
        let toolchains = output(&mut command("rustup", &["toolchain", "list"]))?;
        let installed = toolchains.lines().any(|l| {
            l.split_whitespace()
                .next()
                .and_then(|name| name.strip_prefix(self.channel.as_str()))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
        });
        if !installed {
            return Ok(None);
        }
        let components = output(&mut command(
            "rustup",
            &[
                "component",
                "list",
                "--installed",
                "--toolchain",
                &self.channel,
            ],
        ))?;
        Ok(Some(
            self.components
                .iter()
                .map(String::as_str)
                .filter(|c| !components.lines().any(|l| l.starts_with(c)))
                .collect(),
        ))
    }

    /// Installs the toolchain with its components unless it has them all.
    /// Only this toolchain, by its pinned name: the machine's own `nightly`
    /// and default stay as they are. Returns what it did, None if nothing.
    pub fn install(&self) -> Result<Option<String>> {
        let done = match self.missing_components()? {
            Some(missing) if missing.is_empty() => return Ok(None),
            Some(missing) => {
                let mut args = vec!["component", "add", "--toolchain", &self.channel];
                args.extend(&missing);
                run(&mut command("rustup", &args))?;
                format!("{}: added {}", self.channel, missing.join(" "))
            }
            None => {
                let components = self.components.join(",");
                let mut args = vec![
                    "toolchain",
                    "install",
                    &self.channel,
                    "--profile",
                    "minimal",
                    "--no-self-update",
                ];
                if !components.is_empty() {
                    args.extend(["--component", &components]);
                }
                run(&mut command("rustup", &args))?;
                format!("{}: installed", self.channel)
            }
        };
        Ok(Some(done))
    }

    /// The major version of the LLVM this toolchain's rustc is built on.
    pub fn llvm_major(&self) -> Result<u32> {
        let version = output(&mut command(
            "rustup",
            &["run", &self.channel, "rustc", "-vV"],
        ))?;
        version
            .lines()
            .find_map(|l| l.strip_prefix("LLVM version: "))
            .and_then(|v| v.split('.').next())
            .and_then(|major| major.trim().parse().ok())
            .with_context(|| format!("`rustc -vV` of {} names no LLVM version", self.channel))
    }

    /// `cargo` of this toolchain, run in `dir`, whatever toolchain file or
    /// override applies there.
    pub fn cargo(&self, dir: &Path) -> std::process::Command {
        let mut cmd = command("rustup", &["run", &self.channel, "cargo"]);
        cmd.current_dir(dir);
        cmd
    }
}
