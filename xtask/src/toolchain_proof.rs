//! Proof that the pins hold on a machine whose own `nightly` is newer than
//! the eBPF pin (rustc 1.101, LLVM 23 — what the floating channel serves):
//! a private RUSTUP_HOME holds only such a `nightly` (its default
//! toolchain), then setup and the eBPF build run against it. The fake
//! nightly answers `-V`/`-vV` and records any other use; afterwards it must
//! be unused and unchanged, and a second setup must change nothing.
//!
//! Setup downloads the two pinned toolchains into the private home (about
//! 20 s here); CARGO_HOME (registry cache, bpf-linker) is the machine's.

use std::{
    env, fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::cmd::{command, output, workspace_root};

const FAKE_VERSION: &str = "rustc 1.101.0-nightly (0123456789 2026-11-30)";

pub fn exec() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let nightly_before = sandbox.nightly_version()?;
    ensure!(
        nightly_before == FAKE_VERSION,
        "the private home's nightly says `{nightly_before}`"
    );

    let first = sandbox.setup()?;
    eprintln!("toolchain proof: first setup:\n{first}");
    sandbox.build()?;
    let second = sandbox.setup()?;
    let changed: Vec<&str> = second
        .lines()
        .filter(|l| l.starts_with("setup: ") && !l.ends_with(": present"))
        .collect();
    ensure!(
        changed.is_empty(),
        "a second setup changed things: {changed:?}"
    );

    let nightly_after = sandbox.nightly_version()?;
    ensure!(
        nightly_after == nightly_before,
        "the machine's nightly changed: `{nightly_before}` became `{nightly_after}`"
    );
    if let Ok(used) = fs::read_to_string(sandbox.used_log()) {
        bail!("the floating nightly was used by the build or setup:\n{used}");
    }
    eprintln!(
        "toolchain proof: setup + build passed with a newer `nightly` ({nightly_after}) left as it was"
    );
    Ok(())
}

/// A private RUSTUP_HOME with a fake newer `nightly` as its only (and
/// default) toolchain, and a private target directory; removed on drop.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new() -> Result<Self> {
        let dir = env::temp_dir().join(format!("netfwd-toolchain-proof-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let sandbox = Self { dir };
        let host = host_triple()?;
        let nightly = sandbox
            .rustup_home()
            .join("toolchains")
            .join(format!("nightly-{host}"));
        let bin = nightly.join("bin");
        fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
        let used = sandbox.used_log();
        let script = format!(
            "#!/bin/sh\n\
             case \"$1\" in\n\
             -V) echo '{FAKE_VERSION}' ;;\n\
             -vV) printf '%s\\nbinary: rustc\\nhost: {host}\\nrelease: 1.101.0-nightly\\nLLVM version: 23.1.0\\n' '{FAKE_VERSION}' ;;\n\
             *) echo \"$0 $*\" >> '{}'; exit 1 ;;\n\
             esac\n",
            used.display()
        );
        for tool in ["rustc", "cargo"] {
            let path = bin.join(tool);
            fs::write(&path, &script).with_context(|| format!("writing {}", path.display()))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        }
        fs::write(
            sandbox.rustup_home().join("settings.toml"),
            format!(
                "version = \"12\"\ndefault_toolchain = \"nightly-{host}\"\nprofile = \"minimal\"\nauto_self_update = \"disable\"\n"
            ),
        )
        .context("writing the private rustup settings")?;
        Ok(sandbox)
    }

    fn rustup_home(&self) -> PathBuf {
        self.dir.join("rustup")
    }

    fn used_log(&self) -> PathBuf {
        self.dir.join("floating-nightly-used")
    }

    /// A command that sees only the private rustup home: no toolchain chosen
    /// by the environment, so the pins' files decide.
    fn command<S: AsRef<std::ffi::OsStr>>(&self, program: &Path, args: &[S]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(workspace_root())
            .env("RUSTUP_HOME", self.rustup_home())
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("CARGO")
            .env_remove("RUSTUP_AUTO_INSTALL");
        cmd
    }

    fn nightly_version(&self) -> Result<String> {
        let out =
            output(&mut self.command(Path::new("rustup"), &["run", "nightly", "rustc", "-V"]))?;
        Ok(out.trim().to_owned())
    }

    /// This xtask's own `setup`, as `cargo xtask setup` runs it; returns
    /// what it said.
    fn setup(&self) -> Result<String> {
        let xtask = env::current_exe().context("locating the xtask binary")?;
        let out = self
            .command(&xtask, &["setup"])
            .output()
            .context("running setup")?;
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure!(out.status.success(), "setup failed:\n{said}");
        Ok(said)
    }

    /// netfwd's build script, which builds and links the eBPF object with
    /// the pinned nightly and bpf-linker (the part the toolchains decide),
    /// into a private target directory so nothing is reused. `check` runs
    /// build scripts as `build` does, without compiling the userspace crates
    /// to machine code: that is the stable pin's work, which every other
    /// build of the run does.
    fn build(&self) -> Result<()> {
        let mut cmd = self.command(Path::new("cargo"), &["check", "--package", "netfwd"]);
        cmd.env("CARGO_TARGET_DIR", self.dir.join("target"));
        crate::cmd::run(&mut cmd)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_dir_all(&self.dir) {
            eprintln!("toolchain proof: removing {}: {err}", self.dir.display());
        }
    }
}

fn host_triple() -> Result<String> {
    let version = output(&mut command("rustc", &["-vV"]))?;
    version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("`rustc -vV` names no host")
}
