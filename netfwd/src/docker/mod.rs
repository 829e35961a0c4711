//! netfwd as a Docker Engine network driver (`docker network create -d
//! netfwd`): libnetwork's remote driver protocol, JSON over HTTP on
//! `/run/docker/plugins/<name>.sock`. Networks and endpoints are made by
//! the library calls `up`, `attach` and `publish` use; the plugin keeps
//! Docker's IDs on disk (`store`) and, between calls, does what `netfwd
//! daemon` does for its networks (`network::maintain`).

mod driver;
mod http;
mod network;
mod protocol;
mod store;

use std::{
    io::ErrorKind,
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    rc::Rc,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use tokio::{
    net::{UnixListener, UnixStream},
    signal::unix::{SignalKind, signal},
};

use self::{driver::Driver, store::Store};
use crate::input_error;

/// Where Docker looks for plugin sockets.
pub const PLUGIN_DIR: &str = "/run/docker/plugins";

/// How often the plugin keeps its networks (expired NAT flows, gone
/// endpoints), as the daemon does at most.
const MAINTAIN_EVERY: Duration = Duration::from_secs(5);

/// The socket of plugin `name` (Docker's driver name): 1 to 32 characters
/// of `a-z`, `0-9`, `-` and `_`, so one file in [`PLUGIN_DIR`].
pub fn socket_path(name: &str) -> Result<PathBuf> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return Err(input_error!(
            "--name: {name:?} must be 1 to 32 characters of a-z, 0-9, - and _"
        ));
    }
    Ok(Path::new(PLUGIN_DIR).join(format!("{name}.sock")))
}

/// Serves Docker until SIGTERM or SIGINT, then removes the socket; the
/// networks stay up, as with `netfwd daemon`.
pub async fn serve(socket: &Path) -> Result<()> {
    let listener = bind(socket)?;
    let driver = Rc::new(Driver::new(Store::open()?));
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut tick = tokio::time::interval(MAINTAIN_EVERY);
    log::info!("serving Docker on {}", socket.display());
    let local = tokio::task::LocalSet::new();
    let served: Result<()> = local
        .run_until(async {
            loop {
                tokio::select! {
                    _ = terminate.recv() => break Ok(()),
                    _ = interrupt.recv() => break Ok(()),
                    _ = tick.tick() => maintain(&driver).await,
                    accepted = listener.accept() => {
                        let (stream, _) = accepted.context("accepting a connection")?;
                        tokio::task::spawn_local(answer(stream, Rc::clone(&driver)));
                    }
                }
            }
        })
        .await;
    let _ = std::fs::remove_file(socket);
    served
}

/// Binds the socket, replacing a stale one (no plugin answers on it) but
/// never a live plugin's or a file that is not a socket.
fn bind(socket: &Path) -> Result<UnixListener> {
    let dir = socket.parent().context("socket path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if !meta.file_type().is_socket() => {
            bail!("{}: exists and is not a socket", socket.display())
        }
        Ok(_) if std::os::unix::net::UnixStream::connect(socket).is_ok() => {
            bail!("{}: another plugin is serving it", socket.display())
        }
        Ok(_) => std::fs::remove_file(socket)
            .with_context(|| format!("removing stale {}", socket.display()))?,
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", socket.display())),
    }
    let listener =
        UnixListener::bind(socket).with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} owner-only", socket.display()))?;
    Ok(listener)
}

/// One connection: one request, one answer.
async fn answer(stream: UnixStream, driver: Rc<Driver>) {
    let (read, write) = stream.into_split();
    let response = match tokio::time::timeout(http::READ_TIMEOUT, http::read_request(read)).await {
        Err(_) => driver::failure(400, "the request did not arrive in time"),
        Ok(Err(e)) => driver::failure(400, &format!("{e:#}")),
        Ok(Ok(req)) => driver.call(&req).await,
    };
    if let Err(e) = http::write_response(write, &response).await {
        log::warn!("answering Docker: {e:#}");
    }
}

/// One pass of `network::maintain` over the plugin's networks.
async fn maintain(driver: &Driver) {
    let networks = match driver.store().networks() {
        Ok(networks) => networks,
        Err(e) => return log::warn!("listing Docker networks: {e:#}"),
    };
    for net in networks {
        if let Err(e) = driver.maintained(&net.name).await {
            log::warn!("maintaining network {}: {e:#}", net.name);
        }
    }
}
