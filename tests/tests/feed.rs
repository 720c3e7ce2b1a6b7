//! The data-platform feed (invariant 6) against the real local stack: DynamoDB
//! Local's stream, moto's SQS and Kinesis, and a data-platform receiver over HTTP. The
//! relay and consumer run as in `make run`: pollers calling the Lambdas' code.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use futures::future::join_all;
use futures::StreamExt as _;
use rushcart::adapters::feed_aws::{AwsPublisher, FeedChannels, HttpPlatform};
use rushcart::clock::SystemClock;
use rushcart::feed::{sweep, EventPublisher, EventType, OutboxEvent};
use rushcart_testkit::channels::{dead_letters, provision, redrive, FeedQueues, Redriven, MAX_RECEIVES};
use rushcart_testkit::feed::{consume_once, relay_once, StreamReader};
use rushcart_tests::feed::{
    kinesis_client, moto_endpoint, sqs_client, stream_records, streams_client, Behaviour, OwnMoto, Receiver,
};
use rushcart_tests::{dynamodb_endpoint, TestApp};
use serde_json::json;

struct Feed {
    reader: StreamReader,
    publisher: AwsPublisher,
    platform: HttpPlatform,
}

impl Feed {
    async fn new(app: &TestApp, moto: &str, receiver: &Receiver) -> Feed {
        let (sqs, kinesis) = (sqs_client(moto).await, kinesis_client(moto).await);
        let prefix = app.table().trim_end_matches("-main").to_owned();
        let channels = provision(&sqs, &kinesis, &prefix, 30).await.expect("provision the feed");
        let streams = streams_client(&dynamodb_endpoint().await).await;
        let reader =
            StreamReader::new(app.client(), streams, app.store.outbox_table()).await.expect("the outbox stream");
        Feed {
            reader,
            publisher: AwsPublisher { sqs, kinesis, channels },
            platform: HttpPlatform::new(&receiver.url).unwrap(),
        }
    }

    async fn relay(&mut self, app: &TestApp) -> anyhow::Result<usize> {
        relay_once(&mut self.reader, &self.publisher, &app.store, &SystemClock).await
    }

    async fn consume(&self, app: &TestApp) -> usize {
        consume_once(
            &self.publisher.sqs,
            &self.publisher.channels.queue_url,
            &app.store,
            &self.platform,
            &SystemClock,
            Duration::ZERO,
        )
        .await
        .expect("consume")
    }

    /// Relays and consumes until `done` or 30 s.
    async fn pump(&mut self, app: &TestApp, done: impl Fn() -> bool) {
        let started = std::time::Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(30), "the feed did not deliver in time");
            let _ = self.relay(app).await;
            self.consume(app).await;
        }
    }
}

/// Creates an order for each user and pays those `pay` says; returns the paid order ids.
async fn orders(
    app: &TestApp,
    users: std::ops::RangeInclusive<u64>,
    pay: impl Fn(u64) -> bool,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let created = join_all(users.clone().map(|user| async move {
        let body = json!({"userId": user, "products": [{"productId": 1, "quantity": 1}]}).to_string();
        let (status, order) = app.post("/api/v1/orders", &body, None).await;
        assert_eq!(status, 201, "{order}");
        (user, order["orderId"].as_str().unwrap().to_owned())
    }))
    .await;
    let mut paid = BTreeSet::new();
    let mut unpaid = BTreeSet::new();
    for (user, order) in created {
        if pay(user) {
            let (status, _) =
                app.post("/api/v1/payment", &json!({"userId": user, "orderId": order}).to_string(), None).await;
            if status == 200 {
                paid.insert(order);
                continue;
            }
        }
        unpaid.insert(order);
    }
    (paid, unpaid)
}

