//! Signing users up on the real DynamoDB adapter: user ids come a block at a time per
//! process, so a rush of sign-ups writes the one counter item rarely, and no id is ever
//! two users.

mod support;

use std::collections::BTreeSet;

use rushcart::adapters::dynamodb::counters::USER_ID_BLOCK;
use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::identity::UserRegistry;
use time::OffsetDateTime;

/// Two processes (two stores on one table, as two Lambda instances) sign up 300
/// subjects between them at once: 300 distinct positive ids, each process's increasing
/// from its own blocks, and the counter moved a block at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_signing_up_at_once_take_distinct_ids_a_block_at_a_time() {
    let first = support::store().await;
    let second = DynamoStore::new(first.client().clone(), first.table());
    support::add_user(&first, 1, "0.00").await;
    let now = OffsetDateTime::now_utc();

    let sign_ups = (0..300).map(|i| {
        let store = if i % 2 == 0 { &first } else { &second };
        async move { (i % 2, store.user_for(&format!("subject-{i}"), now).await.expect("signed up").get()) }
    });
    let ids: Vec<(usize, u64)> = futures::future::join_all(sign_ups).await;

    let distinct: BTreeSet<u64> = ids.iter().map(|(_, id)| *id).collect();
    assert_eq!(distinct.len(), 300, "no id twice");
    assert!(distinct.iter().all(|id| *id > 1), "none is the seeded user's");
    let blocks =
        |process: usize| ids.iter().filter(move |(p, _)| *p == process).map(|(_, id)| (id - 2) / USER_ID_BLOCK);
    let reserved: BTreeSet<u64> = blocks(0).chain(blocks(1)).collect();
    assert_eq!(reserved.len(), 6, "150 sign-ups a process take three blocks of 64 each: {reserved:?}");
    assert!(blocks(0).collect::<BTreeSet<_>>().is_disjoint(&blocks(1).collect()), "a block is one process's");
    // Cognito retries its trigger: the same subject is the same user.
    assert_eq!(first.user_for("subject-7", now).await.unwrap().get(), ids[7].1);
}

/// Users seeded past the counter after a process reserved its block: the sign-up that
/// meets one takes a new block (the seeding raised the counter) instead of walking
/// through the seeded ids.
#[tokio::test]
async fn a_block_overtaken_by_seeding_is_given_up_for_a_new_one() {
    let store = support::store().await;
    let now = OffsetDateTime::now_utc();
    let first = store.user_for("before", now).await.unwrap().get();
    for user in first + 1..first + 40 {
        support::add_user(&store, user, "0.00").await;
    }
    let next = store.user_for("after", now).await.unwrap().get();
    assert!(next >= first + 40, "after the seeded ones: {next}");
}
