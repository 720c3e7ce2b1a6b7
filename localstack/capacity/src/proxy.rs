//! The proxy: an HTTP server that takes DynamoDB's JSON requests, asks the model, and
//! either forwards a request to the engine (over a keep-alive pool) or answers the
//! throttle itself. It is the imperative shell around [`crate::plan`] and
//! [`crate::model`].
//!
//! - The operations the model charges ([`Op`]) are planned, admitted or refused, and
//!   forwarded unchanged when admitted (a batch with refused items is forwarded
//!   without them).
//! - A write whose cost depends on the stored item is preceded by a strongly consistent
//!   read of that item (`GetItem`, or `BatchGetItem` for a transaction or a batch): it
//!   is decided before it is forwarded, and a forwarded write commits. These reads are
//!   the proxy's own and are not charged.
//! - A table's key schema and indexes come from the engine's `DescribeTable`, cached
//!   by table name; `CreateTable`, `UpdateTable` and `DeleteTable` passing through drop
//!   the entry.
//! - Everything else (DynamoDB Streams, the control plane, PartiQL) passes through
//!   untouched and uncharged.
//! - `GET /_capacity/metrics` answers the model's counters as JSON.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::answer::{self, Answer};
use crate::clock::Clock;
use crate::model::{Limits, Model, Verdict};
use crate::plan::{self, Admission, Op, Plan, Schemas, Stored};
use crate::schema::TableSchema;
use crate::size::Item;

/// Where the counters are served.
pub const METRICS_PATH: &str = "/_capacity/metrics";

/// What DynamoDB's JSON protocol is sent as.
const AMZ_JSON: &str = "application/x-amz-json-1.0";

/// The most keys one `BatchGetItem` may name.
const BATCH_GET_KEYS: usize = 100;

type Body = Full<Bytes>;

#[derive(Debug, Clone)]
pub struct Config {
    pub limits: Limits,
    pub clock: Clock,
}

/// A bound proxy, not yet serving.
pub struct Server {
    listener: TcpListener,
    proxy: Arc<Proxy>,
}

/// A way to read the model's counters while the server runs.
#[derive(Clone)]
pub struct Handle {
    proxy: Arc<Proxy>,
}

impl Handle {
    /// What `GET /_capacity/metrics` answers.
    pub fn metrics(&self) -> Value {
        self.proxy.model().metrics()
    }

    pub fn limits(&self) -> Limits {
        self.proxy.model().limits()
    }

    /// Puts `limits` in force from now on ([`Model::set_limits`]).
    pub fn set_limits(&self, limits: Limits) {
        self.proxy.model().set_limits(limits);
    }
}

impl Server {
    /// Binds `listen` in front of the engine at `upstream` (`http://host:port`).
    pub async fn bind(listen: SocketAddr, upstream: &str, config: Config) -> anyhow::Result<Server> {
        let upstream = upstream.trim_end_matches('/');
        anyhow::ensure!(upstream.starts_with("http://"), "the upstream {upstream} is not an http:// URL");
        let listener = TcpListener::bind(listen).await.with_context(|| format!("bind {listen}"))?;
        // Without TCP_NODELAY a request sent as head then body waits out delayed ACKs
        // (tens of milliseconds a call).
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        let proxy = Proxy {
            upstream: upstream.to_owned(),
            client,
            model: Mutex::new(Model::new(config.limits)),
            schemas: Mutex::new(Schemas::new()),
            clock: config.clock,
        };
        Ok(Server { listener, proxy: Arc::new(proxy) })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener.local_addr().context("the proxy's address")
    }

    pub fn handle(&self) -> Handle {
        Handle { proxy: self.proxy.clone() }
    }

