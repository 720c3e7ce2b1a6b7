//! rushcart's local DynamoDB: [dynoxide](https://crates.io/crates/dynoxide-rs), an open
//! DynamoDB engine in Rust on an in-memory SQLite database, served over DynamoDB's HTTP
//! API on a loopback port.
//!
//! Two ways to run it:
//! - as a process of the local stack (`rushcart-dynamodb`, started by
//!   `localstack/stack.sh`), for `make run`, the benchmarks and the fault suite, which
//!   pauses it with SIGSTOP;
//! - inside a test process ([`Engine::start`], [`shared`]), so a test binary gets an
//!   engine of its own on an ephemeral port.
//!
//! The engine serialises every call, reads too, on one lock, and a call blocks the
//! thread that runs it. So it gets a runtime and threads of its own, never the
//! caller's: a test's or the local API's request threads must not wait on it.
//!
//! Never linked into a Lambda: only the stack's binary, the admin CLI's benchmarks and
//! the tests depend on this crate.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;

/// How often the stack's engine deletes expired items from tables with TTL on. DynamoDB
/// deletes them within a day or two of expiry, so nothing may rely on the moment (a
/// reader checks `expiresAt` itself); the sweep only keeps a long `make run` from
/// growing without end. The tests' engines never sweep: their clocks are often weeks
/// from the wall clock, and a sweep landing mid-test would make it depend on timing.
pub const TTL_SWEEP_PERIOD: Duration = Duration::from_secs(60);

/// A running engine. Dropping it stops the server.
pub struct Engine {
    db: dynoxide::Database,
    endpoint: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// Starts an empty in-memory engine listening on `address` (port 0: a free one),
    /// served by `threads` threads of its own.
    pub fn start(address: SocketAddr, threads: usize) -> anyhow::Result<Engine> {
        let db = dynoxide::Database::memory().context("open an in-memory dynoxide database")?;
        index_streams(&db).context("index the engine's stream records")?;
        let listener = std::net::TcpListener::bind(address).with_context(|| format!("bind {address}"))?;
        listener.set_nonblocking(true).context("a non-blocking listener")?;
        let local = listener.local_addr().context("the listener's address")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("dynamodb")
            .enable_all()
            .build()
            .context("the engine's runtime")?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = db.clone();
        let server = std::thread::Builder::new()
            .name("dynamodb-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(err) => return eprintln!("dynamodb: the listener: {err}"),
                    };
                    let shutdown = async {
                        let _ = stopped.await;
                    };
                    if let Err(err) = dynoxide::server::serve_with_shutdown(listener, serving, shutdown).await {
                        eprintln!("dynamodb: {err}");
                    }
                });
            })
            .context("start the engine's thread")?;
        Ok(Engine { db, endpoint: format!("http://{local}"), stop: Some(stop), server: Some(server) })
    }

    /// Deletes expired items every `period`, on a thread of its own, for as long as the
    /// process lives.
    pub fn sweep_ttl_every(&self, period: Duration) -> anyhow::Result<()> {
        let db = self.db.clone();
        std::thread::Builder::new()
            .name("dynamodb-ttl".into())
            .spawn(move || loop {
                std::thread::sleep(period);
                if let Err(err) = db.sweep_ttl() {
                    eprintln!("dynamodb: TTL sweep failed: {err}");
                }
            })
            .context("start the TTL sweeper")?;
        Ok(())
    }

    /// `http://127.0.0.1:<port>`: what `AWS_ENDPOINT_URL_DYNAMODB` (and
    /// `…_DYNAMODB_STREAMS`) should say.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Blocks until the server stops (it stops when the engine is dropped elsewhere,
    /// or never: the stack's binary waits here until a signal ends the process).
    pub fn wait(mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The indexes dynoxide 3.2 does not make. Its stream records (`_stream_records`) have
/// only their row id, yet three of its statements pick them by table and shard and
/// order them by sequence number: the next sequence number, on every write to a table
/// with a stream (`MAX(CAST(sequence_number AS INTEGER))` over the table's records), every
/// `GetRecords`, and every shard iterator (`MIN` and `MAX` over the shard). Unindexed,
/// each reads every record the engine has ever kept (it keeps them all), so writes to
/// a table with a stream slow in proportion to its history: a PutItem to the outbox
/// table took 0.19 ms with 200 records behind it and 4.9 ms with 40,000. Each index is on the
/// expressions those statements use, so SQLite answers them from the index; what they
/// return is unchanged.
const STREAM_INDEXES: &str = "
    CREATE INDEX IF NOT EXISTS rushcart_stream_by_table
        ON _stream_records (table_name, CAST(sequence_number AS INTEGER));
    CREATE INDEX IF NOT EXISTS rushcart_stream_by_shard
        ON _stream_records (table_name, shard_id, CAST(sequence_number AS INTEGER));";

/// Adds [`STREAM_INDEXES`] to a new in-memory engine. dynoxide gives no other handle on
/// an in-memory database, so its schema goes out as a snapshot (`VACUUM INTO`), gets the
/// indexes there, and comes back (SQLite's backup API, which copies indexes with the rest).
fn index_streams(db: &dynoxide::Database) -> anyhow::Result<()> {
    let path = snapshot_path();
    let text = path.to_str().context("a temporary path that is UTF-8")?.to_owned();
    let files = [text.clone(), format!("{text}-wal"), format!("{text}-shm")];
    let remove = || files.iter().for_each(|file| drop(std::fs::remove_file(file)));
    remove();
    let indexed = (|| {
        db.vacuum_into(&text).context("snapshot the new database")?;
        let connection = rusqlite::Connection::open(&path).context("open the snapshot")?;
        connection.execute_batch(STREAM_INDEXES).context("create the stream indexes")?;
        connection.close().map_err(|(_, err)| err).context("close the snapshot")?;
        db.restore_from(&text).context("restore the indexed snapshot")
    })();
    remove();
    indexed
}

/// A temporary file for a snapshot of an engine's database, unused by any other engine
/// or test of this process.
fn snapshot_path() -> std::path::PathBuf {
    static SNAPSHOTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let number = SNAPSHOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("rushcart-dynamodb-{}-{number}.sqlite", std::process::id()))
}

