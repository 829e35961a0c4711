//! The one HTTP server netfwd runs, on hyper: the Docker plugin's socket
//! (and any later endpoint) serves each connection through
//! [`serve_connection`], with the same small, fixed limits, since anything
//! that can reach a socket can send anything: one request a connection, a
//! head and a body of bounded size, each read within a deadline, and at
//! most [`MAX_CONNECTIONS`] at once ([`Accepting`]).

use std::{convert::Infallible, future::Future, io, sync::Arc, time::Duration};

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{
    StatusCode,
    body::{Bytes, Incoming},
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{OwnedSemaphorePermit, Semaphore},
};

/// The read buffer, which the request line and headers must fit (hyper
/// answers 431 past it); hyper's least is 8 KiB.
pub const MAX_HEAD: usize = 16 * 1024;
/// A request body; Docker's largest are a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;
/// The head, and then the body, must each have arrived by then; a client
/// that is slower is dropped, so idle ones cannot hold a connection long.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections held at once by one listener; more wait in the listen
/// backlog, costing no descriptor. Each is closed after [`READ_TIMEOUT`] at
/// most if it sends no request, so idle ones cannot hold a listener long.
pub const MAX_CONNECTIONS: usize = 32;

/// The wait before trying `accept()` again after it failed (out of
/// descriptors, out of memory): the failure passes as connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A listener's accept loop: its places among [`MAX_CONNECTIONS`], and the
/// run of failed `accept()`s it is in.
pub struct Accepting {
    connections: Arc<Semaphore>,
    failed: u64,
}

impl Default for Accepting {
    fn default() -> Self {
        Self {
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            failed: 0,
        }
    }
}

impl Accepting {
    /// The next connection `accept` gives, with its place among
    /// [`MAX_CONNECTIONS`] (given back when dropped). A failed `accept()` is
    /// logged once for a run of failures and tried again after
    /// [`ACCEPT_BACKOFF`], so this never fails.
    pub async fn next<T, F>(&mut self, mut accept: impl FnMut() -> F) -> (T, OwnedSemaphorePermit)
    where
        F: Future<Output = io::Result<T>>,
    {
        loop {
            // Never closed, so never an error.
            let Ok(held) = Arc::clone(&self.connections).acquire_owned().await else {
                return std::future::pending().await;
            };
            match accept().await {
                Ok(stream) => {
                    if self.failed > 0 {
                        log::info!(
                            "accepting connections again after {} failed attempts",
                            self.failed
                        );
                        self.failed = 0;
                    }
                    return (stream, held);
                }
                Err(e) => {
                    if self.failed == 0 {
                        log::warn!(
                            "accepting a connection: {e}; trying again every {} ms",
                            ACCEPT_BACKOFF.as_millis()
                        );
                    }
                    self.failed += 1;
                    drop(held);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

/// A request that kept within the limits.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: hyper::Method,
    pub path: String,
    pub body: Vec<u8>,
}

/// An answer: a status and a body of the given type.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Serves one request on `stream`, then closes it. `answer` gets the
/// request, or why it broke a limit (its body too large or too slow), and
/// answers in the caller's own format either way. What is no HTTP/1 request
/// at all hyper answers itself (400; 431 for a head over [`MAX_HEAD`]).
pub async fn serve_connection<S, A, F>(stream: S, answer: A) -> hyper::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: Fn(Result<Request, String>) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send,
{
    let answer = Arc::new(answer);
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let answer = Arc::clone(&answer);
        async move { Ok::<_, Infallible>(to_hyper(answer(read(req).await).await)) }
    });
    http1::Builder::new()
        .keep_alive(false)
        // A client may close its sending side once its request is out, and
        // still read the answer.
        .half_close(true)
        .max_buf_size(MAX_HEAD)
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await
}

/// The whole request, its body within [`MAX_BODY`] and [`READ_TIMEOUT`].
async fn read(req: hyper::Request<Incoming>) -> Result<Request, String> {
    let (parts, body) = req.into_parts();
    let body = tokio::time::timeout(READ_TIMEOUT, Limited::new(body, MAX_BODY).collect())
        .await
        .map_err(|_| "the request body did not arrive in time".to_owned())?
        .map_err(|e| format!("reading the request body (at most {MAX_BODY} bytes): {e}"))?;
    Ok(Request {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        body: body.to_bytes().to_vec(),
    })
}

fn to_hyper(response: Response) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(Bytes::from(response.body)));
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    out.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(response.content_type),
    );
    out
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// What the server writes back to `raw`: its request echoed as
    /// `METHOD PATH BODY`, or `refused: WHY`.
    async fn exchange(raw: &[u8]) -> String {
        let (mut client, server) = tokio::io::duplex(4 * MAX_BODY);
        let served = tokio::spawn(serve_connection(server, |req| async move {
            let body = match req {
                Ok(r) => format!(
                    "{} {} {}",
                    r.method,
                    r.path,
                    String::from_utf8_lossy(&r.body)
                ),
                Err(why) => format!("refused: {why}"),
            };
            Response {
                status: 200,
                content_type: "text/plain",
                body: body.into_bytes(),
            }
        }));
        client.write_all(raw).await.unwrap();
        client.shutdown().await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        let _ = served.await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn a_request_with_its_body_is_read_and_the_connection_closed() {
        let out = exchange(
            b"POST /NetworkDriver.Join HTTP/1.1\r\nHost: plugin\r\nContent-Length: 2\r\n\r\n{}",
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.to_lowercase().contains("connection: close"), "{out}");
        assert!(out.ends_with("POST /NetworkDriver.Join {}"), "{out}");
    }

    #[tokio::test]
    async fn a_chunked_body_is_read_too() {
        let out =
            exchange(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
                .await;
        assert!(out.ends_with("POST /a {}"), "{out}");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_a_reason() {
        let out = exchange(b"POST /a HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n").await;
        assert!(out.contains("refused: reading the request body"), "{out}");
        let big = [
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
            format!("{:x}\r\n", MAX_BODY + 1).as_bytes(),
            &vec![b'a'; MAX_BODY + 1],
            b"\r\n0\r\n\r\n",
        ]
        .concat();
        let out = exchange(&big).await;
        assert!(out.contains("refused: reading the request body"), "{out}");
    }

    #[tokio::test]
    async fn a_head_over_the_limit_or_no_http_gets_hypers_own_answer() {
        let huge = [
            b"POST /a HTTP/1.1\r\nX: ".as_slice(),
            &[b'a'; MAX_HEAD],
            b"\r\n\r\n",
        ]
        .concat();
        assert!(exchange(&huge).await.starts_with("HTTP/1.1 431"));
        assert!(
            exchange(b"\x16\x03\x01 not http\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 400")
        );
        // Closed before the head ended: nothing to answer.
        assert_eq!(exchange(b"POST /a HTTP/1.1\r\nHost: x").await, "");
    }
}
