//! The world behind a sandbox's uplink: an "internet" namespace with an
//! echo server that tells each client the source address it saw, and
//! clients that run in any namespace.
//!
//! ```text
//!  sandbox host ── up0 203.0.113.2/24 ──── inet0 203.0.113.1/24 ── internet ns
//!                  2001:db8:f::2/64          2001:db8:f::1/64       echo server :7
//!                  (default routes via ::1 and .1)                  (both families)
//! ```

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, ensure};

use crate::{Sandbox, enter_netns, retry_eintr, tool_ok};

/// The uplink's name in the sandbox host.
pub const UPLINK: &str = "up0";
/// The sandbox host's address on the uplink.
pub const UPLINK_IP: &str = "203.0.113.2";
/// The internet namespace's address: the echo server and the host's gateway.
pub const INTERNET_IP: &str = "203.0.113.1";
/// The sandbox host's IPv6 address on the uplink.
pub const UPLINK_IP6: &str = "2001:db8:f::2";
/// The internet namespace's IPv6 address, as `INTERNET_IP`.
pub const INTERNET_IP6: &str = "2001:db8:f::1";
/// The echo server's port (TCP and UDP).
pub const ECHO_PORT: u16 = 7;

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The internet namespace and its echo server; stopped on drop (the
/// namespace goes with the sandbox).
pub struct Internet {
    pub ns: String,
    _servers: [EchoServer; 2],
}

impl Internet {
    /// Builds the internet namespace behind `sb`'s host and starts the echo
    /// server in it.
    pub fn new(sb: &Sandbox) -> Internet {
        let ns = sb.ns("inet");
        tool_ok("ip", &["netns", "add", &ns]);
        let host = sb.host();
        tool_ok("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        tool_ok(
            "ip",
            &[
                "-n", host, "link", "add", UPLINK, "type", "veth", "peer", "name", "inet0",
                "netns", &ns,
            ],
        );
        sb.add_host_addr(&format!("{UPLINK_IP}/24"), UPLINK);
        tool_ok("ip", &["-n", host, "link", "set", UPLINK, "up"]);
        tool_ok(
            "ip",
            &["-n", host, "route", "add", "default", "via", INTERNET_IP],
        );
        tool_ok(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{INTERNET_IP}/24"),
                "dev",
                "inet0",
            ],
        );
        tool_ok("ip", &["-n", &ns, "link", "set", "inet0", "up"]);
        // IPv6 beside it, usable at once (no duplicate address detection).
        for (netns, addr, dev) in [
            (host, UPLINK_IP6, UPLINK),
            (ns.as_str(), INTERNET_IP6, "inet0"),
        ] {
            let addr = format!("{addr}/64");
            tool_ok(
                "ip",
                &["-n", netns, "addr", "add", &addr, "dev", dev, "nodad"],
            );
        }
        tool_ok(
            "ip",
            &[
                "-n",
                host,
                "-6",
                "route",
                "add",
                "default",
                "via",
                INTERNET_IP6,
            ],
        );
        if crate::test_mode() == "xdp" {
            // The far end as a wire: full checksums (an XDP frame carries no
            // offload state), and NAPI to take XDP frames back.
            crate::in_ns_ok(&ns, &["ethtool", "-K", "inet0", "tx", "off", "gro", "on"]);
        }
        let servers = [INTERNET_IP, INTERNET_IP6].map(|ip| EchoServer::start(&ns, ip, ECHO_PORT));
        Internet {
            ns,
            _servers: servers,
        }
    }

    /// Routes `prefix` (either family) to the sandbox host's uplink
    /// address: the internet reaches addresses the host does not
    /// masquerade.
    pub fn route_to_host(&self, prefix: &str) {
        let (family, via) = if prefix.contains(':') {
            ("-6", UPLINK_IP6)
        } else {
            ("-4", UPLINK_IP)
        };
        tool_ok(
            "ip",
            &[family, "-n", &self.ns, "route", "add", prefix, "via", via],
        );
    }
}

