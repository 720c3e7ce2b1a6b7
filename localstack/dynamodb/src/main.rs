//! `rushcart-dynamodb [--port N] [--threads N]`: the local stack's DynamoDB (and its
//! stream) on 127.0.0.1, in memory, expired items swept every minute, until SIGTERM or
//! SIGINT. Prints
//! `ready http://127.0.0.1:<port>` once it listens.

use std::net::SocketAddr;

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let mut port = 0u16;
    let mut threads = 2usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--port" => port = value.parse().context("--port must be a port number")?,
            "--threads" => threads = value.parse().context("--threads must be a number")?,
            other => anyhow::bail!("unknown argument {other:?}; usage: rushcart-dynamodb [--port N] [--threads N]"),
        }
    }
    let engine = rushcart_dynamodb::Engine::start(SocketAddr::from(([127, 0, 0, 1], port)), threads)?;
    engine.sweep_ttl_every(rushcart_dynamodb::TTL_SWEEP_PERIOD)?;
    println!("ready {}", engine.endpoint());
    // The default signal dispositions end the process on SIGTERM and SIGINT; the
    // database is in memory, so there is nothing to flush.
    engine.wait();
    Ok(())
}
