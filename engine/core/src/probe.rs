//! `sqe-server health` / `sqe-worker health`: asks the process's own `/readyz` whether it is
//! ready, for a container runtime's HEALTHCHECK (the image has no shell and no curl). Plain
//! HTTP/1.1 over a blocking socket: one request, no client library.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where to probe a listener configured at `listen` (`host:port`): a wildcard address means
/// this machine, so it is probed on loopback.
pub fn probe_addr(listen: &str) -> Result<SocketAddr, String> {
    let addr = listen
        .to_socket_addrs()
        .map_err(|e| format!("coordinator.health_addr = {listen}: {e}"))?
        .next()
        .ok_or_else(|| format!("coordinator.health_addr = {listen}: resolves to no address"))?;
    Ok(match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    })
}

/// The status code of an HTTP/1.x response, from its first bytes.
pub fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// GET `path` on `addr`: Ok when it answers 200, else what went wrong.
pub fn check(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("{addr}: cannot connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{addr}: {e}"))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{addr}: cannot send the request: {e}"))?;
    let mut head = [0u8; 256];
    let mut len = 0;
    while len < head.len() && !head[..len].contains(&b'\n') {
        match stream.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(format!("{addr}: no answer: {e}")),
        }
    }
    match status_code(&head[..len]) {
        Some(200) => Ok(()),
        Some(code) => Err(format!("{addr}{path} answered {code}")),
        None => Err(format!("{addr}{path}: not an HTTP answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        let cases: [(&[u8], Option<u16>); 6] = [
            (b"HTTP/1.1 200 OK\r\n", Some(200)),
            (
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n",
                Some(503),
            ),
            (b"HTTP/1.0 200 OK", Some(200)),
            (b"HTTP/2 200\r\n", None),
            (b"SSH-2.0-OpenSSH\r\n", None),
            (b"", None),
        ];
        for (head, want) in cases {
            assert_eq!(status_code(head), want, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn wildcard_listeners_are_probed_on_loopback() {
        let cases = [
            ("0.0.0.0:9091", "127.0.0.1:9091"),
            ("127.0.0.1:9191", "127.0.0.1:9191"),
            ("[::]:9091", "[::1]:9091"),
        ];
        for (listen, want) in cases {
            assert_eq!(probe_addr(listen).unwrap().to_string(), want, "{listen}");
        }
        assert!(
            probe_addr("nonsense")
                .unwrap_err()
                .contains("coordinator.health_addr")
        );
    }

    #[test]
    fn checks_a_real_listener() {
        use std::net::TcpListener;
        for (answer, ok) in [
            ("HTTP/1.1 200 OK\r\n\r\n", true),
            ("HTTP/1.1 503 Service Unavailable\r\n\r\n", false),
        ] {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = std::thread::spawn(move || {
                let (mut conn, _) = listener.accept().unwrap();
                let mut request = [0u8; 512];
                let n = conn.read(&mut request).unwrap();
                conn.write_all(answer.as_bytes()).unwrap();
                String::from_utf8_lossy(&request[..n]).into_owned()
            });
            let result = check(addr, "/readyz", Duration::from_secs(2));
            assert_eq!(result.is_ok(), ok, "{result:?}");
            assert!(
                server
                    .join()
                    .unwrap()
                    .starts_with("GET /readyz HTTP/1.1\r\n")
            );
        }
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(
            check(closed, "/readyz", Duration::from_secs(1))
                .unwrap_err()
                .contains("cannot connect")
        );
    }
}
