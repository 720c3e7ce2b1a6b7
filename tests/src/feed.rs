//! Feed test helpers: SQS/Kinesis/stream clients for an endpoint, a data-platform
//! receiver that records what it accepts and refuses as told, and a moto server of the
//! test's own that it can stop and start.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::Credentials;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("rushcartlocal", "rushcartlocal", None, None, "rushcart-tests"))
        .load()
        .await
}

pub async fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&sdk_config(endpoint).await)
}

pub async fn kinesis_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::new(&sdk_config(endpoint).await)
}

pub async fn streams_client(endpoint: &str) -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::new(&sdk_config(endpoint).await)
}

/// The stack's moto endpoint (SQS and Kinesis).
pub fn moto_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_SQS").unwrap_or_else(|_| panic!("AWS_ENDPOINT_URL_SQS is not set: run `make test`"))
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Accept,
    /// 503 to the first delivery of each order, then accept.
    RefuseFirst,
    /// 503 for orders whose id ends with the given character, always.
    AlwaysRefuseEndingWith(char),
}

/// A data platform on a free loopback port.
pub struct Receiver {
    pub url: String,
    /// Accepted deliveries: event id (`<orderId>:<TYPE>`) → how many times accepted.
    pub accepted: Arc<Mutex<HashMap<String, u32>>>,
    /// Every delivery attempt: event id → attempts.
    pub attempts: Arc<Mutex<HashMap<String, u32>>>,
    /// Event ids refused (503) whatever the behaviour, until taken out again.
    refused: Arc<Mutex<BTreeSet<String>>>,
    /// The body last accepted, by event id.
    bodies: Arc<Mutex<HashMap<String, String>>>,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let accepted: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let refused: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let bodies: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let shared = (accepted.clone(), attempts.clone(), refused.clone(), bodies.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let (acc, att, refused, bodies) = shared.clone();
                        async move {
                            let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                            let order = event["orderId"].as_str().unwrap_or_default().to_owned();
                            let event_id = event["eventId"].as_str().unwrap_or_default().to_owned();
                            let attempt = {
                                let mut attempts = att.lock().unwrap();
                                let n = attempts.entry(event_id.clone()).or_default();
                                *n += 1;
                                *n
                            };
                            let refuse = refused.lock().unwrap().contains(&event_id)
                                || match behaviour {
                                    Behaviour::Accept => false,
                                    Behaviour::RefuseFirst => attempt == 1,
                                    Behaviour::AlwaysRefuseEndingWith(c) => order.ends_with(c),
                                };
                            let status = if refuse {
                                503
                            } else {
                                let text = String::from_utf8_lossy(&body).into_owned();
                                bodies.lock().unwrap().insert(event_id.clone(), text);
                                *acc.lock().unwrap().entry(event_id).or_default() += 1;
                                202
                            };
                            let mut response = hyper::Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { url, accepted, attempts, refused, bodies }
    }

    /// Refuses `event_id` from now on, whatever the behaviour: a poison message.
    pub fn refuse(&self, event_id: &str) {
        self.refused.lock().unwrap().insert(event_id.to_owned());
    }

    /// Takes `event_id` again: the poison's cause is fixed.
    pub fn stop_refusing(&self, event_id: &str) {
        self.refused.lock().unwrap().remove(event_id);
    }

    /// The body the platform last accepted for `event_id`.
    pub fn body_of(&self, event_id: &str) -> Option<String> {
        self.bodies.lock().unwrap().get(event_id).cloned()
    }

    /// Delivery attempts of `event_id` so far.
    pub fn attempts_of(&self, event_id: &str) -> u32 {
        self.attempts.lock().unwrap().get(event_id).copied().unwrap_or_default()
    }

    /// Accepted deliveries by event id.
    pub fn accepted(&self) -> HashMap<String, u32> {
        self.accepted.lock().unwrap().clone()
    }

    /// Accepted ORDER_PAID events: order id → how many times accepted.
    pub fn paid(&self) -> HashMap<String, u32> {
        self.of_type("ORDER_PAID")
    }

    /// Accepted ORDER_REFUNDED events: order id → how many times accepted.
    pub fn refunded(&self) -> HashMap<String, u32> {
        self.of_type("ORDER_REFUNDED")
    }

    fn of_type(&self, kind: &str) -> HashMap<String, u32> {
        let suffix = format!(":{kind}");
        self.accepted()
            .into_iter()
            .filter_map(|(event, n)| Some((event.strip_suffix(&suffix)?.to_owned(), n)))
            .collect()
    }
}

/// A moto server of the test's own (moto forgets everything when it stops).
pub struct OwnMoto(crate::OwnServer);

impl OwnMoto {
    pub fn start() -> OwnMoto {
        OwnMoto(crate::OwnServer::start("moto_server", |port| {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let mut command = std::process::Command::new(root.join(".venv/bin/python"));
            command.arg(root.join("localstack/moto_server.py"));
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            command
        }))
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.0.port())
    }

    pub fn restart(&mut self) {
        self.0.restart();
    }

    pub fn stop(&mut self) {
        self.0.stop();
    }
}

/// Every record on the Kinesis stream `stream`, from the start of each shard.
pub async fn stream_records(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
) -> anyhow::Result<Vec<aws_sdk_kinesis::types::Record>> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    let shards = kinesis.list_shards().stream_name(stream).send().await?;
    let mut records = Vec::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await?
            .shard_iterator
            .ok_or_else(|| anyhow::anyhow!("no iterator for shard {}", shard.shard_id()))?;
        loop {
            let page = kinesis.get_records().shard_iterator(&iterator).send().await?;
            records.extend(page.records().iter().cloned());
            match page.next_shard_iterator() {
                Some(next) if !page.records().is_empty() => iterator = next.to_owned(),
                _ => break,
            }
        }
    }
    Ok(records)
}
