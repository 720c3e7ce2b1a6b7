//! Faults to put a dependency through while a load runs:
//!
//! - [`FaultProxy`]: a TCP proxy in front of a dependency that can cut it off (every
//!   open connection dropped, every new one closed at once), slow it (each answer held
//!   back a while), hold its answers (requests go through and are acted on, answers do
//!   not come back: a commit whose answer is lost) and restore it. The emulators keep
//!   their data in memory, so a proxy is how they "fail" and come back with it.
//! - [`Paused`]: a process of the local stack stopped (SIGSTOP) until dropped
//!   (SIGCONT): a partition that freezes every connection mid-flight.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passes everything through.
    None,
    /// Drops every open connection and closes each new one on arrival.
    Cut,
    /// Holds each answer back this long before passing it on.
    Slow(Duration),
    /// Passes requests on but keeps their answers until the fault is lifted.
    HoldAnswers,
    /// [`Fault::HoldAnswers`] for the requests whose head contains this text (an
    /// `X-Amz-Target` such as `DynamoDB_20120810.TransactWriteItems`): the commit
    /// happens, its answer is lost; every other call goes through.
    HoldAnswersTo(&'static str),
}

/// A proxy on a free loopback port in front of `upstream`.
pub struct FaultProxy {
    port: u16,
    upstream: SocketAddr,
    fault: watch::Sender<Fault>,
    accepting: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let (fault, watching) = watch::channel(Fault::None);
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                if *watching.borrow() == Fault::Cut {
                    drop(client);
                    continue;
                }
                tokio::spawn(relay(client, upstream, watching.clone()));
            }
        });
        FaultProxy { port, upstream, fault, accepting }
    }

    /// A proxy in front of the `http://host:port` (or `redis://…`) endpoint `url`.
    pub async fn in_front_of(url: &str) -> FaultProxy {
        FaultProxy::start(socket_of(url)).await
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the proxy stands in front of, as `http://host:port`.
    pub fn upstream(&self) -> String {
        format!("http://{}", self.upstream)
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn endpoint_for(&self, url: &str) -> String {
        let (scheme, _) = url.split_once("://").expect("a URL with a scheme");
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// The socket address of a `scheme://host:port[/…]` URL.
pub fn socket_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let authority = authority.replace("localhost", "127.0.0.1");
    authority.parse().unwrap_or_else(|e| panic!("{url} names no host:port ({e})"))
}

async fn relay(client: TcpStream, upstream: SocketAddr, fault: watch::Receiver<Fault>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Whether the request in flight on this connection is one whose answer is held
    // (HTTP/1.1: one request at a time per connection).
    let marked = Arc::new(AtomicBool::new(false));
    let requests = pump(client_read, server_write, fault.clone(), Direction::Requests(marked.clone()));
    let answers = pump(server_read, client_write, fault, Direction::Answers(marked));
    // Each direction runs until its sender closes (passing the close on) or the link
    // is cut; the connection is gone when both have.
    tokio::join!(requests, answers);
}

enum Direction {
    Requests(Arc<AtomicBool>),
    Answers(Arc<AtomicBool>),
}

/// Copies `from` to `to` under the fault of the moment; returns when either side
/// closes or the link is cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
    direction: Direction,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = fault.wait_for(|f| *f == Fault::Cut) => return,
        };
        let n = match read {
            // Closed: pass the close on; the other direction may still be answering.
            Ok(0) => {
                let _ = to.shutdown().await;
                return;
            }
            // Reset: dropping both halves resets the other side too.
            Err(_) => return,
            Ok(n) => n,
        };
        let now = *fault.borrow_and_update();
        match &direction {
            Direction::Requests(marked) => {
                let chunk = &buffer[..n];
                if let Fault::HoldAnswersTo(text) = now {
                    if contains(chunk, text.as_bytes()) {
                        marked.store(true, Ordering::SeqCst);
                    } else if starts_a_request(chunk) {
                        marked.store(false, Ordering::SeqCst);
                    }
                }
            }
            Direction::Answers(marked) => {
                let held = match now {
                    Fault::Cut => return,
                    Fault::Slow(delay) => {
                        tokio::time::sleep(delay).await;
                        false
                    }
                    Fault::HoldAnswers => true,
                    Fault::HoldAnswersTo(_) => marked.load(Ordering::SeqCst),
                    Fault::None => false,
                };
                if held && fault.wait_for(|f| *f != now).await.map(|f| *f == Fault::Cut).unwrap_or(true) {
                    return;
                }
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

/// Whether `chunk` begins an HTTP request head.
fn starts_a_request(chunk: &[u8]) -> bool {
    [&b"POST "[..], b"GET ", b"PUT ", b"DELETE ", b"HEAD "].iter().any(|method| chunk.starts_with(method))
}

/// A process of the local stack (`dynamodb`, `moto`, `redis`, as the stack's `pids`
/// file names them), stopped until this is dropped.
pub struct Paused {
    pid: u32,
}

impl Paused {
    pub fn pause(process: &str) -> Paused {
        let pid = stack_pid(process);
        signal(pid, "STOP");
        Paused { pid }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // Never a panic here: this may run while a failed test unwinds.
        if let Err(err) = send(self.pid, "CONT") {
            eprintln!("could not resume process {}: {err}", self.pid);
        }
    }
}

fn signal(pid: u32, name: &str) {
    send(pid, name).unwrap_or_else(|err| panic!("{err}"));
}

fn send(pid: u32, name: &str) -> Result<(), String> {
    match std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status() {
        Ok(status) if status.success() => Ok(()),
        outcome => Err(format!("kill -{name} {pid}: {outcome:?}")),
    }
}

/// The pid of `process` in the running stack (`RUSHCART_STACK_DIR/pids`, which
/// `localstack/with-stack.sh` sets).
pub fn stack_pid(process: &str) -> u32 {
    let dir = std::env::var("RUSHCART_STACK_DIR").unwrap_or_else(|_| {
        panic!("RUSHCART_STACK_DIR is not set: run the fault suite under localstack/with-stack.sh")
    });
    let pids = std::fs::read_to_string(std::path::Path::new(&dir).join("pids")).expect("read the stack's pids");
    pids.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(name, _)| *name == process)
        .and_then(|(_, pid)| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("the stack runs no {process}: {pids}"))
}

/// An HTTP proxy in front of DynamoDB that answers some `TransactWriteItems` itself,
/// without forwarding them:
/// - the next few as DynamoDB answers a transaction that ran into another:
///   `TransactionCanceledException`, its first item `TransactionConflict`, the rest
///   `None`. The local engine runs one call at a time and so never conflicts; this is
///   how the conflict-retry path meets a conflict here;
/// - every one that writes an item of a partition it is told is hot, as DynamoDB answers
///   a transaction over a partition's limit: `ThrottlingError` on those items, `None`
///   on the rest (what the capacity model does, on the items a test chooses).
///
/// Everything else is passed on untouched (headers, signature and body), one upstream
/// connection per client one.
pub struct ConflictInjector {
    port: u16,
    upstream: SocketAddr,
    pending: Arc<std::sync::atomic::AtomicU64>,
    answered: Arc<std::sync::atomic::AtomicU64>,
    hot: Arc<std::sync::Mutex<Vec<String>>>,
    accepting: tokio::task::JoinHandle<()>,
}

/// The `X-Amz-Target` of a transaction.
const TRANSACT_WRITE_ITEMS: &str = "DynamoDB_20120810.TransactWriteItems";

impl ConflictInjector {
    /// An injector on a free loopback port in front of the `http://host:port` `url`.
    pub async fn in_front_of(url: &str) -> ConflictInjector {
        let upstream = socket_of(url);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the injector");
        let port = listener.local_addr().expect("the injector's address").port();
        let pending = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let hot = Arc::new(std::sync::Mutex::new(Vec::new()));
        let answers = Answers { pending: pending.clone(), answered: answered.clone(), hot: hot.clone() };
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                tokio::spawn(intercept(client, upstream, answers.clone()));
            }
        });
        ConflictInjector { port, upstream, pending, answered, hot, accepting }
    }

    /// The injector's endpoint, for the functions' client.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it stands in front of, as `http://host:port`.
    pub fn upstream(&self) -> String {
        format!("http://{}", self.upstream)
    }

    /// The next `count` transactions are answered with a conflict.
    pub fn conflict_next(&self, count: u64) {
        self.pending.store(count, Ordering::SeqCst);
    }

    /// How many transactions it has answered with a conflict so far.
    pub fn conflicts_answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }

    /// From now on every transaction writing an item whose partition key is `pk` is
    /// answered as throttled on that item.
    pub fn throttle_partition(&self, pk: &str) {
        self.hot.lock().expect("the hot partitions").push(pk.to_owned());
    }
}

