//! `rushcart-coldstart`: starts a Lambda binary against a minimal Lambda Runtime API
//! emulator on loopback and measures, per run, the init phase (process start → its
//! first `GET /runtime/invocation/next`) and the first invocation (event handed out →
//! response posted). Prints the median of the runs.
//!
//!   rushcart-coldstart --bin target/lambda/get-balance/bootstrap \
//!       --event events/get-balance.json --runs 5
//!
//! The binary inherits this process's environment (table names, endpoints of the local
//! stack), plus the variables the Lambda service sets.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// The function binary (`bootstrap`).
    #[arg(long)]
    bin: PathBuf,
    /// The event to invoke it with.
    #[arg(long)]
    event: PathBuf,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// A name for the report line (defaults to the binary's folder).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Mark {
    FirstPoll(Instant),
    Responded(Instant, bool),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let event = std::fs::read_to_string(&args.event).with_context(|| format!("read {}", args.event.display()))?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.bin.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    });
    let mut inits = Vec::new();
    let mut firsts = Vec::new();
    for _ in 0..args.runs {
        let (init, first) = one_run(&args.bin, &name, &event).await?;
        inits.push(init);
        firsts.push(first);
    }
    println!(
        "{name:<24} init {:>7.2} ms   first invocation {:>7.2} ms   (median of {}; init runs {:?} ms)",
        median(&mut inits),
        median(&mut firsts),
        args.runs,
        inits.iter().map(|d| (d * 100.0).round() / 100.0).collect::<Vec<_>>()
    );
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// One cold start: (init ms, first invocation ms).
async fn one_run(bin: &PathBuf, name: &str, event: &str) -> anyhow::Result<(f64, f64)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (marks, mut marked) = mpsc::unbounded_channel::<Mark>();
    let served = Arc::new(Mutex::new(false));
    let event = Arc::new(event.to_owned());
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (marks, served, event) = (marks.clone(), served.clone(), event.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let (marks, served, event) = (marks.clone(), served.clone(), event.clone());
                    async move {
                        let path = request.uri().path().to_owned();
                        if path.ends_with("/invocation/next") {
                            let first = {
                                let mut served = served.lock().unwrap();
                                let first = !*served;
                                *served = true;
                                first
                            };
                            if !first {
                                // One invocation per run: park the runtime's next poll.
                                std::future::pending::<()>().await;
                            }
                            let _ = marks.send(Mark::FirstPoll(Instant::now()));
                            let deadline = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_millis() + 30_000)
                                .unwrap_or_default();
                            let response = hyper::Response::builder()
                                .header("lambda-runtime-aws-request-id", "coldstart-0001")
                                .header("lambda-runtime-deadline-ms", deadline.to_string())
                                .header(
                                    "lambda-runtime-invoked-function-arn",
                                    "arn:aws:lambda:us-east-1:123456789012:function:coldstart",
                                )
                                .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
                                .body(Full::new(Bytes::from(event.as_bytes().to_vec())))
                                .unwrap();
                            return Ok::<_, Infallible>(response);
                        }
                        let ok = path.ends_with("/response");
                        let _ = request.into_body().collect().await;
                        if path.contains("/invocation/") {
                            let _ = marks.send(Mark::Responded(Instant::now(), ok));
                        }
                        let mut response = hyper::Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = http::StatusCode::ACCEPTED;
                        Ok(response)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });

    let started = Instant::now();
    let mut child = std::process::Command::new(bin)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/coldstart")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let timeout = Duration::from_secs(20);
    let outcome = async {
        let polled = match tokio::time::timeout(timeout, marked.recv()).await {
            Ok(Some(Mark::FirstPoll(at))) => at,
            other => bail!("{name}: no first poll ({other:?})"),
        };
        match tokio::time::timeout(timeout, marked.recv()).await {
            Ok(Some(Mark::Responded(at, ok))) => Ok((polled, at, ok)),
            other => bail!("{name}: no response ({other:?})"),
        }
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let (polled, responded, ok) = outcome?;
    server.abort();
    if !ok {
        eprintln!("{name}: the first invocation reported an error");
    }
    Ok(((polled - started).as_secs_f64() * 1000.0, (responded - polled).as_secs_f64() * 1000.0))
}