async fn shop(balance_of: impl Fn(u64) -> &'static str, count: u64) -> TestApp {
    let app = TestApp::spawn().await;
    let seeded: Vec<(u64, &str)> = (1..=count).map(|u| (u, balance_of(u))).collect();
    app.seed_users(&seeded).await;
    app.seed_products(1, "10.00", 100_000).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_paid_order_reaches_the_platform_once_and_nothing_else_does() {
    // Users 51..55 cannot afford their order: failed payments must not be delivered.
    let app = shop(|u| if u > 50 && u <= 55 { "1.00" } else { "1000.00" }, 60).await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let mut feed = Feed::new(&app, &moto_endpoint(), &receiver).await;
    // Read the stream while it is still empty, as `make run` does from its start: an
    // engine may then trim that iterator, and the reader must reopen the shard.
    assert_eq!(feed.relay(&app).await.unwrap(), 0);
    let (paid, unpaid) = orders(&app, 1..=60, |u| u <= 55).await;
    assert_eq!((paid.len(), unpaid.len()), (50, 10));

    feed.pump(&app, || receiver.paid().len() >= 50).await;
    // Let any stray duplicate show up before judging.
    for _ in 0..3 {
        let _ = feed.relay(&app).await;
        feed.consume(&app).await;
    }

    let accepted = receiver.paid();
    assert_eq!(accepted.keys().cloned().collect::<BTreeSet<_>>(), paid);
    assert!(accepted.values().all(|n| *n == 1), "each order accepted once: {accepted:?}");

    // An event SQS took but Kinesis did not (a put moto failed under this load) stays
    // unpublished in the outbox for the sweeper, as on AWS; give it its pass.
    let (_, still_failing) =
        sweep(&feed.publisher, &app.store, time::OffsetDateTime::now_utc(), Duration::ZERO).await.unwrap();
    assert_eq!(still_failing, 0, "the sweeper published what the relay could not");
    // Kinesis holds every paid order's event too, keyed by order id.
    let mut on_stream = BTreeSet::new();
    for record in stream_records(&feed.publisher.kinesis, &feed.publisher.channels.stream_name).await.unwrap() {
        let event: serde_json::Value = serde_json::from_slice(record.data().as_ref()).unwrap();
        assert_eq!(record.partition_key(), event["orderId"].as_str());
        assert_eq!(event["schemaVersion"], 1);
        on_stream.insert(event["orderId"].as_str().unwrap().to_owned());
    }
    assert_eq!(on_stream, paid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_started_again_with_its_checkpoint_goes_on_where_it_was_and_one_without_starts_over() {
    let app = shop(|_| "1000.00", 12).await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let mut feed = Feed::new(&app, &moto_endpoint(), &receiver).await;
    let dir = std::env::temp_dir().join(format!("rushcart-checkpoint-{}", ulid::Ulid::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("feed.checkpoint");
    let reader = || async {
        let streams = streams_client(&dynamodb_endpoint().await).await;
        StreamReader::new(app.client(), streams, app.store.outbox_table()).await.expect("the outbox stream")
    };
    feed.reader = reader().await.checkpointed(checkpoint.clone()).unwrap();
    let (first, _) = orders(&app, 1..=6, |_| true).await;
    let mut relayed = 0;
    for _ in 0..20 {
        relayed += feed.relay(&app).await.unwrap();
    }
    assert_eq!(relayed, first.len());
    assert!(checkpoint.exists(), "the relay kept its place");

    // Killed and started again: the same checkpoint, then more payments.
    feed.reader = reader().await.checkpointed(checkpoint.clone()).unwrap();
    let (second, _) = orders(&app, 7..=12, |_| true).await;
    let mut again = 0;
    for _ in 0..20 {
        again += feed.relay(&app).await.unwrap();
    }
    assert_eq!(again, second.len(), "only the payments made since");

    // Without one, a reader starts from the stream's start: every event again.
    feed.reader = reader().await;
    let mut over = 0;
    for _ in 0..20 {
        over += feed.relay(&app).await.unwrap();
    }
    assert_eq!(over, first.len() + second.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// moto's own Kinesis numbers a shard's records unsafely under concurrent puts and
/// overwrote one now and then (a paid order missing from the stream in CI); the local
/// stack's launcher serialises them. Real Kinesis keeps every acknowledged record, and
/// so must the emulator the feed is tested against.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_local_kinesis_keeps_every_one_of_a_thousand_concurrent_puts() {
    let kinesis = kinesis_client(&moto_endpoint()).await;
    let stream = format!("puts-{}", ulid::Ulid::generate());
    kinesis.create_stream().stream_name(&stream).shard_count(1).send().await.unwrap();
    let puts = futures::stream::iter(0..1000)
        .map(|i| {
            let (kinesis, stream) = (&kinesis, &stream);
            async move {
                kinesis
                    .put_record()
                    .stream_name(stream)
                    .partition_key(i.to_string())
                    .data(aws_sdk_kinesis::primitives::Blob::new(i.to_string()))
                    .send()
                    .await
                    .unwrap()
                    .sequence_number
            }
        })
        .buffer_unordered(64)
        .collect::<BTreeSet<_>>()
        .await;
    assert_eq!(puts.len(), 1000, "each put got its own sequence number");
    let kept: BTreeSet<String> = stream_records(&kinesis, &stream)
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(r.data().as_ref().to_vec()).unwrap())
        .collect();
    assert_eq!(kept, (0..1000).map(|i| i.to_string()).collect());
}

/// Every message of `queue`, received until one receive finds none.
async fn drain_queue(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let page = sqs.receive_message().queue_url(queue).max_number_of_messages(10).send().await.unwrap();
        if page.messages().is_empty() {
            return bodies;
        }
        bodies.extend(page.messages().iter().filter_map(|m| m.body().map(str::to_owned)));
    }
}

/// The relay's batches, on the real SDK against moto: 25 events of 25 orders go out in
/// three `SendMessageBatch` requests and one `PutRecords`, and each arrives once on
/// each channel with its own body and partition key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_events_reaches_sqs_and_kinesis_each_once_with_its_own_body_and_key() {
    let moto = moto_endpoint();
    let (sqs, kinesis) = (sqs_client(&moto).await, kinesis_client(&moto).await);
    let prefix = format!("batch-{}", ulid::Ulid::generate().to_string().to_lowercase());
    let channels = provision(&sqs, &kinesis, &prefix, 30).await.expect("provision the feed");
    let publisher = AwsPublisher { sqs: sqs.clone(), kinesis: kinesis.clone(), channels };
    let events: Vec<OutboxEvent> = (0..25)
        .map(|i| {
            let order = format!("order-{i:02}");
            // Bodies of different sizes, one of them 100 KiB, so a batch also stops at
            // SQS's 256 KiB.
            let filler = "x".repeat(if i == 7 { 100 * 1024 } else { i * 10 });
            let payload = json!({"eventId": format!("{order}:ORDER_PAID"), "orderId": order, "filler": filler});
            OutboxEvent {
                order_id: order.clone(),
                event_id: format!("{order}:ORDER_PAID"),
                payload: payload.to_string(),
            }
        })
        .collect();

    let outcomes = publisher.publish_batch(&events).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");

    let mut on_queue = drain_queue(&sqs, &publisher.channels.queue_url).await;
    on_queue.sort();
    let mut sent: Vec<String> = events.iter().map(|e| e.payload.clone()).collect();
    sent.sort();
    assert_eq!(on_queue, sent, "each body once on the queue");
    let on_stream: Vec<(String, String)> = stream_records(&kinesis, &publisher.channels.stream_name)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (r.partition_key().unwrap_or_default().to_owned(), String::from_utf8(r.data().as_ref().to_vec()).unwrap())
        })
        .collect();
    let mut expected: Vec<(String, String)> = events.iter().map(|e| (e.order_id.clone(), e.payload.clone())).collect();
    let mut got = on_stream.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "each event once on the stream, keyed by its order");
}