/// The endpoint of this process's own engine, started on first use on a free loopback
/// port and kept for the life of the process: a test binary's tests share it, each in
/// tables of its own.
pub fn shared() -> &'static str {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            Engine::start(SocketAddr::from(([127, 0, 0, 1], 0)), 2)
                .unwrap_or_else(|err| panic!("start this process's DynamoDB engine: {err:#}"))
        })
        .endpoint()
}

/// A DynamoDB client for a local engine at `endpoint`: the stack's static credentials
/// and region, and timeouts that turn a stuck engine into a clear error.
pub async fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(15))
        .build();
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new("rushcartlocal", "rushcartlocal", None, None, "rushcart-local");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .timeout_config(timeouts)
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How SQLite would run `statement` in a copy of `engine`'s database.
    fn plan(engine: &Engine, statement: &str) -> String {
        let path = snapshot_path();
        let _ = std::fs::remove_file(&path);
        engine.db.vacuum_into(path.to_str().unwrap()).unwrap();
        let connection = rusqlite::Connection::open(&path).unwrap();
        let mut explain = connection.prepare(&format!("EXPLAIN QUERY PLAN {statement}")).unwrap();
        let count = explain.parameter_count();
        let params: Vec<i64> = (0..count as i64).collect();
        let rows: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(params), |row| row.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        drop(explain);
        drop(connection);
        let _ = std::fs::remove_file(&path);
        rows.join("; ")
    }

    #[test]
    fn the_engines_stream_statements_are_answered_from_an_index_not_a_scan() {
        let engine = Engine::start(SocketAddr::from(([127, 0, 0, 1], 0)), 1).unwrap();
        // dynoxide 3.2's own statements over the stream records (src/storage.rs): the
        // next sequence number, GetRecords, a shard iterator's range.
        let next = "SELECT COALESCE(MAX(CAST(sequence_number AS INTEGER)), 0) + 1 FROM _stream_records \
                    WHERE table_name = ?1";
        let records = "SELECT event_name, keys_json, new_image, old_image, sequence_number, created_at, \
                       user_identity, event_id FROM _stream_records \
                       WHERE table_name = ?1 AND shard_id = ?2 AND CAST(sequence_number AS INTEGER) > ?3 \
                       ORDER BY CAST(sequence_number AS INTEGER) ASC LIMIT ?4";
        let range = "SELECT MIN(CAST(sequence_number AS INTEGER)), MAX(CAST(sequence_number AS INTEGER)) \
                     FROM _stream_records WHERE table_name = ?1 AND shard_id = ?2";
        for (statement, index) in [
            (next, "rushcart_stream_by_table"),
            (records, "rushcart_stream_by_shard"),
            (range, "rushcart_stream_by_shard"),
        ] {
            let plan = plan(&engine, statement);
            let indexed = plan.starts_with("SEARCH _stream_records USING") && plan.contains(&format!("INDEX {index} "));
            assert!(indexed, "{statement}\n  is planned as: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{statement}\n  sorts its rows: {plan}");
        }
    }

    #[test]
    fn engines_in_one_process_each_get_the_indexes() {
        let engines: Vec<Engine> =
            (0..3).map(|_| Engine::start(SocketAddr::from(([127, 0, 0, 1], 0)), 1).unwrap()).collect();
        for engine in &engines {
            let plan = plan(
                engine,
                "SELECT MAX(CAST(sequence_number AS INTEGER)) FROM _stream_records WHERE table_name = 'x'",
            );
            assert!(plan.contains("INDEX rushcart_stream_by_table "), "planned as: {plan}");
        }
    }
}