/// What the injector answers itself (see [`ConflictInjector`]).
#[derive(Clone)]
struct Answers {
    pending: Arc<std::sync::atomic::AtomicU64>,
    answered: Arc<std::sync::atomic::AtomicU64>,
    hot: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Answers {
    /// The answer to a transaction of `body`, if the injector gives it: each item's
    /// cancellation reason, `None` for the items that went through.
    fn to_transaction(&self, body: &[u8]) -> Option<Vec<Option<(&'static str, &'static str)>>> {
        let items: Vec<serde_json::Value> = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|request| request["TransactItems"].as_array().cloned())
            .unwrap_or_default();
        let hot = self.hot.lock().expect("the hot partitions").clone();
        let throttled: Vec<bool> = items
            .iter()
            .map(|item| {
                let written = item.as_object().and_then(|kinds| kinds.values().next());
                let pk = written.and_then(|w| w["Key"]["pk"]["S"].as_str().or_else(|| w["Item"]["pk"]["S"].as_str()));
                pk.is_some_and(|pk| hot.iter().any(|h| h == pk))
            })
            .collect();
        if throttled.contains(&true) {
            let reason = ("ThrottlingError", "Throughput exceeds the current capacity for one or more partition keys");
            return Some(throttled.into_iter().map(|t| t.then_some(reason)).collect());
        }
        if self.pending.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err() {
            return None;
        }
        self.answered.fetch_add(1, Ordering::SeqCst);
        let conflict = ("TransactionConflict", "Transaction is ongoing for the item");
        Some((0..items.len().max(1)).map(|i| (i == 0).then_some(conflict)).collect())
    }
}

