//! One file per subcommand; each has an `exec`.

pub mod attach;
pub mod down;
pub mod publish;
pub mod status;
pub mod up;
