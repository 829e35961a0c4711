//! Shell completions and man pages, generated from the clap definitions so
//! they cannot drift from `--help`. `cargo xtask dist` writes them under
//! `target/dist/` (through `examples/dist.rs`).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::{Generator as _, Shell};

use super::Cli;

/// The shells completions are written for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

const BIN: &str = "netfwd";

/// The completion script of `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut script);
    script
}

/// One man page per command, by file name: `netfwd.1`, `netfwd-up.1`, …,
/// `netfwd-nat-list.1`.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    fn add(cmd: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
        let man = clap_mangen::Man::new(cmd.clone());
        let mut page = Vec::new();
        man.render(&mut page)
            .with_context(|| format!("rendering the man page of {}", cmd.get_name()))?;
        pages.push((man.get_filename(), page));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            add(sub, pages)?;
        }
        Ok(())
    }
    // `help` is clap's, not ours: no page of its own.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Built, each subcommand's display name is its path (`netfwd-nat-list`).
    cmd.build();
    let mut pages = Vec::new();
    add(&cmd, &mut pages)?;
    Ok(pages)
}

/// Writes the completions to `dir/completions/` and the man pages to
/// `dir/man/man1/`; returns the files written.
pub fn write(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let completions_dir = dir.join("completions");
    let man_dir = dir.join("man").join("man1");
    for d in [&completions_dir, &man_dir] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    for shell in SHELLS {
        let path = completions_dir.join(shell.file_name(BIN));
        fs::write(&path, completions(shell))
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    for (name, page) in man_pages()? {
        let path = man_dir.join(name);
        fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand, as the path of names under `netfwd` (`["nat",
    /// "list"]`), clap's own `help` left out.
    fn subcommands() -> Vec<Vec<String>> {
        fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let mut sub_path = path.to_vec();
                sub_path.push(sub.get_name().to_owned());
                walk(sub, &sub_path, out);
                out.push(sub_path);
            }
        }
        let mut out = Vec::new();
        walk(&Cli::command(), &[], &mut out);
        out
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_argument_has_help_text() {
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if ["help", "version"].contains(&id) {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} --{id} has no help text");
            }
            for sub in cmd.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), BIN);
    }

    #[test]
    fn completions_list_every_subcommand() {
        let all = subcommands();
        assert!(all.iter().any(|p| p == &["nat", "list"]), "{all:?}");
        for shell in SHELLS {
            let script = String::from_utf8(completions(shell)).unwrap();
            for path in &all {
                let name = path.last().unwrap();
                assert!(
                    script.contains(name.as_str()),
                    "{shell} completions lack `{}`",
                    path.join(" ")
                );
            }
        }
    }

    #[test]
    fn man_pages_list_every_subcommand() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(name, _)| name.as_str()).collect();
        // roff writes a hyphen `\-`.
        let main_page = String::from_utf8(pages[0].1.clone())
            .unwrap()
            .replace("\\-", "-");
        assert_eq!(names[0], "netfwd.1");
        for path in subcommands() {
            let page = format!("{BIN}-{}.1", path.join("-"));
            assert!(names.contains(&page.as_str()), "no {page} in {names:?}");
            if path.len() == 1 {
                assert!(
                    main_page.contains(&path[0]),
                    "netfwd.1 does not list `{}`",
                    path[0]
                );
            }
        }
    }
}
