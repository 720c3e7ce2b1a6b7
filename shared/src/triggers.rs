//! The non-HTTP Lambdas' handlers: each takes its trigger's event (the feed's as
//! `aws_lambda_events` types, the Cognito triggers' as JSON) and returns what the
//! function answers Lambda with. The binaries in `functions/` only build
//! their clients and call these, so `make test` can feed the recorded events in
//! `events/` through exactly the code Lambda runs.
//!
//! - [`relay_stream_batch`]: DynamoDB stream (outbox) → SQS + Kinesis (`feed-relay`).
//! - [`sweep_on_schedule`]: EventBridge schedule → republish stragglers (`feed-sweeper`).
//! - [`consume_sqs_batch`]: SQS → the data platform (`feed-consumer`).
//! - [`refresh_top_on_schedule`]: EventBridge schedule → the top-5 cache
//!   (`refresh-top-products`).
//! - [`sign_up_confirmed`]: Cognito post-confirmation → the new user's number and empty
//!   balance (`user-signup`).
//! - [`token_claims`]: Cognito pre-token-generation (V2) → the shop's user id in the
//!   access and ID tokens (`token-claims`).
//!
//! The stream and SQS handlers never fail the whole batch: a record that could not be
//! handled is named in `batchItemFailures` (the template turns on
//! `ReportBatchItemFailures`), so only it is retried.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use serde_json::{json, Value};

use crate::catalog::ProductCatalog;
use crate::clock::Clock;
use crate::feed::{
    consume, events_from_stream_event, messages_from_sqs_event, relay, sqs_batch_response, stream_batch_response,
    sweep, DataPlatform, DeliveryLog, EventPublisher, Outbox, SWEEP_GRACE,
};
use crate::identity::UserRegistry;
use crate::top::{refresh, SalesReader, TopError, TopProductsCache};

/// `feed-relay`: publishes each INSERT of the outbox stream batch and marks it
/// published; answers the partial batch response (failed records by sequence number).
pub async fn relay_stream_batch<P: EventPublisher, O: Outbox>(
    publisher: &P,
    outbox: &O,
    clock: &dyn Clock,
    event: StreamEvent,
) -> DynamoDbEventResponse {
    let batch = events_from_stream_event(event);
    let mut failed = relay(publisher, outbox, batch.records, clock.now()).await;
    failed.extend(batch.unreadable);
    stream_batch_response(failed)
}

/// `feed-sweeper`: republishes events left unpublished past [`SWEEP_GRACE`]. The
/// schedule event carries nothing the sweep needs.
pub async fn sweep_on_schedule<P: EventPublisher, O: Outbox>(
    publisher: &P,
    outbox: &O,
    clock: &dyn Clock,
) -> anyhow::Result<Value> {
    let (republished, failed) = sweep(publisher, outbox, clock.now(), SWEEP_GRACE).await?;
    Ok(json!({"republished": republished, "failed": failed}))
}

/// `feed-consumer`: delivers each SQS message to the data platform, once in effect per
/// order; answers the partial batch response (failed records by message id).
pub async fn consume_sqs_batch<L: DeliveryLog, D: DataPlatform>(
    log: &L,
    platform: &D,
    clock: &dyn Clock,
    event: SqsEvent,
) -> SqsBatchResponse {
    let batch = messages_from_sqs_event(event);
    let mut failed = consume(log, platform, batch.records, clock.now()).await;
    failed.extend(batch.unreadable);
    sqs_batch_response(failed)
}

/// `refresh-top-products`: recomputes the top 5 from DynamoDB and overwrites the cache.
pub async fn refresh_top_on_schedule<S: SalesReader + ProductCatalog>(
    store: &S,
    cache: &dyn TopProductsCache,
    clock: &dyn Clock,
) -> Result<Value, TopError> {
    // Boxed: the refresh's reads nest deep enough that the refresher's whole future
    // went past the compiler's query depth computing its layout.
    let value = Box::pin(refresh(store, cache, clock)).await?;
    tracing::info!(items = value.items.len(), "top 5 refreshed");
    Ok(json!({"items": value.items.len(), "generatedAt": value.generated_at}))
}

/// The identity provider's subject a Cognito trigger event is about.
fn subject_of(event: &Value) -> anyhow::Result<String> {
    let attributes = &event["request"]["userAttributes"];
    attributes["sub"]
        .as_str()
        .filter(|sub| !sub.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the Cognito event names no subject (request.userAttributes.sub)"))
}

/// `user-signup`, Cognito's post-confirmation trigger: a confirmed user gets the next
/// shop user id and an empty balance (once, however often Cognito retries). Cognito
/// expects the event back unchanged.
pub async fn sign_up_confirmed<R: UserRegistry>(
    registry: &R,
    clock: &dyn Clock,
    event: Value,
) -> anyhow::Result<Value> {
    let subject = subject_of(&event)?;
    registry.user_for(&subject, clock.now()).await.map_err(anyhow::Error::new)?;
    Ok(event)
}

/// `token-claims`, Cognito's pre-token-generation trigger (event version 2): puts the
/// shop's user id into the access token (which clients send) and the ID token as the
/// claim `claim` (`USER_ID_CLAIM`), a string as API Gateway passes claims on. A user
/// Cognito knows but the shop not yet (made by an administrator, say) is registered
/// here.
pub async fn token_claims<R: UserRegistry>(
    registry: &R,
    clock: &dyn Clock,
    claim: &str,
    mut event: Value,
) -> anyhow::Result<Value> {
    let subject = subject_of(&event)?;
    let user = registry.user_for(&subject, clock.now()).await.map_err(anyhow::Error::new)?;
    let claims = Value::Object([(claim.to_owned(), json!(user.to_string()))].into_iter().collect());
    event["response"] = json!({
        "claimsAndScopeOverrideDetails": {
            "idTokenGeneration": { "claimsToAddOrOverride": claims },
            "accessTokenGeneration": { "claimsToAddOrOverride": claims },
        }
    });
    Ok(event)
}
