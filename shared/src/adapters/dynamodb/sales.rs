//! The per-day sales figures that payment writes (`SALES#<day>#<n>` / `PRODUCT#<id>`,
//! `ADD quantity`, on the paying order's shard; see [`keys::sales`]), read for the top 5.

use std::collections::HashMap;

use anyhow::anyhow;

use super::{db_error, get_u64, keys, s, DbError, DynamoStore};
use crate::ids::ProductId;

impl crate::top::SalesReader for DynamoStore {
    /// One strongly consistent Query per day and partition of the day's figures (the
    /// shards and the one before them; at most a product count of small items each),
    /// all at once.
    async fn sales(&self, days: &[time::Date]) -> Result<HashMap<ProductId, u64>, crate::top::TopError> {
        self.tell(|probe| probe.top_computed());
        let partitions = days.iter().flat_map(|day| keys::sales_partitions(*day).into_iter().map(move |p| (*day, p)));
        let per_partition: Vec<(time::Date, String)> = partitions.collect();
        let reads = per_partition.iter().map(|(day, partition)| self.sales_of(*day, partition));
        let per_day = futures::future::try_join_all(reads).await?;
        let mut sold: HashMap<ProductId, u64> = HashMap::new();
        for (product, quantity) in per_day.into_iter().flatten() {
            *sold.entry(product).or_default() += quantity;
        }
        Ok(sold)
    }
}

impl DynamoStore {
    /// The quantity sold of each product on `day`, as one partition of its figures holds.
    async fn sales_of(&self, day: time::Date, partition: &str) -> Result<Vec<(ProductId, u64)>, crate::top::TopError> {
        use crate::top::TopError;
        let mut sold = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :day")
                .expression_attribute_values(":day", s(partition))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| match db_error(e, || format!("read sales of {day} ({partition})")) {
                    DbError::Unavailable(e) => TopError::Unavailable(e),
                    DbError::Other(e) => TopError::Unexpected(e),
                })?;
            for item in page.items() {
                let product = ProductId::new(get_u64(item, "productId")?).map_err(|e| anyhow!("productId: {e}"))?;
                sold.push((product, get_u64(item, "quantity")?));
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(sold);
            }
        }
    }
}