    /// Serves until the task is dropped or aborted.
    pub async fn serve(self) {
        loop {
            let (stream, _) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    eprintln!("capacity: accept: {err}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let proxy = self.proxy.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| handle(proxy.clone(), request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

struct Proxy {
    upstream: String,
    client: Client<HttpConnector, Body>,
    model: Mutex<Model>,
    schemas: Mutex<Schemas>,
    clock: Clock,
}

/// A request as it came: what forwarding it needs.
struct Received {
    method: Method,
    path: String,
    headers: HeaderMap,
}

/// An answer from the engine.
struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// What the client gets.
enum Reply {
    Upstream(Upstream),
    Own(Answer),
}

async fn handle(proxy: Arc<Proxy>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if request.method() == Method::GET && request.uri().path() == METRICS_PATH {
        let metrics = proxy.model().metrics();
        return Ok(response(StatusCode::OK, "application/json", Bytes::from(metrics.to_string()), HeaderMap::new()));
    }
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => return Ok(plain(StatusCode::BAD_REQUEST, &format!("could not read the request: {err}"))),
    };
    let incoming = Received {
        method: parts.method,
        path: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        headers: parts.headers,
    };
    let target = incoming.headers.get("x-amz-target").and_then(|t| t.to_str().ok()).unwrap_or_default().to_owned();
    let reply = match Op::from_target(&target) {
        Some(op) => proxy.charged(op, &incoming, body).await,
        None => proxy.uncharged(&target, &incoming, body).await,
    };
    Ok(match reply {
        Ok(Reply::Upstream(upstream)) => response(upstream.status, "", upstream.body, upstream.headers),
        Ok(Reply::Own(answer)) => own(answer),
        Err(err) => {
            eprintln!("capacity: {target}: {err:#}");
            plain(StatusCode::BAD_GATEWAY, &format!("the capacity proxy could not reach the engine: {err:#}"))
        }
    })
}

impl Proxy {
    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached_schemas(&self) -> MutexGuard<'_, Schemas> {
        self.schemas.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Passes a request through untouched; a table's schema changes drop its cache entry.
    async fn uncharged(&self, target: &str, incoming: &Received, body: Bytes) -> anyhow::Result<Reply> {
        let changes_schema = matches!(
            target,
            "DynamoDB_20120810.CreateTable" | "DynamoDB_20120810.UpdateTable" | "DynamoDB_20120810.DeleteTable"
        );
        let table = changes_schema
            .then(|| serde_json::from_slice::<Value>(&body).ok())
            .flatten()
            .and_then(|request| request.get("TableName")?.as_str().map(str::to_owned));
        if let Some(table) = &table {
            self.cached_schemas().remove(table);
        }
        let upstream = self.forward(incoming, body).await?;
        if let Some(table) = &table {
            self.cached_schemas().remove(table);
        }
        self.model().uncharged();
        Ok(Reply::Upstream(upstream))
    }

    async fn charged(&self, op: Op, incoming: &Received, body: Bytes) -> anyhow::Result<Reply> {
        // Malformed, or for a table the engine does not have: the engine answers it.
        let Ok(request) = serde_json::from_slice::<Value>(&body) else {
            return self.uncharged("", incoming, body).await;
        };
        let schemas = self.schemas_for(&plan::tables(op, &request), &incoming.headers).await?;
        let plan = if op.is_write() {
            let stored = self.stored(&plan::keys_to_read(op, &request, &schemas), &schemas, &incoming.headers).await?;
            plan::writes(op, &request, &schemas, &stored)
        } else {
            plan::reads(op, &request, &schemas)
        };
        let Some(plan) = plan else {
            return self.uncharged("", incoming, body).await;
        };
        let verdict = self.model().admit(self.clock.now(), &plan);
        let reply = self.carry_out(op, &request, &plan, &verdict, incoming, body).await?;
        if let Reply::Upstream(upstream) = &reply {
            if !op.is_write() && upstream.status == StatusCode::OK {
                if let Ok(answer) = serde_json::from_slice::<Value>(&upstream.body) {
                    let charges = plan::settlement(op, &request, &answer, &schemas);
                    self.model().settle(self.clock.now(), &charges);
                }
            }
        }
        Ok(reply)
    }

    /// Forwards what the verdict admitted, and answers what it refused.
    async fn carry_out(
        &self,
        op: Op,
        request: &Value,
        plan: &Plan,
        verdict: &Verdict,
        incoming: &Received,
        body: Bytes,
    ) -> anyhow::Result<Reply> {
        if verdict.admitted_all() {
            return Ok(Reply::Upstream(self.forward(incoming, body).await?));
        }
        match plan.admission {
            Admission::Whole => Ok(Reply::Own(answer::throughput_exceeded(verdict.refusals()))),
            Admission::Transaction => Ok(Reply::Own(answer::transaction_cancelled(verdict))),
            Admission::EachItem if verdict.admitted_none() => {
                Ok(Reply::Own(answer::throughput_exceeded(verdict.refusals())))
            }
            Admission::EachItem => {
                let (forwarded, unprocessed) =
                    answer::split_batch(op, request, plan, verdict).context("split a batch the plan read")?;
                let mut upstream = self.forward(incoming, Bytes::from(forwarded.to_string())).await?;
                if upstream.status == StatusCode::OK {
                    let mut answer: Value =
                        serde_json::from_slice(&upstream.body).context("the engine's answer to a batch")?;
                    answer::merge_unprocessed(op, &mut answer, unprocessed);
                    upstream.body = Bytes::from(answer.to_string());
                    upstream.headers.remove("x-amz-crc32");
                    if let Ok(crc) = HeaderValue::from_str(&crc32(&upstream.body).to_string()) {
                        upstream.headers.insert("x-amz-crc32", crc);
                    }
                }
                Ok(Reply::Upstream(upstream))
            }
        }
    }

    /// The schemas of `tables`, from the cache or the engine; a table the engine does
    /// not have is left out.
    async fn schemas_for(&self, tables: &[String], headers: &HeaderMap) -> anyhow::Result<Schemas> {
        let mut schemas = Schemas::new();
        for table in tables {
            let cached = self.cached_schemas().get(table).cloned();
            let schema = match cached {
                Some(schema) => Some(schema),
                None => self.describe(table, headers).await?,
            };
            if let Some(schema) = schema {
                schemas.insert(table.clone(), schema);
            }
        }
        Ok(schemas)
    }

    async fn describe(&self, table: &str, headers: &HeaderMap) -> anyhow::Result<Option<Arc<TableSchema>>> {
        let answer = self.call("DescribeTable", &json!({"TableName": table}), headers).await?;
        if answer.status != StatusCode::OK {
            return Ok(None);
        }
        let description: Value = serde_json::from_slice(&answer.body).context("the engine's DescribeTable answer")?;
        let schema =
            Arc::new(TableSchema::from_description(&description).with_context(|| format!("describe {table}"))?);
        self.cached_schemas().insert(table.to_owned(), schema.clone());
        Ok(Some(schema))
    }

    /// The items as stored now under `keys` (strongly consistent reads of the engine).
    async fn stored(&self, keys: &[(String, Item)], schemas: &Schemas, headers: &HeaderMap) -> anyhow::Result<Stored> {
        let mut stored = Stored::default();
        let mut seen = std::collections::HashSet::new();
        let mut wanted: Vec<(&str, &Item)> = Vec::new();
        for (table, key) in keys {
            let Some(id) = schemas.get(table).and_then(|schema| schema.key_id(key)) else { continue };
            if seen.insert((table.as_str(), id)) {
                wanted.push((table, key));
            }
        }
        let mut found: Vec<(String, Item)> = Vec::new();
        if let [(table, key)] = wanted.as_slice() {
            let request = json!({"TableName": table, "Key": key, "ConsistentRead": true});
            let answer = self.call("GetItem", &request, headers).await?;
            if answer.status == StatusCode::OK {
                let answer: Value = serde_json::from_slice(&answer.body).context("the engine's GetItem answer")?;
                if let Some(item) = answer.get("Item").and_then(Value::as_object) {
                    found.push(((*table).to_owned(), item.clone()));
                }
            }
        } else {
            for chunk in wanted.chunks(BATCH_GET_KEYS) {
                found.extend(self.batch_get(chunk, headers).await?);
            }
        }
        for (table, item) in found {
            if let Some(id) = schemas.get(&table).and_then(|schema| schema.key_id(&item)) {
                stored.insert(&table, id, item);
            }
        }
        Ok(stored)
    }

    async fn batch_get(&self, keys: &[(&str, &Item)], headers: &HeaderMap) -> anyhow::Result<Vec<(String, Item)>> {
        let mut request_items = serde_json::Map::new();
        for (table, key) in keys {
            let entry =
                request_items.entry(table.to_string()).or_insert_with(|| json!({"Keys": [], "ConsistentRead": true}));
            if let Some(list) = entry.get_mut("Keys").and_then(Value::as_array_mut) {
                list.push(Value::Object((*key).clone()));
            }
        }
        let mut found = Vec::new();
        let mut pending = Value::Object(request_items);
        // The engine answers everything at once; a few rounds cover one that does not.
        for _ in 0..5 {
            let answer = self.call("BatchGetItem", &json!({"RequestItems": pending}), headers).await?;
            if answer.status != StatusCode::OK {
                break;
            }
            let answer: Value = serde_json::from_slice(&answer.body).context("the engine's BatchGetItem answer")?;
            for (table, items) in answer.get("Responses").and_then(Value::as_object).into_iter().flatten() {
                for item in items.as_array().into_iter().flatten().filter_map(Value::as_object) {
                    found.push((table.clone(), item.clone()));
                }
            }
            match answer.get("UnprocessedKeys") {
                Some(Value::Object(left)) if !left.is_empty() => pending = Value::Object(left.clone()),
                _ => break,
            }
        }
        Ok(found)
    }

    /// A call of the proxy's own to the engine, with the client's auth material (the
    /// engine checks that it is there, not the signature).
    async fn call(&self, op: &str, body: &Value, headers: &HeaderMap) -> anyhow::Result<Upstream> {
        let mut own = HeaderMap::new();
        for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
            if let Some(value) = headers.get(name) {
                own.insert(HeaderName::from_static(name), value.clone());
            }
        }
        if !own.contains_key("authorization") {
            own.insert(
                "authorization",
                HeaderValue::from_static(
                    "AWS4-HMAC-SHA256 Credential=capacity/20200101/us-east-1/dynamodb/aws4_request, \
                     SignedHeaders=host;x-amz-date;x-amz-target, Signature=0",
                ),
            );
            own.insert("x-amz-date", HeaderValue::from_static("20200101T000000Z"));
        }
        own.insert(CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
        own.insert("x-amz-target", HeaderValue::from_str(&format!("DynamoDB_20120810.{op}"))?);
        let incoming = Received { method: Method::POST, path: "/".to_owned(), headers: own };
        self.forward(&incoming, Bytes::from(body.to_string())).await
    }

    async fn forward(&self, incoming: &Received, body: Bytes) -> anyhow::Result<Upstream> {
        let mut request =
            Request::builder().method(incoming.method.clone()).uri(format!("{}{}", self.upstream, incoming.path));
        for (name, value) in &incoming.headers {
            if !hop_by_hop(name) && name != CONTENT_LENGTH {
                request = request.header(name, value);
            }
        }
        let request =
            request.header(CONTENT_LENGTH, body.len()).body(Full::new(body)).context("a request to the engine")?;
        let answer = self.client.request(request).await.context("a call to the engine")?;
        let (parts, body) = answer.into_parts();
        let body = body.collect().await.context("the engine's answer")?.to_bytes();
        Ok(Upstream { status: parts.status, headers: parts.headers, body })
    }
}

/// Headers that describe one connection, not the message.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "te" | "trailer" | "upgrade"
    )
}

fn response(status: StatusCode, content_type: &str, body: Bytes, headers: HeaderMap) -> Response<Body> {
    let mut builder = Response::builder().status(status);
    for (name, value) in &headers {
        if !hop_by_hop(name) && name != CONTENT_LENGTH {
            builder = builder.header(name, value);
        }
    }
    if !content_type.is_empty() {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    let length = body.len();
    builder
        .header(CONTENT_LENGTH, length)
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"a malformed answer"))))
}

/// A throttle as DynamoDB sends it: its JSON, a request id and the body's CRC32.
fn own(answer: Answer) -> Response<Body> {
    static REQUESTS: AtomicU64 = AtomicU64::new(0);
    let mut headers = HeaderMap::new();
    let id = format!("RUSHCARTCAPACITY{:036}", REQUESTS.fetch_add(1, Ordering::Relaxed));
    if let Ok(id) = HeaderValue::from_str(&id) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Ok(crc) = HeaderValue::from_str(&crc32(answer.body.as_bytes()).to_string()) {
        headers.insert("x-amz-crc32", crc);
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST);
    response(status, AMZ_JSON, Bytes::from(answer.body), headers)
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    response(status, "text/plain", Bytes::from(text.to_owned()), HeaderMap::new())
}

/// CRC-32 (IEEE), as DynamoDB's `x-amz-crc32` carries it (boto3 checks it).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_ieee_checksum() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
