//! Traffic between namespaces: ping and a TCP echo exchange.

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    process::Output,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};

use crate::{
    netns::enter_netns,
    process::{describe, in_ns},
};

/// Echo requests per ping.
pub const PING_COUNT: u64 = 3;

/// Echo requests sent and replies received by one ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingResult {
    pub transmitted: u64,
    pub received: u64,
}

/// `ping -c 3 -W 1 -i 0.2 <ip>` from namespace `from_ns`.
pub fn ping_counts(from_ns: &str, ip: &str) -> (PingResult, Output) {
    let count = PING_COUNT.to_string();
    let out = in_ns(
        from_ns,
        &["ping", "-n", "-q", "-c", &count, "-W", "1", "-i", "0.2", ip],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // "3 packets transmitted, 3 received, 0% packet loss, time 402ms"
    let mut result = PingResult {
        transmitted: 0,
        received: 0,
    };
    for line in text.lines().filter(|l| l.contains("packets transmitted")) {
        let numbers: Vec<u64> = line
            .split(',')
            .filter_map(|part| part.split_whitespace().next()?.parse().ok())
            .collect();
        if numbers.len() >= 2 {
            result = PingResult {
                transmitted: numbers[0],
                received: numbers[1],
            };
        }
    }
    (result, out)
}

/// Whether every echo request of a `ping -c 3 -W 1` from `from_ns` to `ip` was
/// answered.
pub fn ping(from_ns: &str, ip: &str) -> bool {
    let (r, out) = ping_counts(from_ns, ip);
    let ok = out.status.success() && r.transmitted == PING_COUNT && r.received == PING_COUNT;
    if !ok {
        eprintln!("{}", describe(&format!("[{from_ns}] ping {ip}"), &out));
    }
    ok
}

/// Asserts that `ping` from `from_ns` to `ip` gets every reply.
pub fn assert_ping(from_ns: &str, ip: &str) {
    assert!(ping(from_ns, ip), "ping from {from_ns} to {ip} failed");
}

/// Runs a socket call again when a signal interrupts it: with a timeout
/// set, Linux fails a blocked socket call with EINTR instead of restarting
/// it. The test process does catch a signal now and then (its only handler
/// beyond Rust's own is glibc's internal signal 33): the soak's minute-long
/// echo streams died of it.
pub fn retry_eintr<T>(mut call: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            done => return done,
        }
    }
}

const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// A TCP exchange: a server in `to_ns` listens on `to_ip:port` and echoes one
/// message; a client in `from_ns` connects, sends `payload`, reads the echo and
/// compares. Each side runs in its own thread that `setns`es into its
/// namespace, so the test thread never changes namespace.
pub fn tcp_exchange(
    from_ns: &str,
    to_ns: &str,
    to_ip: &str,
    port: u16,
    payload: &[u8],
) -> Result<()> {
    let ip: IpAddr = to_ip.parse().with_context(|| format!("address {to_ip}"))?;
    let addr = SocketAddr::from((ip, port));
    let expected_len = payload.len();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();

    let server_ns = to_ns.to_owned();
    let server = thread::spawn(move || -> Result<Vec<u8>> {
        let listener = enter_netns(&server_ns)
            .and_then(|()| {
                TcpListener::bind(addr).with_context(|| format!("[{server_ns}] bind {addr}"))
            })
            .and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            });
        let listener = match listener {
            Ok(l) => {
                let _ = ready_tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                return Err(e);
            }
        };
        let deadline = Instant::now() + TCP_TIMEOUT * 2;
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        bail!(
                            "[{server_ns}] no connection on {addr} within {:?}",
                            TCP_TIMEOUT * 2
                        );
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e).context(format!("[{server_ns}] accept on {addr}")),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(TCP_TIMEOUT))?;
        stream.set_write_timeout(Some(TCP_TIMEOUT))?;
        let mut got = vec![0u8; expected_len];
        stream
            .read_exact(&mut got)
            .with_context(|| format!("[{server_ns}] reading {expected_len} bytes"))?;
        stream
            .write_all(&got)
            .with_context(|| format!("[{server_ns}] echoing"))?;
        stream.flush()?;
        // Wait for the client to close, so the echo is not cut off by a reset.
        let mut rest = [0u8; 1];
        let _ = retry_eintr(|| stream.read(&mut rest));
        Ok(got)
    });

    let ready = ready_rx
        .recv_timeout(TCP_TIMEOUT)
        .map_err(|_| anyhow!("server in {to_ns} did not start"))
        .and_then(|r| r);
    let client_result = match ready {
        Err(e) => Err(e),
        Ok(()) => {
            let client_ns = from_ns.to_owned();
            let payload = payload.to_vec();
            let client = thread::spawn(move || -> Result<Vec<u8>> {
                enter_netns(&client_ns)?;
                let mut stream = TcpStream::connect_timeout(&addr, TCP_TIMEOUT)
                    .with_context(|| format!("[{client_ns}] connect to {addr}"))?;
                stream.set_read_timeout(Some(TCP_TIMEOUT))?;
                stream.set_write_timeout(Some(TCP_TIMEOUT))?;
                stream
                    .write_all(&payload)
                    .with_context(|| format!("[{client_ns}] sending to {addr}"))?;
                let mut echo = vec![0u8; payload.len()];
                stream
                    .read_exact(&mut echo)
                    .with_context(|| format!("[{client_ns}] reading the echo from {addr}"))?;
                Ok(echo)
            });
            client
                .join()
                .map_err(|_| anyhow!("client thread panicked"))
                .and_then(|r| r)
        }
    };
    let server_result = server
        .join()
        .map_err(|_| anyhow!("server thread panicked"))
        .and_then(|r| r);
    let echo = client_result.context(format!("TCP {from_ns} -> {to_ns} {addr}"))?;
    let received = server_result.context(format!("TCP {from_ns} -> {to_ns} {addr}"))?;
    ensure!(
        received == payload,
        "TCP {from_ns} -> {addr}: server received {} bytes that differ from the {} sent",
        received.len(),
        payload.len()
    );
    ensure!(
        echo == payload,
        "TCP {from_ns} -> {addr}: echo differs from what was sent"
    );
    Ok(())
}

/// A payload of `len` bytes that is not all one value (so a corrupted or
/// truncated copy shows).
pub fn payload(tag: &str, len: usize) -> Vec<u8> {
    let seed = tag.as_bytes();
    (0..len)
        .map(|i| seed[i % seed.len().max(1)].wrapping_add((i / 7) as u8))
        .collect()
}
