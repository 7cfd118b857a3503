//! The lab's `ifconfig.me`: an HTTP server answering every request with the address it came
//! from, and the client the pods run. Both run inside namespaces as `egress-lab` itself
//! (`ip netns exec NS egress-lab echo-server|fetch ...`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Serves on every address of `addrs` until killed; prints `ready` once all are bound.
pub(crate) fn serve(addrs: &[SocketAddr]) -> Result<(), String> {
    let mut listeners = Vec::new();
    for addr in addrs {
        listeners.push(TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?);
    }
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut threads = Vec::new();
    for listener in listeners {
        threads.push(std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || answer(stream));
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// Answers each request of a connection (keep-alive) with the peer's address.
fn answer(stream: TcpStream) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        // The request line and headers, up to the empty line.
        let mut line = String::new();
        let mut any = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) => any = true,
            }
        }
        if !any {
            continue;
        }
        let body = format!("{}\n", peer.ip());
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// One request to `addr`, on a fresh connection: the response's body (the address the server
/// saw), or why it failed.
pub(crate) fn fetch(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut response = String::new();
    // The server keeps connections open: read the headers, then Content-Length bytes.
    let mut reader = BufReader::new(&mut stream);
    let mut length = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return Err(format!("{addr}: connection closed before the answer")),
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse::<usize>().ok();
                }
            }
            Err(e) => return Err(format!("read from {addr}: {e}")),
        }
    }
    let length = length.ok_or_else(|| format!("{addr}: no Content-Length"))?;
    reader
        .take(length as u64)
        .read_to_string(&mut response)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    Ok(response.trim().to_owned())
}