/// An echo server in a namespace, TCP and UDP on one address (IPv4 or
/// IPv6) and port: each TCP connection is answered `"<peer ip>:<peer
/// port>\n"` (`[…]` around an IPv6 address) and then its own bytes; each
/// datagram likewise. Stopped on drop.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    pub fn start(ns: &str, ip: &str, port: u16) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = serve_echo(ns, ip, port, stop.clone());
        EchoServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_echo(ns: &str, ip: &str, port: u16, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let ns = ns.to_owned();
    let addr = SocketAddr::from((ip.parse::<IpAddr>().unwrap(), port));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = thread::spawn(move || {
        enter_netns(&ns).unwrap_or_else(|e| panic!("{e:#}"));
        let tcp = listen(addr).unwrap_or_else(|e| panic!("[{ns}] listen on {addr}: {e}"));
        let udp = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("[{ns}] bind udp {addr}: {e}"));
        udp.set_nonblocking(true).unwrap();
        let _ = ready_tx.send(());
        let mut buf = [0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            // Everything pending first: a burst of connections must not wait
            // on one another.
            let mut idle = true;
            while let Ok((stream, peer)) = tcp.accept() {
                idle = false;
                thread::spawn(move || {
                    let _ = echo_stream(stream, peer);
                });
            }
            while let Ok((n, peer)) = udp.recv_from(&mut buf) {
                idle = false;
                let mut reply = format!("{peer}\n").into_bytes();
                reply.extend_from_slice(&buf[..n]);
                let _ = udp.send_to(&reply, peer);
            }
            if idle {
                thread::sleep(Duration::from_millis(1));
            }
        }
    });
    ready_rx
        .recv_timeout(IO_TIMEOUT)
        .expect("echo server did not start");
    server
}

/// A non-blocking listener with room for a burst of connections.
fn listen(addr: SocketAddr) -> Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn echo_stream(mut stream: TcpStream, peer: SocketAddr) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT * 4))?;
    stream.set_write_timeout(Some(IO_TIMEOUT * 4))?;
    stream.write_all(format!("{peer}\n").as_bytes())?;
    let mut buf = [0u8; 65536];
    loop {
        let n = retry_eintr(|| stream.read(&mut buf))?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// Runs `f` in a thread inside namespace `ns`.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let ns = ns.to_owned();
    thread::spawn(move || {
        enter_netns(&ns)?;
        f()
    })
    .join()
    .map_err(|_| anyhow!("thread panicked"))?
}

/// A TCP exchange with an echo server from the calling thread (already in
/// the client's namespace): sends `payload` (from source port `sport` if
/// given), reads the echo; returns the source address the server saw.
pub fn tcp_echo(server: &str, port: u16, sport: Option<u16>, payload: &[u8]) -> Result<String> {
    let addr = SocketAddr::from((server.parse::<IpAddr>()?, port));
    let mut stream = match sport {
        None => TcpStream::connect_timeout(&addr, IO_TIMEOUT)?,
        Some(sport) => {
            let domain = socket2::Domain::for_address(addr);
            let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket.bind(&unspecified_like(&addr, sport).into())?;
            socket.connect_timeout(&addr.into(), IO_TIMEOUT)?;
            socket.into()
        }
    };
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let seen = read_line(&mut stream).context("reading the server's greeting")?;
    // Read while writing: a payload larger than both socket buffers would
    // otherwise deadlock writer and echo server.
    let mut reader = stream.try_clone()?;
    let echoed = thread::spawn(move || {
        let mut echo = Vec::new();
        reader.read_to_end(&mut echo).map(|_| echo)
    });
    stream.write_all(payload)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let echo = echoed
        .join()
        .map_err(|_| anyhow!("the reading thread panicked"))??;
    ensure!(
        echo == payload,
        "echo from {addr}: {} bytes back for {} sent, or different",
        echo.len(),
        payload.len()
    );
    Ok(seen)
}

fn read_line(stream: &mut TcpStream) -> Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let deadline = Instant::now() + IO_TIMEOUT;
    while Instant::now() < deadline {
        stream.read_exact(&mut byte)?;
        if byte[0] == b'\n' {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(byte[0]);
    }
    Err(anyhow!("no line within {IO_TIMEOUT:?}"))
}

/// A UDP exchange with an echo server from the calling thread; returns the
/// source address the server saw.
pub fn udp_echo(server: &str, port: u16, sport: u16, payload: &[u8]) -> Result<String> {
    udp_echo_within(server, port, sport, payload, IO_TIMEOUT)
}

