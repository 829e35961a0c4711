//! What the plugin keeps on disk, beside netfwd's own state: Docker's
//! networks and endpoints by their IDs, so a restarted plugin answers for
//! everything Docker made through it (Docker never repeats `CreateNetwork`).
//! Under `/run/netfwd/docker/`, owner-only; every file name is a checked
//! Docker ID, or a pool's subnet.

use std::{
    fs,
    io::ErrorKind,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{
    ipam::PoolRecord,
    network::{DockerNetwork, check_id},
};
use crate::{
    config::Published,
    private_dir,
    state::{self, STATE_DIR},
};
use ipnet::Ipv4Net;

/// A Docker endpoint: made by `CreateEndpoint`, plugged in by `Join`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerEndpoint {
    pub endpoint_id: String,
    pub network_id: String,
    pub ip: Ipv4Addr,
    /// Its address in a dual-stack (`--ipv6`) network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// `--mac-address`, for `Join`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<[u8; 6]>,
    /// The ports `ProgramExternalConnectivity` published, for `Revoke`.
    #[serde(default)]
    pub published: Vec<Published>,
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open() -> Result<Store> {
        for kind in ["networks", "endpoints", "pools"] {
            private_dir::ensure(Path::new(STATE_DIR), &["docker", kind])?;
        }
        Ok(Store {
            dir: Path::new(STATE_DIR).join("docker"),
        })
    }

    fn path(&self, kind: &str, id: &str) -> Result<PathBuf> {
        check_id(kind, id)?;
        Ok(self.dir.join(kind).join(format!("{id}.json")))
    }

    pub fn network(&self, id: &str) -> Result<Option<DockerNetwork>> {
        read(&self.path("networks", id)?)
    }

    pub fn networks(&self) -> Result<Vec<DockerNetwork>> {
        read_all(&self.dir.join("networks"))
    }

    pub fn save_network(&self, net: &DockerNetwork) -> Result<()> {
        write(&self.path("networks", &net.network_id)?, net)
    }

    pub fn remove_network(&self, id: &str) -> Result<()> {
        state::remove_if_present(&self.path("networks", id)?)
    }

    /// A cluster pool's file, named by its subnet (`10.200.1.0-24.json`).
    fn pool_path(&self, subnet: Ipv4Net) -> PathBuf {
        self.dir
            .join("pools")
            .join(format!("{}-{}.json", subnet.addr(), subnet.prefix_len()))
    }

    pub fn pools(&self) -> Result<Vec<PoolRecord>> {
        read_all(&self.dir.join("pools"))
    }

    pub fn save_pool(&self, pool: &PoolRecord) -> Result<()> {
        write(&self.pool_path(pool.subnet), pool)
    }

    pub fn remove_pool(&self, subnet: Ipv4Net) -> Result<()> {
        state::remove_if_present(&self.pool_path(subnet))
    }

    pub fn endpoint(&self, id: &str) -> Result<Option<DockerEndpoint>> {
        read(&self.path("endpoints", id)?)
    }

    pub fn save_endpoint(&self, ep: &DockerEndpoint) -> Result<()> {
        write(&self.path("endpoints", &ep.endpoint_id)?, ep)
    }

    pub fn remove_endpoint(&self, id: &str) -> Result<()> {
        state::remove_if_present(&self.path("endpoints", id)?)
    }
}

fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn read_all<T: DeserializeOwned>(dir: &Path) -> Result<Vec<T>> {
    let mut all = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json")
            && let Some(item) = read(&path)?
        {
            all.push(item);
        }
    }
    Ok(all)
}

fn write<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .with_context(|| format!("serialising {}", path.display()))?;
    state::write_atomically(path, &text)
}
