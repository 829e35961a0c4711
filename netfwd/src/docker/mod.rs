//! netfwd as a Docker Engine network driver (`docker network create -d
//! netfwd`): libnetwork's remote driver protocol, JSON over HTTP on
//! `/run/docker/plugins/<name>.sock`. Networks and endpoints are made by
//! the library calls `up`, `attach` and `publish` use; the plugin keeps
//! Docker's IDs on disk (`store`) and, between calls, does what `netfwd
//! daemon` does for its networks (`network::maintain`).

mod driver;
mod ipam;
mod network;
mod protocol;
mod store;
mod worker;

use std::{
    io::ErrorKind,
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::{
    net::{UnixListener, UnixStream},
    signal::unix::{SignalKind, signal},
    sync::OwnedSemaphorePermit,
};

use self::{protocol::PluginCall, store::Store, worker::Worker};
use crate::{http, input_error, name::NetworkName};

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
/// networks stay up, as with `netfwd daemon`. Nothing but a signal stops it:
/// a failed `accept()` is retried.
/// The netfwd names of the networks the plugin made (and Docker has not
/// removed), as its records say.
pub fn network_names() -> Result<Vec<NetworkName>> {
    Ok(Store::open()?
        .networks()?
        .into_iter()
        .map(|net| net.name)
        .collect())
}

pub async fn serve(socket: &Path) -> Result<()> {
    let listener = bind(socket)?;
    let (worker, mut worker_stopped) = Worker::start(Store::open()?)?;
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut accepting = http::Accepting::default();
    log::info!("serving Docker on {}", socket.display());
    let served = loop {
        tokio::select! {
            _ = terminate.recv() => break Ok(()),
            _ = interrupt.recv() => break Ok(()),
            _ = &mut worker_stopped => break Err(anyhow!("the driver's thread stopped")),
            ((stream, _), held) = accepting.next(|| listener.accept()) => {
                tokio::spawn(answer(stream, held, worker.clone()));
            }
        }
    };
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

/// One connection: one request, one answer. `_held` is its place among
/// the connections, given back when it closes.
async fn answer(stream: UnixStream, _held: OwnedSemaphorePermit, worker: Worker) {
    let served = http::serve_connection(stream, move |req| {
        let worker = worker.clone();
        async move {
            let call = match req.and_then(PluginCall::of) {
                Ok(call) => call,
                Err(why) => return driver::failure(400, &why),
            };
            match driver::answer_at_once(&call.call) {
                Some(response) => response,
                None => worker.call(call).await,
            }
        }
    });
    // A client that gave up, or sent no HTTP, is worth no warning.
    if let Err(e) = served.await {
        log::debug!("serving Docker: {e}");
    }
}