/// [`udp_echo`] that gives up on the reply after `timeout`.
pub fn udp_echo_within(
    server: &str,
    port: u16,
    sport: u16,
    payload: &[u8],
    timeout: Duration,
) -> Result<String> {
    let server = SocketAddr::from((server.parse::<IpAddr>()?, port));
    let socket = UdpSocket::bind(unspecified_like(&server, sport))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send_to(payload, server)?;
    let mut buf = [0u8; 65536];
    let (n, _) = retry_eintr(|| socket.recv_from(&mut buf))?;
    let reply = &buf[..n];
    let split = reply
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| anyhow!("reply without a peer line"))?;
    ensure!(&reply[split + 1..] == payload, "UDP echo differs");
    Ok(String::from_utf8_lossy(&reply[..split]).into_owned())
}

/// The unspecified address of `addr`'s family, at `port`: what a client of
/// `addr` binds to for a port of its choosing.
fn unspecified_like(addr: &SocketAddr, port: u16) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::from(([0; 4], port)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], port)),
    }
}

/// The IP part of `"ip:port"` or `"[ip6]:port"`.
pub fn ip_of(peer: &str) -> &str {
    let ip = peer.rsplit_once(':').map_or(peer, |(ip, _)| ip);
    ip.strip_prefix('[')
        .and_then(|ip| ip.strip_suffix(']'))
        .unwrap_or(ip)
}

/// A long-lived TCP stream from a namespace to the internet's echo server:
/// a 1000-byte chunk every 50 ms, each echo checked, until the stream is
/// stopped or dropped. Tests ask it for progress after each disruption
/// ([`EchoStream::advances`]), never for a number of chunks in a wall-clock
/// time, which a loaded machine does not keep.
pub struct EchoStream {
    echoed: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<u32>>>,
}

/// How long a stream may go without an echo before a test calls it broken:
/// longer than TCP's retransmissions across a short outage.
const STALL: Duration = Duration::from_secs(15);

impl EchoStream {
    /// Connects from `ns` and returns once the first chunk came back.
    pub fn start(ns: &str) -> EchoStream {
        let ns = ns.to_owned();
        let echoed = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (echoed.clone(), stop.clone());
        let thread = thread::spawn(move || {
            enter_netns(&ns)?;
            let mut s = TcpStream::connect_timeout(
                &SocketAddr::from((INTERNET_IP.parse::<IpAddr>()?, ECHO_PORT)),
                IO_TIMEOUT,
            )?;
            s.set_read_timeout(Some(STALL))?;
            s.set_write_timeout(Some(STALL))?;
            let mut greeting = [0u8; 64];
            let _ = retry_eintr(|| s.read(&mut greeting))?;
            let start = Instant::now();
            let mut n = 0u32;
            while !stopped.load(Ordering::Relaxed) {
                let chunk = crate::payload(&n.to_string(), 1000);
                let at = || format!("chunk {n}, {:.1} s in", start.elapsed().as_secs_f64());
                s.write_all(&chunk).with_context(at)?;
                let mut back = vec![0u8; chunk.len()];
                retry_eintr(|| s.read_exact(&mut back)).with_context(at)?;
                ensure!(back == chunk, "chunk {n} came back different");
                n += 1;
                count.store(n, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(50));
            }
            Ok(n)
        });
        let mut stream = EchoStream {
            echoed,
            stop,
            thread: Some(thread),
        };
        stream.advances();
        stream
    }

    /// Waits until a chunk more than now has come back: the stream lived
    /// through whatever happened before the call. Panics with the stream's
    /// error, or if it stalls.
    pub fn advances(&mut self) {
        let since = self.echoed();
        let deadline = Instant::now() + STALL;
        while self.echoed() <= since {
            if self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
                panic!("the stream ended after {since} chunks: {:?}", self.join());
            }
            assert!(
                Instant::now() < deadline,
                "the stream stalled after {since} chunks"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Chunks echoed so far.
    pub fn echoed(&self) -> u32 {
        self.echoed.load(Ordering::Relaxed)
    }

    /// Stops it: the chunks echoed, or the error that ended it.
    pub fn stop(mut self) -> Result<u32> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    fn join(&mut self) -> Result<u32> {
        self.thread
            .take()
            .ok_or_else(|| anyhow!("the stream was joined already"))?
            .join()
            .map_err(|_| anyhow!("the stream's thread panicked"))?
    }
}

/// Tells the stream to end and leaves it: a stream whose namespace went
/// ends at its next read's time-out, which nobody needs to wait for.
impl Drop for EchoStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
