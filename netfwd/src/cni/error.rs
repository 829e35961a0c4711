//! CNI errors: the spec's well-known codes, and the JSON a plugin prints for
//! one (`{"cniVersion", "code", "msg", "details"}`).

use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// The spec's error codes (CNI 1.1, "Error").
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILED: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const NOT_AVAILABLE: u32 = 50;
    /// netfwd's own: the datapath refused or failed (BPF, netlink).
    pub const DATAPATH_FAILED: u32 = 100;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// A library error: bad input (a clash, a bad address) is an invalid
    /// config; anything else failed while acting. The whole chain goes in
    /// `details`.
    pub fn from_anyhow(err: &anyhow::Error) -> Self {
        let code = if err.chain().any(|e| e.is::<InputError>()) {
            code::INVALID_CONFIG
        } else {
            code::DATAPATH_FAILED
        };
        CniError {
            code,
            msg: err.to_string(),
            details: format!("{err:#}"),
        }
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CNI error {}: {}", self.code, self.msg)
    }
}

impl std::error::Error for CniError {}

pub type CniResult<T> = Result<T, CniError>;

/// `.cni(code)`: turns any error into a CNI error with that code.
pub trait OrCni<T> {
    fn cni(self, code: u32) -> CniResult<T>;
}

impl<T, E: std::fmt::Display> OrCni<T> for Result<T, E> {
    fn cni(self, code: u32) -> CniResult<T> {
        self.map_err(|e| CniError::new(code, e.to_string()))
    }
}