/// A batch SQS does not take at all (here: its queue is gone) fails every event in it,
/// and none of them goes on to Kinesis: they are published again, whole, later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_sqs_refuses_fails_every_event_and_puts_nothing_on_the_stream() {
    let moto = moto_endpoint();
    let (sqs, kinesis) = (sqs_client(&moto).await, kinesis_client(&moto).await);
    let prefix = format!("gone-{}", ulid::Ulid::generate().to_string().to_lowercase());
    let channels = provision(&sqs, &kinesis, &prefix, 30).await.expect("provision the feed");
    sqs.delete_queue().queue_url(&channels.queue_url).send().await.unwrap();
    let publisher = AwsPublisher { sqs, kinesis: kinesis.clone(), channels };
    let events: Vec<OutboxEvent> = (0..12)
        .map(|i| OutboxEvent {
            order_id: format!("o{i}"),
            event_id: format!("o{i}:ORDER_PAID"),
            payload: json!({"orderId": format!("o{i}")}).to_string(),
        })
        .collect();

    let outcomes = publisher.publish_batch(&events).await;
    assert_eq!(outcomes.len(), 12);
    for (outcome, event) in outcomes.iter().zip(&events) {
        let err = outcome.as_ref().expect_err("SQS took nothing");
        assert!(format!("{err:#}").contains(&format!("order {}", event.order_id)), "{err:#}");
    }
    assert!(stream_records(&kinesis, &publisher.channels.stream_name).await.unwrap().is_empty());
}

