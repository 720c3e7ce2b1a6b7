//! The feed's state on DynamoDB: the outbox's publication marks (outbox table) and the
//! consumer's delivery log (main table, `DELIVERY#<eventId>` / `DATA_PLATFORM`: status
//! `CLAIMED` with a lease, then `DELIVERED`).

use anyhow::{anyhow, Context as _};
use time::OffsetDateTime;

use super::{get_s, keys, n, s, DynamoStore};
use crate::clock::rfc3339;
use crate::feed::{Claim, DeliveryLog, EventType, Outbox, OutboxEvent, DELIVERY_LEASE};

fn sdk<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    err: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> anyhow::Error {
    anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err))
}

impl Outbox for DynamoStore {
    async fn mark_published(&self, event: &OutboxEvent, at: OffsetDateTime) -> anyhow::Result<()> {
        let event_id = &event.event_id;
        self.client
            .update_item()
            .table_name(&self.outbox_table)
            .set_key(Some(keys::outbox_event(event_id).ok_or_else(|| anyhow!("bad event id {event_id}"))?.item()))
            .update_expression("SET publishedAt = :at REMOVE gsi1pk, gsi1sk")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", s(rfc3339(at)))
            .send()
            .await
            .map_err(sdk)
            .with_context(|| format!("mark event {event_id} published"))?;
        Ok(())
    }

    async fn unpublished_earlier(&self, event: &OutboxEvent) -> anyhow::Result<Vec<OutboxEvent>> {
        let kind = EventType::of_event(&event.event_id).ok_or_else(|| anyhow!("bad event id {}", event.event_id))?;
        let mut earlier = Vec::new();
        for before in kind.earlier() {
            let event_id = before.event_id(&event.order_id);
            let key = keys::outbox_event(&event_id).ok_or_else(|| anyhow!("bad event id {event_id}"))?;
            let found = self
                .client
                .get_item()
                .table_name(&self.outbox_table)
                .set_key(Some(key.item()))
                .consistent_read(true)
                .send()
                .await
                .map_err(sdk)
                .with_context(|| format!("read event {event_id}"))?;
            // Still listed for the sweeper: not published yet.
            if let Some(item) = found.item.filter(|item| item.contains_key("gsi1pk")) {
                earlier.push(outbox_event_from_item(&item)?);
            }
        }
        Ok(earlier)
    }

    /// Every partition of the unpublished index, `limit` from each; the oldest `limit`
    /// of them all.
    async fn unpublished_before(&self, cutoff: OffsetDateTime, limit: u32) -> anyhow::Result<Vec<OutboxEvent>> {
        let cutoff = rfc3339(cutoff);
        let queries = keys::unpublished_partitions().into_iter().map(|partition| {
            let cutoff = cutoff.clone();
            async move {
                let output = self
                    .client
                    .query()
                    .table_name(&self.outbox_table)
                    .index_name("gsi1")
                    .key_condition_expression("gsi1pk = :pending AND gsi1sk < :cutoff")
                    .expression_attribute_values(":pending", s(&partition))
                    .expression_attribute_values(":cutoff", s(cutoff))
                    .limit(limit as i32)
                    .send()
                    .await
                    .map_err(sdk)
                    .with_context(|| format!("list unpublished outbox events of {partition}"))?;
                anyhow::Ok(output.items.unwrap_or_default())
            }
        });
        let mut items: Vec<super::Item> = futures::future::try_join_all(queries).await?.into_iter().flatten().collect();
        items.sort_by(|a, b| get_s(a, "gsi1sk").ok().cmp(&get_s(b, "gsi1sk").ok()));
        items.iter().take(limit as usize).map(outbox_event_from_item).collect()
    }
}

fn outbox_event_from_item(item: &super::Item) -> anyhow::Result<OutboxEvent> {
    Ok(OutboxEvent {
        order_id: get_s(item, "orderId")?.to_owned(),
        event_id: get_s(item, "eventId")?.to_owned(),
        payload: get_s(item, "payload")?.to_owned(),
    })
}

impl DeliveryLog for DynamoStore {
    async fn claim(&self, event_id: &str, now: OffsetDateTime) -> anyhow::Result<Claim> {
        let mut item = keys::delivery(event_id).item();
        item.insert("status".to_owned(), s("CLAIMED"));
        item.insert("leaseUntil".to_owned(), n((now + DELIVERY_LEASE).unix_timestamp()));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR (#status = :claimed AND leaseUntil < :now)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":claimed", s("CLAIMED"))
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::Claimed),
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(failed)) => {
                    let delivered = failed.item().is_some_and(|old| get_s(old, "status").ok() == Some("DELIVERED"));
                    Ok(if delivered { Claim::Delivered } else { Claim::Busy })
                }
                _ => Err(sdk(err)).with_context(|| format!("claim delivery of event {event_id}")),
            },
        }
    }

    async fn delivered(&self, event_id: &str, now: OffsetDateTime) -> anyhow::Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::delivery(event_id).item()))
            .update_expression("SET #status = :delivered, deliveredAt = :at REMOVE leaseUntil")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":delivered", s("DELIVERED"))
            .expression_attribute_values(":at", s(rfc3339(now)))
            .send()
            .await
            .map_err(sdk)
            .with_context(|| format!("mark event {event_id} delivered"))?;
        Ok(())
    }

    async fn release(&self, event_id: &str) -> anyhow::Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::delivery(event_id).item()))
            .condition_expression("#status = :claimed")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":claimed", s("CLAIMED"))
            .send()
            .await
            .map_err(sdk)
            .with_context(|| format!("release the claim on event {event_id}"))?;
        Ok(())
    }
}
