//! Just enough HTTP/1.1 for Docker's plugin client, on a unix socket: one
//! POST with a JSON body per connection, answered with a JSON body and
//! `Connection: close`. Docker's client (Go's `net/http`) always sends a
//! `Content-Length` for these bodies. Every limit is small and fixed, since
//! anything that can reach the socket can send anything.

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

/// Request line and headers together.
const MAX_HEAD: usize = 16 * 1024;
/// A request body; Docker's largest are a few KiB.
const MAX_BODY: usize = 1024 * 1024;
/// A client that has not sent its whole request by then is dropped.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What Docker asked: the call (the path without its `/`) and its JSON body.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub call: String,
    pub body: Vec<u8>,
}

/// An answer: a status and a JSON body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Reads one request. An error means the bytes were not a request this
/// server takes; the caller answers 400 with it.
pub async fn read_request(stream: impl tokio::io::AsyncRead + Unpin) -> Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = (&mut reader)
            .take((MAX_HEAD - head.len()) as u64 + 1)
            .read_until(b'\n', &mut head)
            .await
            .context("reading the request")?;
        ensure!(n > 0, "connection closed before the request ended");
        ensure!(head.len() <= MAX_HEAD, "request head over {MAX_HEAD} bytes");
        if matches!(&head[before..], b"\r\n" | b"\n") {
            break;
        }
    }
    let head = std::str::from_utf8(&head).context("request head is not UTF-8")?;
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, path, version) = (parts.next(), parts.next(), parts.next());
    ensure!(
        matches!(version, Some("HTTP/1.1" | "HTTP/1.0")) && parts.next().is_none(),
        "not an HTTP/1.x request line: {request_line:?}"
    );
    ensure!(
        method == Some("POST"),
        "method {method:?}: only POST is served"
    );
    let call = path
        .and_then(|p| p.strip_prefix('/'))
        .filter(|c| {
            !c.is_empty()
                && c.len() <= 64
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        })
        .with_context(|| format!("path {path:?}: not a plugin call"))?;
    let mut length = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("header {line:?}: no colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            ensure!(length.is_none(), "two Content-Length headers");
            length = Some(
                value
                    .parse::<usize>()
                    .with_context(|| format!("Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("Transfer-Encoding {value:?}: only a Content-Length body is served");
        }
    }
    let length = length.unwrap_or(0);
    ensure!(
        length <= MAX_BODY,
        "body of {length} bytes: over {MAX_BODY}"
    );
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .await
        .context("reading the request body")?;
    Ok(Request {
        call: call.to_owned(),
        body,
    })
}

/// Writes `response` and closes the write side.
pub async fn write_response(
    mut stream: impl tokio::io::AsyncWrite + Unpin,
    response: &Response,
) -> Result<()> {
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&response.body).await?;
    stream.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(raw: &[u8]) -> Result<Request> {
        read_request(raw).await
    }

    #[tokio::test]
    async fn a_plugin_call_with_its_body_is_read() {
        let raw = b"POST /NetworkDriver.Join HTTP/1.1\r\nHost: plugin\r\nContent-Length: 2\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n\r\n{}";
        assert_eq!(
            parse(raw).await.unwrap(),
            Request {
                call: "NetworkDriver.Join".into(),
                body: b"{}".to_vec()
            }
        );
    }

    #[tokio::test]
    async fn what_is_not_a_plugin_call_is_refused_with_a_reason() {
        for (raw, says) in [
            (&b"GET /Plugin.Activate HTTP/1.1\r\n\r\n"[..], "only POST"),
            (b"POST /../etc HTTP/1.1\r\n\r\n", "not a plugin call"),
            (b"POST / HTTP/1.1\r\n\r\n", "not a plugin call"),
            (b"POST /a HTTP/2\r\n\r\n", "HTTP/1.x"),
            (
                b"POST /a HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n",
                "over",
            ),
            (
                b"POST /a HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                "Content-Length",
            ),
            (
                b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n{",
                "two",
            ),
            (
                b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "Transfer-Encoding",
            ),
            (b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\n{}", "body"),
            (b"POST /a HTTP/1.1\r\nHost: x", "closed"),
        ] {
            let err = format!("{:#}", parse(raw).await.unwrap_err());
            assert!(err.contains(says), "{raw:?}: {err}");
        }
        let huge = [
            b"POST /a HTTP/1.1\r\nX: ".as_slice(),
            &[b'a'; MAX_HEAD],
            b"\r\n\r\n",
        ]
        .concat();
        let err = format!("{:#}", parse(&huge).await.unwrap_err());
        assert!(err.contains("head over"), "{err}");
    }
}