/// ORDER_REFUNDED travels the same way as ORDER_PAID and is recorded once beside it:
/// the consumer dedups by event id, not order id. On Kinesis, one order's events keep
/// their order (partition key = order id).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_reaches_the_platform_once_after_its_payment_and_in_order_on_the_stream() {
    let app = shop(|_| "1000.00", 10).await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let mut feed = Feed::new(&app, &moto_endpoint(), &receiver).await;
    let (paid, _) = orders(&app, 1..=10, |_| true).await;
    let refunded: BTreeSet<String> = paid.iter().step_by(2).cloned().collect();
    for order in &refunded {
        let (status, body) = app
            .post_as(&format!("/api/v1/admin/orders/{order}/cancel"), "", None, Some(&app.operator_token(900)))
            .await;
        assert_eq!((status, body["status"].as_str()), (200, Some("REFUNDED")), "{body}");
    }

    feed.pump(&app, || receiver.paid().len() >= 10 && receiver.refunded().len() >= 5).await;
    for _ in 0..3 {
        let _ = feed.relay(&app).await;
        feed.consume(&app).await;
    }
    assert_eq!(receiver.paid().keys().cloned().collect::<BTreeSet<_>>(), paid);
    assert_eq!(receiver.refunded().keys().cloned().collect::<BTreeSet<_>>(), refunded);
    assert!(receiver.accepted().values().all(|n| *n == 1), "each event recorded once: {:?}", receiver.accepted());

    sweep(&feed.publisher, &app.store, time::OffsetDateTime::now_utc(), Duration::ZERO).await.unwrap();
    let mut per_order: HashMap<String, Vec<String>> = HashMap::new();
    for record in stream_records(&feed.publisher.kinesis, &feed.publisher.channels.stream_name).await.unwrap() {
        let event: serde_json::Value = serde_json::from_slice(record.data().as_ref()).unwrap();
        assert_eq!(record.partition_key(), event["orderId"].as_str());
        per_order
            .entry(event["orderId"].as_str().unwrap().to_owned())
            .or_default()
            .push(event["type"].as_str().unwrap().to_owned());
    }
    for order in &paid {
        let expected: &[&str] =
            if refunded.contains(order) { &["ORDER_PAID", "ORDER_REFUNDED"] } else { &["ORDER_PAID"] };
        assert_eq!(per_order[order], expected, "order {order}'s events on the stream, in order");
    }
}

