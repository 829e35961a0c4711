//! netfwd as a CNI plugin (`netfwd-cni`, installed as `netfwd` on the
//! runtime's plugin path): the runtime's `CNI_*` environment and the network
//! configuration on stdin in, a result or an error as JSON on stdout out.
//! Endpoints are made by the same library calls as `netfwd attach`.

mod conf;
mod endpoint;
mod error;
mod ipam;

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use serde_json::{Value, json};

pub use self::{
    conf::{NetConf, SUPPORTED_VERSIONS},
    error::{CniError, CniResult, code},
};
use crate::netlink::Netlink;

/// The version answered when the caller's is unknown (VERSION, errors).
const LATEST_VERSION: &str = "1.1.0";

/// The longest `CNI_CONTAINERID` taken; runtimes use 64 hex digits.
const MAX_CONTAINER_ID: usize = 255;

/// The plugin's `CNI_*` environment.
pub struct Env {
    pub command: String,
    pub container_id: Option<String>,
    pub netns: Option<PathBuf>,
    pub ifname: Option<String>,
    /// Where delegated plugins (IPAM) are looked up.
    pub path: String,
}

impl Env {
    pub fn from_process() -> Env {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Env {
            command: var("CNI_COMMAND").unwrap_or_default(),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS").map(PathBuf::from),
            ifname: var("CNI_IFNAME"),
            path: var("CNI_PATH").unwrap_or_default(),
        }
    }

    /// `CNI_CONTAINERID`, as the spec allows it: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`
    /// (libcni's rule), and at most [`MAX_CONTAINER_ID`] characters. It is
    /// recorded in the state and shown by `status`.
    fn container_id(&self) -> CniResult<&str> {
        let id = required("CNI_CONTAINERID", self.container_id.as_deref())?;
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
        let valid = id.len() <= MAX_CONTAINER_ID
            && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && id.bytes().all(allowed);
        if !valid {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!(
                    "CNI_CONTAINERID: {id:?} is not a container ID (a letter or digit, then letters, digits, '_', '.' and '-'; at most {MAX_CONTAINER_ID} characters)"
                ),
            ));
        }
        Ok(id)
    }

    fn ifname(&self) -> CniResult<&str> {
        required("CNI_IFNAME", self.ifname.as_deref())
    }

    fn netns(&self) -> CniResult<&Path> {
        required("CNI_NETNS", self.netns.as_deref())
    }
}

fn required<'a, T: ?Sized>(name: &str, value: Option<&'a T>) -> CniResult<&'a T> {
    value.ok_or_else(|| CniError::new(code::INVALID_ENV, format!("{name}: not set")))
}

/// The plugin binary's whole life: read, act, print, exit.
pub fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let env = Env::from_process();
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => run_blocking(&env, &stdin),
        Err(e) => Err(CniError::new(
            code::IO_FAILURE,
            format!("reading stdin: {e}"),
        )),
    };
    match outcome {
        Ok(Some(result)) => {
            println!("{result}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(err) => {
            println!("{}", error_json(&stdin, &err));
            ExitCode::FAILURE
        }
    }
}

fn run_blocking(env: &Env, stdin: &[u8]) -> CniResult<Option<Value>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(code::IO_FAILURE, format!("starting tokio: {e}")))?;
    runtime.block_on(run(env, stdin))
}

/// One CNI command; `Some` is the JSON to print.
pub async fn run(env: &Env, stdin: &[u8]) -> CniResult<Option<Value>> {
    if env.command == "VERSION" {
        return Ok(Some(version(stdin)));
    }
    let conf = NetConf::parse(stdin)?;
    match env.command.as_str() {
        "ADD" => endpoint::add(&conf, env, stdin).await.map(Some),
        "DEL" => endpoint::del(&conf, env, stdin).await.map(|()| None),
        "CHECK" => endpoint::check(&conf, env, stdin).await.map(|()| None),
        "GC" => endpoint::gc(&conf, env, stdin).await.map(|()| None),
        "STATUS" => status(&conf).await.map(|()| None),
        "" => Err(CniError::new(code::INVALID_ENV, "CNI_COMMAND: not set")),
        other => Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_COMMAND: unknown command {other:?}"),
        )),
    }
}

/// VERSION: the versions spoken, answered in the caller's version.
fn version(stdin: &[u8]) -> Value {
    json!({
        "cniVersion": caller_version(stdin),
        "supportedVersions": SUPPORTED_VERSIONS,
    })
}

/// STATUS (1.1): ready for ADDs when the config is valid and its uplink is
/// there.
async fn status(conf: &NetConf) -> CniResult<()> {
    require_version(conf, (1, 1), "STATUS")?;
    let net = conf.network()?;
    if let Some(uplink) = &net.uplink {
        let host = Netlink::current().map_err(|e| CniError::from_anyhow(&e))?;
        let link = host
            .link_by_name(uplink)
            .await
            .map_err(|e| CniError::from_anyhow(&e))?;
        if link.is_none() {
            return Err(CniError::new(
                code::NOT_AVAILABLE,
                format!("uplink {uplink}: no such interface"),
            ));
        }
    }
    Ok(())
}

/// Commands newer than some of the versions spoken.
fn require_version(conf: &NetConf, at_least: (u64, u64), command: &str) -> CniResult<()> {
    if conf.version_at_least(at_least.0, at_least.1) {
        return Ok(());
    }
    Err(CniError::new(
        code::INCOMPATIBLE_VERSION,
        format!(
            "{command} needs cniVersion {}.{}.0 or later, got {}",
            at_least.0, at_least.1, conf.cni_version
        ),
    ))
}

/// The caller's cniVersion if it is one spoken here, else the latest.
fn caller_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_owned))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| LATEST_VERSION.to_owned())
}

fn error_json(stdin: &[u8], err: &CniError) -> Value {
    let mut value = json!({
        "cniVersion": caller_version(stdin),
        "code": err.code,
        "msg": err.msg,
    });
    if !err.details.is_empty() {
        value["details"] = Value::String(err.details.clone());
    }
    value
}
