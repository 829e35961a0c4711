//! A TCP client in the sandbox host, for published ports reached from the
//! host's own connections (which need the lab's host cgroup).

use crate::cgroup::Cgroup;

/// Connects to `argv[1]:argv[2]` and prints the peer line the echo server
/// sent, or `error <kind>`; never fails itself.
const HOST_CLIENT: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    s.settimeout(3)
    peer = b""
    while not peer.endswith(b"\n"):
        d = s.recv(1)
        if not d:
            raise ConnectionError("closed")
        peer += d
    print(peer.decode().strip())
except OSError as e:
    print("error", type(e).__name__)
"#;

/// A TCP connection from sandbox host `host`, inside `cgroup`, to
/// `ip:port` where an [`EchoServer`](crate::internet::EchoServer) answers: the peer it
/// saw (`ip:port`), or `error <kind>` (`error ConnectionRefusedError`, …).
pub fn host_connect(cgroup: &Cgroup, host: &str, ip: &str, port: u16) -> String {
    cgroup.run_in_host(host, HOST_CLIENT, &[ip, &port.to_string()])
}