/// The stream gave up on an order's ORDER_PAID (left to the sweeper) and then brings
/// its ORDER_REFUNDED: the relay publishes the payment's event first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_relayed_while_its_payment_waits_for_the_sweeper_goes_out_after_it() {
    let app = shop(|_| "1000.00", 1).await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let feed = Feed::new(&app, &moto_endpoint(), &receiver).await;
    let (paid, _) = orders(&app, 1..=1, |_| true).await;
    let order = paid.first().expect("one paid order").clone();
    let (status, _) =
        app.post_as(&format!("/api/v1/admin/orders/{order}/cancel"), "", None, Some(&app.operator_token(900))).await;
    assert_eq!(status, 200);

    let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let pending = rushcart::feed::Outbox::unpublished_before(&app.store, later, 10).await.unwrap();
    assert_eq!(pending.len(), 2, "neither event was relayed yet");
    let refund = pending.into_iter().find(|e| e.event_id.ends_with(":ORDER_REFUNDED")).expect("the refund's event");
    let failed = rushcart::feed::relay(&feed.publisher, &app.store, vec![("1".to_owned(), refund)], later).await;
    assert!(failed.is_empty(), "{failed:?}");

    let types: Vec<String> = stream_records(&feed.publisher.kinesis, &feed.publisher.channels.stream_name)
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(r.data().as_ref()).unwrap()["type"].to_string())
        .collect();
    assert_eq!(types, [r#""ORDER_PAID""#, r#""ORDER_REFUNDED""#]);
    let left = rushcart::feed::Outbox::unpublished_before(&app.store, later, 10).await.unwrap();
    assert!(left.is_empty(), "both are marked published: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_the_platform_refuses_at_first_arrives_later_once() {
    let app = shop(|_| "1000.00", 10).await;
    let receiver = Receiver::start(Behaviour::RefuseFirst).await;
    let mut feed = Feed::new(&app, &moto_endpoint(), &receiver).await;
    let (paid, _) = orders(&app, 1..=10, |_| true).await;

    feed.pump(&app, || receiver.paid().len() >= 10).await;

    let accepted = receiver.paid();
    assert_eq!(accepted.keys().cloned().collect::<BTreeSet<_>>(), paid);
    assert!(accepted.values().all(|n| *n == 1));
    assert!(receiver.attempts.lock().unwrap().values().all(|n| *n >= 2), "each was refused once first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_sqs_and_kinesis_down_payments_and_refunds_succeed_and_the_sweeper_delivers_once_they_are_back() {
    let app = shop(|_| "1000.00", 10).await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let mut moto = OwnMoto::start();
    let mut feed = Feed::new(&app, &moto.endpoint(), &receiver).await;

    moto.stop();
    let (paid, unpaid) = orders(&app, 1..=10, |_| true).await;
    assert_eq!((paid.len(), unpaid.len()), (10, 0), "payment never waits on the feed");
    let refunded: BTreeSet<String> = paid.iter().take(3).cloned().collect();
    let operator = app.operator_token(900);
    for order in &refunded {
        let (status, _) = app.post_as(&format!("/api/v1/admin/orders/{order}/cancel"), "", None, Some(&operator)).await;
        assert_eq!(status, 200, "a refund never waits on the feed either");
    }
    assert!(feed.relay(&app).await.is_ok(), "the relay reads the stream");
    let pending = rushcart::feed::Outbox::unpublished_before(
        &app.store,
        time::OffsetDateTime::now_utc() + time::Duration::minutes(1),
        100,
    )
    .await
    .unwrap();
    assert_eq!(pending.len(), 13, "nothing could be published, nothing is lost");

    moto.restart();
    // moto starts empty: provision the channels again, as the stack would be.
    let prefix = app.table().trim_end_matches("-main").to_owned();
    feed.publisher.channels = provision(&feed.publisher.sqs, &feed.publisher.kinesis, &prefix, 30).await.unwrap();
    let (republished, failed) =
        sweep(&feed.publisher, &app.store, time::OffsetDateTime::now_utc(), Duration::ZERO).await.unwrap();
    assert_eq!((republished, failed), (13, 0));
    feed.pump(&app, || receiver.paid().len() >= 10 && receiver.refunded().len() >= 3).await;
    for _ in 0..2 {
        feed.consume(&app).await;
    }
    assert_eq!(receiver.paid().keys().cloned().collect::<BTreeSet<_>>(), paid);
    assert_eq!(receiver.refunded().keys().cloned().collect::<BTreeSet<_>>(), refunded);
    assert!(receiver.accepted().values().all(|n| *n == 1), "each event recorded once: {:?}", receiver.accepted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_the_platform_always_refuses_ends_in_the_dead_letter_queue_without_blocking_others() {
    let app = shop(|_| "1000.00", 12).await;
    let refused_suffix = '7';
    let receiver = Receiver::start(Behaviour::AlwaysRefuseEndingWith(refused_suffix)).await;
    let mut feed = Feed::new(&app, &moto_endpoint(), &receiver).await;
    let (paid, _) = orders(&app, 1..=12, |_| true).await;
    let doomed: BTreeSet<String> = paid.iter().filter(|o| o.ends_with(refused_suffix)).cloned().collect();
    let fine: BTreeSet<String> = paid.difference(&doomed).cloned().collect();

    let sqs = feed.publisher.sqs.clone();
    let dlq = feed.publisher.channels.dead_letter_queue_url.clone();
    let mut in_dlq: HashMap<String, u32> = HashMap::new();
    let started = std::time::Instant::now();
    while in_dlq.len() < doomed.len() || receiver.paid().len() < fine.len() {
        assert!(started.elapsed() < Duration::from_secs(40), "dead-lettered {in_dlq:?} of {doomed:?}");
        let _ = feed.relay(&app).await;
        feed.consume(&app).await;
        let dead = sqs.receive_message().queue_url(&dlq).max_number_of_messages(10).send().await.unwrap();
        for message in dead.messages() {
            let event: serde_json::Value = serde_json::from_str(message.body().unwrap()).unwrap();
            *in_dlq.entry(event["orderId"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    assert_eq!(in_dlq.keys().cloned().collect::<BTreeSet<_>>(), doomed);
    assert_eq!(receiver.paid().keys().cloned().collect::<BTreeSet<_>>(), fine);
    let attempts = receiver.attempts.lock().unwrap().clone();
    for order in &doomed {
        assert_eq!(
            attempts[&format!("{order}:ORDER_PAID")],
            rushcart_testkit::channels::MAX_RECEIVES,
            "{order} was tried once per receive"
        );
    }
}

/// Messages in `queue`: (visible, in flight).
async fn depth(sqs: &aws_sdk_sqs::Client, queue: &str) -> (u32, u32) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("the queue's attributes");
    let count = |name: QueueAttributeName| {
        let value = attributes.attributes().and_then(|a| a.get(&name)).unwrap_or_else(|| panic!("no {name}"));
        value.parse().unwrap_or_else(|e| panic!("{name} {value}: {e}"))
    };
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// A poison message — one the platform refuses every time — is retried up to the
/// queue's receive limit and then dead-lettered, while the rest of its batch is
/// delivered on the first pass. Once the platform takes it, `rushcart-admin redrive`
/// moves it back and it is delivered once; a dead-lettered copy of an event already
/// delivered is redriven with it and acknowledged without a second delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_message_is_dead_lettered_without_holding_up_its_batch_and_a_redrive_delivers_it_once() {
    let app = shop(|_| "1000.00", 4).await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let mut feed = Feed::new(&app, &moto_endpoint(), &receiver).await;
    let (paid, _) = orders(&app, 1..=4, |_| true).await;
    let events: BTreeSet<String> = paid.iter().map(|order| EventType::OrderPaid.event_id(order)).collect();
    assert_eq!(events.len(), 4, "{paid:?}");
    let poison = events.first().expect("an event").clone();
    let good: HashMap<String, u32> = events.iter().filter(|e| **e != poison).map(|e| (e.clone(), 1)).collect();
    receiver.refuse(&poison);
    let sqs = feed.publisher.sqs.clone();
    let FeedChannels { queue_url: queue, dead_letter_queue_url: dlq, .. } = feed.publisher.channels.clone();

    // All four on the queue before the consumer's first pass, so they make one batch.
    let started = Instant::now();
    while depth(&sqs, &queue).await.0 < 4 {
        assert!(started.elapsed() < Duration::from_secs(20), "the relay did not publish the four events");
        let _ = feed.relay(&app).await;
    }
    assert_eq!(feed.consume(&app).await, 4, "one batch of four");
    assert_eq!(receiver.accepted(), good, "the rest of the batch is delivered at once, once each");

    // moto applies the queue's redrive policy on receive, as SQS does: the poison is
    // received (and refused) MAX_RECEIVES times, then moved to the dead-letter queue.
    let started = Instant::now();
    while depth(&sqs, &dlq).await != (1, 0) {
        let attempts = receiver.attempts_of(&poison);
        assert!(started.elapsed() < Duration::from_secs(30), "not dead-lettered after {attempts} attempts");
        feed.consume(&app).await;
    }
    assert_eq!(receiver.attempts_of(&poison), MAX_RECEIVES, "tried once per receive, up to the limit");
    assert_eq!(depth(&sqs, &queue).await, (0, 0), "nothing is left on the feed queue");
    assert_eq!(receiver.accepted(), good, "the poison was never taken");

    // A copy of an event already delivered lands in the dead-letter queue too (a
    // consumer that delivered it and died before acknowledging, five times over).
    let delivered = good.keys().next().expect("a delivered event").clone();
    let copy = receiver.body_of(&delivered).expect("the body the platform took");
    sqs.send_message().queue_url(&dlq).message_body(copy).send().await.expect("a copy in the dead-letter queue");

    let listed = dead_letters(&sqs, &dlq).await.expect("list the dead letters");
    let listed: BTreeSet<(String, u32)> =
        listed.into_iter().map(|letter| (letter.event_id.expect("an event"), letter.receives)).collect();
    let expected = BTreeSet::from([(poison.clone(), MAX_RECEIVES), (delivered.clone(), 0)]);
    assert_eq!(listed, expected, "each with the receives it had");
    assert_eq!(depth(&sqs, &dlq).await, (2, 0), "listing moves nothing and leaves nothing hidden");

    // The cause is fixed; the operator redrives.
    receiver.stop_refusing(&poison);
    let delivered_attempts = receiver.attempts_of(&delivered);
    let redriven = redrive(&sqs, &dlq, &queue).await.expect("redrive");
    assert_eq!(redriven, Redriven { moved: 2, ..Redriven::default() });
    assert_eq!(depth(&sqs, &dlq).await, (0, 0), "the dead-letter queue is empty");

    let started = Instant::now();
    while depth(&sqs, &queue).await != (0, 0) {
        assert!(started.elapsed() < Duration::from_secs(20), "the redriven messages were not consumed");
        feed.consume(&app).await;
    }
    let once: HashMap<String, u32> = events.iter().map(|e| (e.clone(), 1)).collect();
    assert_eq!(receiver.accepted(), once, "the poison delivered once, nothing twice");
    assert_eq!(receiver.attempts_of(&delivered), delivered_attempts, "the copy was acknowledged without a post");
}

/// `redrive` empties the dead-letter queue into the feed queue, more than one receive's
/// worth, each message with its body and its message attributes; the queues are found
/// by the names `provision` gives them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_moves_every_dead_letter_back_with_its_body_and_attributes() {
    let moto = moto_endpoint();
    let (sqs, kinesis) = (sqs_client(&moto).await, kinesis_client(&moto).await);
    let prefix = format!("redrive-{}", ulid::Ulid::generate().to_string().to_lowercase());
    let channels = provision(&sqs, &kinesis, &prefix, 30).await.expect("provision the feed");
    let queues = FeedQueues::by_name(&sqs, &prefix).await.expect("the queues by name");
    assert_eq!(
        (&queues.queue_url, &queues.dead_letter_queue_url),
        (&channels.queue_url, &channels.dead_letter_queue_url)
    );

    let letter = |i: u32| (format!(r#"{{"eventId": "o{i}:ORDER_PAID"}}"#), format!("trace-{i}"));
    for i in 0..25 {
        let (body, trace) = letter(i);
        let attribute = MessageAttributeValue::builder().data_type("String").string_value(trace).build().expect("attr");
        let sent = sqs.send_message().queue_url(&queues.dead_letter_queue_url).message_body(body);
        sent.message_attributes("trace", attribute).send().await.expect("a dead letter");
    }
    let redriven = redrive(&sqs, &queues.dead_letter_queue_url, &queues.queue_url).await.expect("redrive");
    assert_eq!(redriven, Redriven { moved: 25, ..Redriven::default() });
    assert_eq!(depth(&sqs, &queues.dead_letter_queue_url).await, (0, 0));

    let mut back = BTreeSet::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queues.queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let trace = message.message_attributes().and_then(|a| a.get("trace")).and_then(|t| t.string_value());
            back.insert((message.body().expect("a body").to_owned(), trace.expect("the trace attribute").to_owned()));
            let handle = message.receipt_handle().expect("a receipt handle");
            sqs.delete_message().queue_url(&queues.queue_url).receipt_handle(handle).send().await.expect("delete");
        }
    }
    assert_eq!(back, (0..25).map(letter).collect::<BTreeSet<_>>());
}

/// The sweeper lists every partition of the unpublished index — each shard, and the
/// one events written before the index was sharded sit in — oldest first, up to its
/// limit, and nothing written after its cutoff.
#[tokio::test]
async fn the_sweeper_lists_the_unpublished_events_of_every_partition_oldest_first() {
    use rushcart::adapters::dynamodb::{keys, s};
    use rushcart::feed::Outbox as _;
    let app = TestApp::spawn().await;
    let start = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let mut written = Vec::new();
    for i in 0..40_i64 {
        let order = rushcart::ids::OrderId::generate().to_string();
        let at = rushcart::clock::rfc3339(start + time::Duration::seconds(i));
        let event_id = EventType::OrderPaid.event_id(&order);
        let mut item = keys::outbox_event(&event_id).expect("an event id").item();
        item.insert("orderId".to_owned(), s(&order));
        item.insert("eventId".to_owned(), s(&event_id));
        item.insert("payload".to_owned(), s("{}"));
        item.insert("createdAt".to_owned(), s(&at));
        // Every fourth as a release before the shards wrote it.
        let partition = if i % 4 == 0 { keys::UNPUBLISHED_GSI1PK.to_owned() } else { keys::unpublished_gsi1pk(&order) };
        item.insert("gsi1pk".to_owned(), s(partition));
        item.insert("gsi1sk".to_owned(), s(format!("{at}#{event_id}")));
        app.client().put_item().table_name(app.store.outbox_table()).set_item(Some(item)).send().await.unwrap();
        written.push(event_id);
    }
    let ids = |events: Vec<OutboxEvent>| events.into_iter().map(|e| e.event_id).collect::<Vec<_>>();
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(ids(app.store.unpublished_before(now, 100).await.unwrap()), written);
    assert_eq!(ids(app.store.unpublished_before(now, 7).await.unwrap()), written[..7]);
    let cutoff = start + time::Duration::milliseconds(20_500);
    assert_eq!(ids(app.store.unpublished_before(cutoff, 100).await.unwrap()), written[..21]);
}
