//! The lab as the cluster's API server, with a **model** of its watch latency: every object
//! published to it — by the lab (a pod created, as a controller would) or by an agent (a pod's
//! addresses after CNI ADD, a gateway's Ack) — reaches every node's agent after the same
//! delivery delay, in the order it was published, the way each node's watch would see it.
//! The delay stands in for the API server's and the watch's latency, which this machine has
//! none of; the lab's output names it as a model. Agents publish with `POST /v1/objects` on
//! its socket (egress-agent `--cluster-socket`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::agents;

/// One object (or List) on its way to one node's agent.
struct Delivery {
    due: Instant,
    body: Arc<String>,
    /// Told once the agent has applied it.
    done: Sender<()>,
}

/// What the server and the lab share: each node's queue, the delay, what went wrong.
struct Fanout {
    queues: Mutex<Vec<Sender<Delivery>>>,
    delay_ms: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Fanout {
    /// Queues `body` for every node, due after the delay; one receiver per node, told when
    /// that node's agent has applied it.
    fn publish(&self, body: String) -> Vec<Receiver<()>> {
        let due = Instant::now() + Duration::from_millis(self.delay_ms.load(Ordering::Relaxed));
        let body = Arc::new(body);
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .iter()
            .map(|queue| {
                let (done, delivered) = mpsc::channel();
                let _ = queue.send(Delivery {
                    due,
                    body: Arc::clone(&body),
                    done,
                });
                delivered
            })
            .collect()
    }

    fn error(&self, e: String) {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(e);
    }
}

/// The cluster: its listener, one delivery thread per node, the server thread.
pub(crate) struct ClusterStream {
    /// The server's listener (shut down to stop it: its path may be gone by then).
    listener: UnixListener,
    fanout: Arc<Fanout>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl ClusterStream {
    /// Serves `socket` and delivers to the agents listening on `agent_sockets` (the nodes'
    /// order).
    pub(crate) fn start(socket: &Path, agent_sockets: &[PathBuf]) -> Result<Self, String> {
        let _ = std::fs::remove_file(socket);
        let listener =
            UnixListener::bind(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
        let fanout = Arc::new(Fanout {
            queues: Mutex::new(Vec::new()),
            delay_ms: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
        });
        let mut threads = Vec::new();
        for agent in agent_sockets {
            let (queue, deliveries) = mpsc::channel::<Delivery>();
            fanout
                .queues
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(queue);
            let (agent, fanout) = (agent.clone(), Arc::clone(&fanout));
            threads.push(std::thread::spawn(move || {
                for d in deliveries {
                    let now = Instant::now();
                    if d.due > now {
                        std::thread::sleep(d.due - now);
                    }
                    if let Err(e) = agents::post(&agent, "POST", "/v1/objects", &d.body) {
                        fanout.error(format!("delivering to {}: {e}", agent.display()));
                    }
                    let _ = d.done.send(());
                }
            }));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let own = listener
            .try_clone()
            .map_err(|e| format!("{}: {e}", socket.display()))?;
        {
            let (fanout, stop) = (Arc::clone(&fanout), Arc::clone(&stop));
            threads.push(std::thread::spawn(move || {
                // Shut down, the listener's accept fails (EINVAL) and `stop` is set.
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match stream.map_err(|e| e.to_string()).and_then(read_request) {
                        Ok((mut stream, body)) => {
                            fanout.publish(body);
                            let _ = stream.write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                            );
                        }
                        Err(e) => fanout.error(format!("a request to the cluster: {e}")),
                    }
                }
            }));
        }
        Ok(Self {
            listener: own,
            fanout,
            stop,
            threads,
        })
    }

    /// Sets the delivery delay of what is published from now on.
    pub(crate) fn set_delay(&self, delay: Duration) {
        self.fanout
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Publishes objects as the lab (a controller): one receiver per node, told once that
    /// node's agent has applied them.
    pub(crate) fn publish(&self, body: String) -> Vec<Receiver<()>> {
        self.fanout.publish(body)
    }

    /// Waits until every node's agent has applied everything published so far (deliveries
    /// are in order: an empty list published now arrives last).
    pub(crate) fn drain(&self) -> Result<(), String> {
        let done = self.publish(crate::agents::list(Vec::new()));
        for delivered in done {
            delivered
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| "the cluster's deliveries did not drain within 60 s".to_owned())?;
        }
        Ok(())
    }

    /// What went wrong so far (a delivery an agent refused, a bad request).
    pub(crate) fn errors(&self) -> Vec<String> {
        self.fanout
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for ClusterStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the server's accept (shutdown(2) of a listening socket makes it fail); closing
        // the queues ends the delivery threads once their deliveries are made.
        // SAFETY: shutdown(2) on a descriptor this struct owns; it frees nothing.
        unsafe {
            libc::shutdown(
                std::os::fd::AsRawFd::as_raw_fd(&self.listener),
                libc::SHUT_RDWR,
            );
        }
        self.fanout
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One HTTP request's body (Content-Length); the stream to answer on.
fn read_request(stream: UnixStream) -> Result<(UnixStream, String), String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut request_line = String::new();
    reader
        .read_line(&mut request_line)
        .map_err(|e| e.to_string())?;
    if !request_line.starts_with("POST /v1/objects") {
        return Err(format!("unsupported: {}", request_line.trim()));
    }
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if line == "\r\n" || line == "\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let length = length.ok_or("no Content-Length")?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    let body = String::from_utf8(body).map_err(|_| "a body that is not UTF-8".to_owned())?;
    Ok((stream, body))
}