impl Drop for ConflictInjector {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

type ProxiedBody = http_body_util::Full<hyper::body::Bytes>;

async fn intercept(client: TcpStream, upstream: SocketAddr, answers: Answers) {
    use http_body_util::BodyExt as _;
    use hyper_util::rt::TokioIo;

    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let Ok((sender, connection)) = hyper::client::conn::http1::handshake(TokioIo::new(server)).await else { return };
    tokio::spawn(connection);
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let (sender, answers) = (sender.clone(), answers.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            let is_transaction = parts.headers.get("x-amz-target").is_some_and(|t| t == TRANSACT_WRITE_ITEMS);
            if let Some(reasons) = is_transaction.then(|| answers.to_transaction(&body)).flatten() {
                return Ok(cancelled(&reasons));
            }
            let forwarded = hyper::Request::from_parts(parts, ProxiedBody::new(body));
            let response = sender.lock().await.send_request(forwarded).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>(hyper::Response::from_parts(parts, ProxiedBody::new(body)))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(client), service).await;
}

/// DynamoDB's `TransactionCanceledException` with `reasons`, one per item in order (a
/// code and message, or `None` for an item that was not the cause).
fn cancelled(reasons: &[Option<(&str, &str)>]) -> hyper::Response<ProxiedBody> {
    let codes: Vec<&str> = reasons.iter().map(|reason| reason.map_or("None", |(code, _)| code)).collect();
    let reasons: Vec<serde_json::Value> = reasons
        .iter()
        .map(|reason| match reason {
            Some((code, message)) => serde_json::json!({"Code": code, "Message": message}),
            None => serde_json::json!({"Code": "None"}),
        })
        .collect();
    let body = serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        "CancellationReasons": reasons,
    });
    hyper::Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", ulid::Ulid::generate().to_string())
        .body(ProxiedBody::new(body.to_string().into()))
        .expect("a well-formed answer")
}

/// The count of metric `name` with `dimension` among its dimensions' values, summed,
/// in what the local API's `/_local/metrics` answered.
pub fn metric_count(metrics: &serde_json::Value, name: &str, dimension: &str) -> u64 {
    metrics["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["name"] == name && m["dimensions"].as_object().is_some_and(|d| d.values().any(|v| v == dimension))
        })
        .map(|m| m["count"].as_u64().unwrap_or(0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    }

    async fn round_trip(stream: &mut TcpStream, text: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(text).await?;
        let mut answer = vec![0u8; text.len()];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn passes_cuts_holds_and_restores() {
        let proxy = FaultProxy::start(echo_server().await).await;
        let address = format!("127.0.0.1:{}", proxy.port());
        let mut stream = TcpStream::connect(&address).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"one").await.unwrap(), b"one");

        proxy.set(Fault::HoldAnswers);
        let held = tokio::time::timeout(Duration::from_millis(300), round_trip(&mut stream, b"two")).await;
        assert!(held.is_err(), "an answer came through a hold");
        proxy.set(Fault::None);
        let mut answer = [0u8; 3];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"two", "the held answer arrives once the hold is lifted");

        proxy.set(Fault::Cut);
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "an open connection survived the cut");
        let mut fresh = TcpStream::connect(&address).await.unwrap();
        let refused = tokio::time::timeout(Duration::from_secs(5), round_trip(&mut fresh, b"three")).await;
        assert!(matches!(refused, Ok(Err(_))), "a new connection was served while cut: {refused:?}");

        proxy.set(Fault::None);
        let mut back = TcpStream::connect(&address).await.unwrap();
        assert_eq!(round_trip(&mut back, b"four").await.unwrap(), b"four");
    }

    #[test]
    fn endpoints_are_read_and_rewritten() {
        assert_eq!(socket_of("http://127.0.0.1:8000"), "127.0.0.1:8000".parse().unwrap());
        assert_eq!(socket_of("redis://localhost:6379/0"), "127.0.0.1:6379".parse().unwrap());
    }
}
