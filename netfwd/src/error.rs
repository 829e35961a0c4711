//! Errors that reach the user. Bad input (config, CLI arguments, a name that
//! clashes with what exists) exits 2; anything that failed while acting exits 1.
//! `explain` exits 3 when the datapath drops the packet asked about.

use std::fmt;

/// Marks an error as the user's input being wrong: the message names the field.
#[derive(Debug)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// Shorthand: `return Err(input_error!("network.name: ..."))`.
#[macro_export]
macro_rules! input_error {
    ($($arg:tt)*) => {
        anyhow::Error::new($crate::error::InputError(format!($($arg)*)))
    };
}

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
/// `netfwd explain`: a hop drops the packet (or its answer).
pub const EXIT_DROPPED: u8 = 3;

/// Whether any error in `err`'s chain is an [`InputError`].
pub fn is_input_error(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<InputError>())
}

/// The exit code for an error: 2 if it is the user's input.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if is_input_error(err) {
        EXIT_BAD_INPUT
    } else {
        EXIT_FAILURE
    }
}
