//! `rushcart-admin`: operator commands against the tables named by the environment.
//!
//! - `provision`: create every table of `template.yaml` that is missing (idempotent).
//! - `seed`: the demo data set by default (users 1..1000 with 1,000,000.00 each,
//!   products 1..20 at 1000.00 with stock 1000, coupon 1: 100 units of 1000.00 off,
//!   ending in 30 days); any size by flags, with a progress bar for large sets.
//! - `audit`: check the invariants from the table after a load run.
//! - `floor`: time single DynamoDB calls, the storage's floor for `make bench`; with
//!   `--load <scenario>`, the floor under a scenario's load (floor_load.rs); with
//!   `--layers`, an unloaded request's time layer by layer (floor_load/layers.rs).
//! - `token`: a token from the running local API's issuer (`make run`), to sign in.
//! - `redrive`: move the feed's dead letters back to the feed queue (or, with
//!   `--dry-run`, list them).

mod floor;
mod floor_load;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rushcart::adapters::dynamodb::{client_from_env, table::ALL_TABLES};
use rushcart::ids::{CouponId, ProductId, UserId};
use rushcart::money::Money;
use rushcart_testkit::seed::{self, CouponSeed, ProductSeed};

#[derive(Parser)]
#[command(name = "rushcart-admin", about = "Provision and seed rushcart's tables")]
struct Cli {
    /// Table names are `<prefix>-<suffix>` (main: `<prefix>-main`).
    #[arg(long, env = "RUSHCART_TABLE_PREFIX", default_value = "rushcart", global = true)]
    prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the missing tables, the feed's queues and stream.
    Provision {
        /// Write FEED_QUEUE_URL, FEED_DLQ_URL and FEED_STREAM_NAME here.
        #[arg(long)]
        feed_env: Option<std::path::PathBuf>,
    },
    /// Write users, products and coupons that do not exist yet.
    Seed(SeedArgs),
    /// A burst of sign-ups through the post-confirmation trigger's handler (Cognito calls
    /// it; there is no sign-up route), `--concurrency` at once, each a subject of its
    /// own; prints the rate and the failures.
    Signups {
        #[arg(long, default_value_t = 2000)]
        count: u64,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// User ids reserved per counter write (the functions take 64; 1 is a counter
        /// write per sign-up, as before blocks).
        #[arg(long, default_value_t = rushcart::adapters::dynamodb::counters::USER_ID_BLOCK)]
        block: u64,
    },
    /// Check the data invariants from the table (after a load run); exits non-zero on
    /// any violation.
    Audit {
        /// Users 1..=N are checked.
        #[arg(long, default_value_t = 1000)]
        users: u64,
        /// Every user the table holds is checked (a scan), not only 1..=N: signed-up
        /// users take ids from blocks, so theirs need not follow the seeded ones.
        #[arg(long)]
        all_users: bool,
        /// The coupons to check (repeat the flag for several).
        #[arg(long = "coupon", default_values_t = [1])]
        coupons: Vec<u64>,
        /// Also check every order, payment and product (invariants 3–5; scans the table).
        #[arg(long)]
        orders: bool,
    },
    /// Time single DynamoDB calls of each kind against a scratch table (the storage's
    /// floor for `make bench`); prints median milliseconds as JSON.
    Floor {
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// Transaction sizes (items) to time.
        #[arg(long, value_delimiter = ',', default_values_t = [2])]
        transact_sizes: Vec<usize>,
        /// Instead: drive this scenario's DynamoDB calls at its concurrency and print
        /// rate and latency percentiles.
        #[arg(long, value_enum)]
        load: Option<floor_load::Scenario>,
        /// Instead: time an unloaded GET product and charge layer by layer (the SDK
        /// calls, rushcart's adapter, the whole function in-process) and print each
        /// layer's p50 and p90.
        #[arg(long, conflicts_with = "load")]
        layers: bool,
    },
    /// Print a token from the running local API's issuer (`make run`): the same as
    /// `POST /_local/token`.
    Token {
        /// The shop user the token acts for.
        #[arg(long)]
        user: UserId,
        /// An operator's token (the `operators` group).
        #[arg(long)]
        admin: bool,
        /// The local API.
        #[arg(long, env = "RUSHCART_API", default_value = "http://127.0.0.1:3000")]
        api: String,
    },
    /// Print the API's OpenAPI 3.1 document (`make openapi` writes it to docs/).
    Openapi,
    /// Move every message in the feed's dead-letter queue back to the feed queue, once
    /// the cause (a platform refusing them) is fixed; an event already delivered is
    /// acknowledged without a second delivery. The queues are FEED_QUEUE_URL and
    /// FEED_DLQ_URL, or else `<prefix>-feed` and `<prefix>-feed-dlq`.
    Redrive {
        /// List the dead letters (message, event, receives) and move nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
struct SeedArgs {
    #[arg(long, default_value_t = 1000)]
    users: u64,
    #[arg(long, default_value = "1000000.00")]
    balance: Money,
    #[arg(long, default_value_t = 20)]
    products: u64,
    /// Products get ids first-product, first-product + 1, …
    #[arg(long, default_value_t = 1)]
    first_product: u64,
    #[arg(long, default_value = "1000.00")]
    price: Money,
    #[arg(long, default_value_t = 1000)]
    stock: u64,
    /// The products' stock buckets (1 to 64); by default what an operator's creation
    /// chooses from the stock.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(rushcart::shards::MAX_SHARDS)))]
    stock_buckets: Option<u32>,
    #[arg(long, default_value_t = 1)]
    coupons: u64,
    /// Coupons get ids first-coupon, first-coupon + 1, …
    #[arg(long, default_value_t = 1)]
    first_coupon: u64,
    #[arg(long, default_value_t = 100)]
    coupon_quantity: u64,
    /// The coupons' shards (1 to 64); by default what an operator's creation chooses
    /// from the quantity.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(rushcart::coupons::MAX_SHARDS)))]
    coupon_shards: Option<u32>,
    #[arg(long, default_value = "1000.00")]
    coupon_discount: Money,
    #[arg(long, default_value_t = 30)]
    coupon_days: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        println!("{}", rushcart::http::openapi::document_json());
        return Ok(());
    }
    let client = client_from_env().await;
    match cli.command {
        Command::Provision { feed_env } => {
            for spec in ALL_TABLES {
                let name = spec.local_name(&cli.prefix);
                spec.provision(&client, &name).await?;
                println!("table {name} ready");
            }
            let (sqs, kinesis) = rushcart::adapters::feed_aws::clients_from_env().await;
            let channels = rushcart_testkit::channels::provision(
                &sqs,
                &kinesis,
                &cli.prefix,
                rushcart_testkit::channels::VISIBILITY_TIMEOUT,
            )
            .await?;
            println!(
                "feed queue {} (dead letters: {}), stream {}",
                channels.queue_url, channels.dead_letter_queue_url, channels.stream_name
            );
            if let Some(path) = feed_env {
                let lines = format!(
                    "FEED_QUEUE_URL={}\nFEED_DLQ_URL={}\nFEED_STREAM_NAME={}\n",
                    channels.queue_url, channels.dead_letter_queue_url, channels.stream_name
                );
                std::fs::write(&path, lines).with_context(|| format!("write {}", path.display()))?;
            }
        }
        Command::Seed(args) => seed_all(&client, &cli.prefix, &args).await?,
        Command::Signups { count, concurrency, block } => {
            signups(client.clone(), &cli.prefix, count, concurrency, block).await?
        }
        Command::Audit { users, all_users, coupons, orders } => {
            let users = if all_users {
                rushcart_testkit::audit::all_users(
                    &client,
                    &rushcart::adapters::dynamodb::MAIN_TABLE.local_name(&cli.prefix),
                )
                .await?
            } else {
                (1..=users).map(UserId::new).collect::<Result<Vec<_>, _>>()?
            };
            audit(&client, &cli.prefix, &users, coupons, orders).await?
        }
        Command::Floor { layers: true, .. } => floor_load::layers::floor_layers(&client, &cli.prefix).await?,
        Command::Floor { load: Some(scenario), .. } => floor_load::floor_load(&client, &cli.prefix, scenario).await?,
        Command::Floor { samples, transact_sizes, load: None, .. } => {
            floor::floor(&client, &cli.prefix, samples, &transact_sizes).await?
        }
        Command::Token { user, admin, api } => println!("{}", token(&api, user, admin).await?),
        Command::Redrive { dry_run } => redrive(&cli.prefix, dry_run).await?,
        Command::Openapi => unreachable!("answered before the client is built"),
    }
    Ok(())
}

/// `redrive`: moves the feed's dead letters back, or lists them.
async fn redrive(prefix: &str, dry_run: bool) -> anyhow::Result<()> {
    use rushcart_testkit::channels::{self, FeedQueues};
    let (sqs, _) = rushcart::adapters::feed_aws::clients_from_env().await;
    let queues = FeedQueues::locate(&sqs, prefix).await?;
    if dry_run {
        let letters = channels::dead_letters(&sqs, &queues.dead_letter_queue_url).await?;
        for letter in &letters {
            let event = letter.event_id.as_deref().unwrap_or("(a body that is no feed event)");
            println!("{}  {event}  receives: {}", letter.message_id, letter.receives);
        }
        println!("{} messages in {} (dry run: nothing moved)", letters.len(), queues.dead_letter_queue_url);
        return Ok(());
    }
    let redriven = channels::redrive(&sqs, &queues.dead_letter_queue_url, &queues.queue_url).await?;
    println!("moved {} messages from {} to {}", redriven.moved, queues.dead_letter_queue_url, queues.queue_url);
    for message in &redriven.not_deleted {
        println!("sent but not deleted from the dead-letter queue (the next redrive sends it again): {message}");
    }
    for message in &redriven.failed {
        eprintln!("not moved: {message}");
    }
    if !redriven.failed.is_empty() {
        anyhow::bail!("{} messages could not be moved and are still in the dead-letter queue", redriven.failed.len());
    }
    Ok(())
}

/// A token minted by the local API's issuer at `api`.
async fn token(api: &str, user: UserId, admin: bool) -> anyhow::Result<String> {
    rushcart::install_crypto_provider();
    let url = format!("{}/_local/token", api.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({ "userId": user.get(), "admin": admin }))
        .send()
        .await
        .with_context(|| format!("reach the local API at {api} (is `make run` up, with sign-in on?)"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.with_context(|| format!("read the answer of {url}"))?;
    match body["token"].as_str() {
        Some(token) if status.is_success() => Ok(token.to_owned()),
        _ => anyhow::bail!("{url} answered {status}: {body} (sign-in is off under AUTH=off)"),
    }
}

async fn seed_all(client: &aws_sdk_dynamodb::Client, prefix: &str, args: &SeedArgs) -> anyhow::Result<()> {
    let table = rushcart::adapters::dynamodb::MAIN_TABLE.local_name(prefix);
    let now = time::OffsetDateTime::now_utc();
    let (balance, price, discount) = (args.balance, args.price, args.coupon_discount);

    let users = (1..=args.users)
        .map(|id| Ok((UserId::new(id)?, balance)))
        .collect::<Result<Vec<_>, rushcart::ids::IdError>>()?;
    let bar = ProgressBar::new(users.len() as u64);
    bar.set_style(ProgressStyle::with_template("users    {bar:40} {pos}/{len} {per_sec} eta {eta}")?);
    if users.len() < 5000 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let created = seed::seed_users(client, &table, &users, now, &|done| bar.set_position(done as u64)).await?;
    bar.finish_and_clear();
    println!("users: {created} new of {}", users.len());

    let products = (args.first_product..args.first_product + args.products)
        .map(|id| {
            let product = ProductSeed::new(ProductId::new(id)?, format!("Product {id}"), price, args.stock);
            Ok(ProductSeed { buckets: args.stock_buckets.unwrap_or(product.buckets), ..product })
        })
        .collect::<Result<Vec<_>, rushcart::ids::IdError>>()?;
    let count = products.len();
    println!(
        "products: {} new of {count}",
        seed::seed_products(client, &table, &products).await.context("seed products")?
    );

    let coupons = (args.first_coupon..args.first_coupon + args.coupons)
        .map(|id| {
            Ok(CouponSeed {
                id: CouponId::new(id)?,
                name: format!("Coupon {id}"),
                discount,
                total: args.coupon_quantity,
                ends_at: now + time::Duration::days(args.coupon_days),
                shards: args.coupon_shards.unwrap_or(rushcart::coupons::default_shards(args.coupon_quantity)),
            })
        })
        .collect::<Result<Vec<_>, rushcart::ids::IdError>>()?;
    let count = coupons.len();
    println!("coupons: {} new of {count}", seed::seed_coupons(client, &table, &coupons).await.context("seed coupons")?);
    Ok(())
}

/// [`Command::Signups`].
async fn signups(
    client: aws_sdk_dynamodb::Client,
    prefix: &str,
    count: u64,
    concurrency: usize,
    block: u64,
) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let table = rushcart::adapters::dynamodb::MAIN_TABLE.local_name(prefix);
    let store = rushcart::adapters::dynamodb::DynamoStore::new(client, table).with_user_id_block(block);
    let clock = rushcart::clock::SystemClock;
    let run = ulid::Ulid::generate().to_string().to_lowercase();
    let started = std::time::Instant::now();
    let sign_up = |i: u64| {
        let (store, clock) = (&store, &clock);
        let subject = format!("burst-{run}-{i}");
        async move {
            let event = serde_json::json!({
                "version": "1",
                "triggerSource": "PostConfirmation_ConfirmSignUp",
                "userName": subject,
                "request": { "userAttributes": { "sub": subject, "cognito:user_status": "CONFIRMED" } },
                "response": {}
            });
            rushcart::triggers::sign_up_confirmed(store, clock, event).await
        }
    };
    let answers: Vec<anyhow::Result<serde_json::Value>> =
        futures::stream::iter((0..count).map(sign_up)).buffer_unordered(concurrency.max(1)).collect().await;
    let elapsed = started.elapsed().as_secs_f64();
    let failed: Vec<&anyhow::Error> = answers.iter().filter_map(|answer| answer.as_ref().err()).collect();
    let signed_up = answers.len() - failed.len();
    println!(
        "sign-ups: {signed_up} of {count} in {elapsed:.1} s = {:.1}/s ({concurrency} at once, {block} ids per counter write); failed {}",
        signed_up as f64 / elapsed,
        failed.len()
    );
    if let Some(first) = failed.first() {
        println!("  first failure: {first:#}");
    }
    Ok(())
}

async fn audit(
    client: &aws_sdk_dynamodb::Client,
    prefix: &str,
    users: &[UserId],
    coupons: Vec<u64>,
    orders: bool,
) -> anyhow::Result<()> {
    use rushcart_testkit::audit::{check_coupon, check_ledger, check_orders, read_ledger};
    let table = rushcart::adapters::dynamodb::MAIN_TABLE.local_name(prefix);
    let mut entries = 0;
    let mut violations = Vec::new();
    for &user in users {
        let ledger = read_ledger(client, &table, user).await?;
        entries += ledger.entries.len();
        if let Err(violation) = check_ledger(user, &ledger) {
            violations.push(violation);
        }
    }
    for id in coupons {
        match check_coupon(client, &table, CouponId::new(id)?).await {
            Ok(found) => println!(
                "coupon {id}: {} of {} issued, {} users hold a copy: invariant 2 holds",
                found.issued, found.total, found.copies
            ),
            Err(violation) => violations.push(violation),
        }
    }
    if orders {
        match check_orders(client, &table).await {
            Ok(found) => println!(
                "orders: {} ({} paid, {} refunded, {} cancelled unpaid, {} failed payment attempts): invariants 3-5 and 8 hold",
                found.orders, found.paid, found.refunded, found.cancelled, found.failed_payments
            ),
            Err(violation) => violations.push(violation),
        }
    }
    for violation in &violations {
        println!("VIOLATION {violation:#}");
    }
    println!(
        "audit: {} users, {entries} ledger entries; invariant 1 (balance ≥ 0, one entry per change, balance = sum of entries): {}",
        users.len(),
        if violations.is_empty() { "holds" } else { "VIOLATED" }
    );
    if !violations.is_empty() {
        anyhow::bail!("{} invariant violations", violations.len());
    }
    Ok(())
}
