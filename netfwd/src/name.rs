//! The one type a network's name has once it came in from anywhere (config
//! file, CNI config, `--name`, `[[allow]]`, a state file read back): its only
//! constructor checks it, so no path or interface name is ever built from an
//! unchecked string (`Path::join` with "", "..", "/" goes where nobody meant).

use std::fmt;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::input_error;

/// Longest network name: it is part of interface names (15 bytes at most).
pub const MAX_NAME_LEN: usize = 8;

/// A network's name: 1 to [`MAX_NAME_LEN`] characters of `a-z`, `0-9` and
/// `_`; so a single path component that is neither `.` nor `..`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NetworkName(String);

impl NetworkName {
    /// Checks `name`; a bad one is bad input (exit code 2) naming `field`.
    pub fn parse(field: &str, name: &str) -> Result<NetworkName> {
        Self::check(name).map_err(|why| input_error!("{field}: {why}"))
    }

    fn check(name: &str) -> Result<NetworkName, String> {
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_chars {
            return Err(format!(
                "{name:?} must be 1 to {MAX_NAME_LEN} characters of a-z, 0-9 and _"
            ));
        }
        Ok(NetworkName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NetworkName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::check(&name)
    }
}

impl From<NetworkName> for String {
    fn from(name: NetworkName) -> String {
        name.0
    }
}

impl fmt::Display for NetworkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for NetworkName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{EXIT_BAD_INPUT, exit_code};

    #[test]
    fn names_that_could_leave_a_directory_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "/",
            "../x",
            "../../etc",
            "a/b",
            "a.b",
            "Demo",
            "toolongna",
            "a b",
            "a\0b",
            "é",
        ] {
            let err = NetworkName::parse("--name", bad).unwrap_err();
            assert_eq!(exit_code(&err), EXIT_BAD_INPUT, "{bad:?}: {err:#}");
            assert!(format!("{err:#}").starts_with("--name: "), "{err:#}");
        }
        for good in ["a", "demo", "net_1", "abcdefgh"] {
            assert_eq!(NetworkName::parse("--name", good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn a_bad_name_read_back_does_not_deserialize() {
        assert!(serde_json::from_str::<NetworkName>("\"../x\"").is_err());
        let name: NetworkName = serde_json::from_str("\"demo\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"demo\"");
    }
}
