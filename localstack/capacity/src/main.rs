//! `rushcart-capacity --listen 127.0.0.1:PORT --upstream http://127.0.0.1:ENGINE_PORT
//! [--scale F] [--table-max UNITS]`: the capacity model in front of the local stack's
//! DynamoDB engine, until SIGTERM or SIGINT. Prints `ready http://<address>` once it
//! listens.

use std::net::SocketAddr;

use clap::Parser;
use rushcart_capacity::{Clock, Config, Limits, Server, METRICS_PATH};

/// DynamoDB's per-partition capacity limits in front of a local engine: hot partitions
/// are throttled as AWS throttles them.
#[derive(Debug, Parser)]
#[command(name = "rushcart-capacity")]
struct Args {
    /// Where to listen (port 0: a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The engine, as `http://host:port`.
    #[arg(long)]
    upstream: String,
    /// The partition limits × this: 0.2 makes a partition's write limit 200 units a second.
    #[arg(long, env = "CAPACITY_SCALE", default_value_t = 1.0)]
    scale: f64,
    /// A ceiling on each table's own read and write units a second (unscaled).
    #[arg(long, env = "CAPACITY_TABLE_MAX")]
    table_max: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.scale.is_finite() && args.scale > 0.0, "the scale must be a positive number");
    if let Some(max) = args.table_max {
        anyhow::ensure!(max.is_finite() && max > 0.0, "the table maximum must be a positive number");
    }
    let limits = Limits { scale: args.scale, table_max: args.table_max };
    let server = Server::bind(args.listen, &args.upstream, Config { limits, clock: Clock::system() }).await?;
    let address = server.local_addr()?;
    println!(
        "ready http://{address} (in front of {}; scale {}, table max {}; counters at {METRICS_PATH})",
        args.upstream,
        args.scale,
        args.table_max.map_or_else(|| "none".to_owned(), |max| format!("{max} units/s")),
    );
    // The default signal dispositions end the process on SIGTERM and SIGINT; the model
    // keeps nothing worth saving.
    server.serve().await;
    Ok(())
}
