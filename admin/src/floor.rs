//! `rushcart-admin floor`: the storage's own floor. Times single DynamoDB calls, one at
//! a time, against a scratch copy of the main table (same keys and indexes, deleted
//! afterwards), and prints the median round trip of each kind as JSON. `make bench`
//! divides each scenario's median latency by the sum of these over the calls one of
//! its requests makes, as counted by the local API.
//!
//! Transactions are timed at each size asked for (`--transact-sizes 2,9`), since
//! an engine's cost grows with the items in one.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use rushcart::adapters::dynamodb::MAIN_TABLE;

const WARM_UP: usize = 20;

fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

/// Median of `samples` timed runs of `call`, in milliseconds.
async fn median_ms<F, Fut>(samples: usize, mut call: F) -> anyhow::Result<f64>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for i in 0..WARM_UP {
        call(usize::MAX - i).await?;
    }
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let started = Instant::now();
        call(i).await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times.get(times.len() / 2).copied().unwrap_or(Duration::ZERO).as_secs_f64() * 1000.0)
}

pub async fn floor(client: &Client, prefix: &str, samples: usize, transact_sizes: &[usize]) -> anyhow::Result<()> {
    let table = format!("{prefix}-floor");
    MAIN_TABLE.provision(client, &table).await.context("create the scratch table")?;
    let measured = measure(client, &table, samples, transact_sizes).await;
    client.delete_table().table_name(&table).send().await.context("delete the scratch table")?;
    println!("{}", serde_json::to_string_pretty(&measured?)?);
    Ok(())
}

async fn measure(
    client: &Client,
    table: &str,
    samples: usize,
    transact_sizes: &[usize],
) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut floor = BTreeMap::new();
    // A partition of 20 rows to read, as a history page or a product list does.
    for i in 0..20 {
        client
            .put_item()
            .table_name(table)
            .item("pk", s("FLOOR#LIST"))
            .item("sk", s(format!("{i:04}")))
            .item("amount", AttributeValue::N("1000.00".into()))
            .send()
            .await
            .context("seed the scratch table")?;
    }
    client
        .put_item()
        .table_name(table)
        .item("pk", s("FLOOR#COUNTER"))
        .item("sk", s("A"))
        .item("n", AttributeValue::N("0".into()))
        .send()
        .await?;

    floor.insert(
        "GetItem".to_owned(),
        median_ms(samples, move |_| async move {
            client
                .get_item()
                .table_name(table)
                .key("pk", s("FLOOR#COUNTER"))
                .key("sk", s("A"))
                .consistent_read(true)
                .send()
                .await?;
            Ok(())
        })
        .await?,
    );
    floor.insert(
        "Query".to_owned(),
        median_ms(samples, move |_| async move {
            client
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s("FLOOR#LIST"))
                .limit(20)
                .send()
                .await?;
            Ok(())
        })
        .await?,
    );
    // A read of several items, as create-order (the user, its products, the coupon's
    // copy) and the top 5 (its products) make one: four keys, strongly consistent.
    floor.insert(
        "BatchGetItem".to_owned(),
        median_ms(samples, move |_| async move {
            let keys: Vec<_> = (0..4)
                .map(|i| HashMap::from([("pk".to_owned(), s("FLOOR#LIST")), ("sk".to_owned(), s(format!("{i:04}")))]))
                .collect();
            let read = KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build()?;
            let output = client.batch_get_item().request_items(table, read).send().await?;
            anyhow::ensure!(output.unprocessed_keys().is_none_or(|left| left.is_empty()), "unprocessed keys");
            Ok(())
        })
        .await?,
    );
    floor.insert(
        "PutItem".to_owned(),
        median_ms(samples, move |i| async move {
            client
                .put_item()
                .table_name(table)
                .item("pk", s(format!("FLOOR#PUT#{i}")))
                .item("sk", s("A"))
                .item("amount", AttributeValue::N("1000.00".into()))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await?;
            Ok(())
        })
        .await?,
    );
    floor.insert(
        "UpdateItem".to_owned(),
        median_ms(samples, move |_| async move {
            client
                .update_item()
                .table_name(table)
                .key("pk", s("FLOOR#COUNTER"))
                .key("sk", s("A"))
                .update_expression("ADD n :one")
                .condition_expression("n >= :zero")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .send()
                .await?;
            Ok(())
        })
        .await?,
    );
    floor.insert(
        "DeleteItem".to_owned(),
        median_ms(samples, move |i| async move {
            client
                .delete_item()
                .table_name(table)
                .key("pk", s(format!("FLOOR#PUT#{i}")))
                .key("sk", s("A"))
                .send()
                .await?;
            Ok(())
        })
        .await?,
    );
    for &size in transact_sizes.iter().filter(|n| (1..=100).contains(*n)) {
        // One conditional counter update per item plus puts, like the payment's mix.
        let median = median_ms(samples, move |i| async move {
            let mut items = Vec::with_capacity(size);
            for k in 0..size {
                let item = if k % 2 == 0 {
                    let update = Update::builder()
                        .table_name(table)
                        .key("pk", s(format!("FLOOR#TX#{k}")))
                        .key("sk", s("A"))
                        .update_expression("ADD n :one")
                        .condition_expression("attribute_not_exists(n) OR n >= :zero")
                        .expression_attribute_values(":one", AttributeValue::N("1".into()))
                        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                        .build()?;
                    TransactWriteItem::builder().update(update).build()
                } else {
                    let put = Put::builder()
                        .table_name(table)
                        .item("pk", s(format!("FLOOR#TXPUT#{size}#{i}#{k}")))
                        .item("sk", s("A"))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()?;
                    TransactWriteItem::builder().put(put).build()
                };
                items.push(item);
            }
            client.transact_write_items().set_transact_items(Some(items)).send().await?;
            Ok(())
        })
        .await?;
        floor.insert(format!("TransactWriteItems/{size}"), median);
    }
    Ok(floor)
}
