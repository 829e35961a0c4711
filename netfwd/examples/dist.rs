//! Writes netfwd's shell completions and man pages to the directory given
//! (`cargo xtask dist` runs it with `target/dist`).

use std::{path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: dist DIR");
        return ExitCode::from(2);
    };
    match netfwd::cli::dist::write(&dir) {
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("dist: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
