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
        let mut request = None;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) if request.is_none() => request = Some(line.clone()),
                Ok(_) => {}
            }
        }
        let Some(request) = request else {
            continue;
        };
        // `GET /bytes/N`: N bytes, for throughput.
        let bytes = request
            .split_whitespace()
            .nth(1)
            .and_then(|path| path.strip_prefix("/bytes/"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = bytes {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
            let chunk = vec![b'x'; 1 << 16];
            let mut left = n;
            if writer.write_all(head.as_bytes()).is_err() {
                return;
            }
            while left > 0 {
                let take = left.min(chunk.len() as u64) as usize;
                if writer.write_all(&chunk[..take]).is_err() {
                    return;
                }
                left -= take as u64;
            }
            continue;
        }
        // `GET /seen`: the address and when the server saw the request (CLOCK_MONOTONIC ns, one
        // clock for every namespace of the machine): what the internet saw, and when.
        let seen_at = request.split_whitespace().nth(1) == Some("/seen");
        let body = if seen_at {
            format!("{} {}\n", peer.ip(), monotonic_ns())
        } else {
            format!("{}\n", peer.ip())
        };
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
    let mut connection = Connection::open(addr, timeout)?;
    connection.request()
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every network namespace of the
/// machine, so the lab, its clients and its echo server can compare times.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// One `GET /seen` on a fresh connection: the address the server saw and when
/// ([`monotonic_ns`]).
fn fetch_seen(addr: SocketAddr, timeout: Duration) -> Result<(String, u64), String> {
    let mut connection = Connection::open(addr, timeout)?;
    let body = connection.request_path("/seen")?;
    let (ip, at) = body
        .split_once(' ')
        .ok_or_else(|| format!("{addr}: the server answered {body:?}"))?;
    let at = at
        .trim()
        .parse()
        .map_err(|_| format!("{addr}: the server answered {body:?}"))?;
    Ok((ip.to_owned(), at))
}

/// A kept-alive connection to the echo server.
pub(crate) struct Connection {
    addr: SocketAddr,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects within `timeout`; every read of an answer waits as long at most.
    pub(crate) fn open(addr: SocketAddr, timeout: Duration) -> Result<Self, String> {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        Ok(Self {
            addr,
            writer: stream,
            reader,
        })
    }

    /// One request on this connection: the address the server saw.
    pub(crate) fn request(&mut self) -> Result<String, String> {
        self.request_path("/")
    }

    /// One request of `path` on this connection: the response's body.
    fn request_path(&mut self, path: &str) -> Result<String, String> {
        let addr = self.addr;
        self.writer
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .map_err(|e| format!("send to {addr}: {e}"))?;
        // The headers, then Content-Length bytes.
        let mut length = None;
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(format!("{addr}: connection closed")),
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse::<u64>().ok();
                    }
                }
                Err(e) => return Err(format!("read from {addr}: {e}")),
            }
        }
        let length = length.ok_or_else(|| format!("{addr}: no Content-Length"))?;
        let mut body = String::new();
        (&mut self.reader)
            .take(length)
            .read_to_string(&mut body)
            .map_err(|e| format!("read from {addr}: {e}"))?;
        Ok(body.trim().to_owned())
    }
}

/// Downloads `bytes` bytes from `addr` on a fresh connection: the seconds from the request
/// to the last byte.
pub(crate) fn download(addr: SocketAddr, bytes: u64) -> Result<f64, String> {
    let mut connection = Connection::open(addr, Duration::from_secs(5))?;
    let start = std::time::Instant::now();
    connection
        .writer
        .write_all(format!("GET /bytes/{bytes} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    loop {
        let mut line = String::new();
        match connection.reader.read_line(&mut line) {
            Ok(0) => return Err(format!("{addr}: connection closed")),
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
            Err(e) => return Err(format!("read from {addr}: {e}")),
        }
    }
    let got = std::io::copy(
        &mut (&mut connection.reader).take(bytes),
        &mut std::io::sink(),
    )
    .map_err(|e| format!("read from {addr}: {e}"))?;
    if got != bytes {
        return Err(format!("{addr}: {got} of {bytes} bytes"));
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Polls `addr` every `interval` over one kept-alive connection, printing `ok IP` per answer
/// and `broken REASON` when the connection fails (then a new one is opened), until killed.
pub(crate) fn poll(addr: SocketAddr, interval: Duration) -> Result<(), String> {
    let timeout = Duration::from_millis(1000);
    let mut out = std::io::stdout().lock();
    loop {
        match Connection::open(addr, timeout) {
            Err(e) => writeln!(out, "broken {e}").map_err(|e| e.to_string())?,
            Ok(mut connection) => loop {
                match connection.request() {
                    Ok(ip) => writeln!(out, "ok {ip}").map_err(|e| e.to_string())?,
                    Err(e) => {
                        writeln!(out, "broken {e}").map_err(|e| e.to_string())?;
                        break;
                    }
                }
                out.flush().map_err(|e| e.to_string())?;
                std::thread::sleep(interval);
            },
        }
        out.flush().map_err(|e| e.to_string())?;
        std::thread::sleep(interval);
    }
}

/// A new pod's client (issue 24, Cilium's `egw-scale-utils` client): waits for a line on
/// stdin (the runtime starting the container once CNI ADD returned), then opens a new
/// connection to `addr` every `interval` for `duration`, one request each, each bounded by
/// `timeout`, whatever the earlier ones are doing. Prints one JSON array: per request, the
/// microseconds from the start to its connect and to its answer, the address the server saw
/// (or why it failed), and when the server saw it ([`monotonic_ns`]; null when it failed).
pub(crate) fn burst(
    addr: SocketAddr,
    interval: Duration,
    duration: Duration,
    timeout: Duration,
) -> Result<(), String> {
    let mut go = String::new();
    std::io::stdin()
        .read_line(&mut go)
        .map_err(|e| format!("waiting for the start: {e}"))?;
    let start = std::time::Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut k = 0u32;
    while interval * k < duration {
        let due = start + interval * k;
        let now = std::time::Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let tx = tx.clone();
        std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                let sent = start.elapsed();
                let answer = fetch_seen(addr, timeout);
                let _ = tx.send((k, sent, start.elapsed(), answer));
            })
            .map_err(|e| format!("a request's thread: {e}"))?;
        k += 1;
    }
    drop(tx);
    let mut attempts: Vec<_> = rx.iter().collect();
    attempts.sort_by_key(|a| a.0);
    let json: Vec<serde_json::Value> = attempts
        .into_iter()
        .map(|(_, sent, done, answer)| match answer {
            Ok((ip, at)) => {
                serde_json::json!([sent.as_micros() as u64, done.as_micros() as u64, ip, at])
            }
            Err(e) => serde_json::json!([sent.as_micros() as u64, null, e, null]),
        })
        .collect();
    println!("{}", serde_json::Value::Array(json));
    Ok(())
}
