//! Invariant audits read straight from the table, never through the API: used by the
//! integration tests, and by `rushcart-admin audit` after load runs.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context as _};
use rust_decimal::Decimal;

use rushcart::adapters::dynamodb::ledger::pending_entries;
use rushcart::adapters::dynamodb::{get_n, get_s, get_u64, keys, s, Item};
use rushcart::ids::UserId;

/// One ledger entry as stored: kind, amount, balance after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub kind: String,
    pub amount: Decimal,
    pub balance_after: Decimal,
    /// The order a payment or refund names.
    pub order: Option<String>,
}

/// A user's ledger as stored: the profile's balance and every entry by seq (history
/// rows and pending entries merged; a pending entry and its row must agree).
#[derive(Debug)]
pub struct StoredLedger {
    pub balance: Decimal,
    pub entries: BTreeMap<u64, StoredEntry>,
}

/// The items a scan asks for per page. DynamoDB ends a page at 1 MB whatever the limit;
/// the local engine (dynoxide 3.2) reads every item after the page's start key for each
/// page of a scan that names no `Limit` (its SQL has no `LIMIT`) and only then stops at
/// 1 MB, so a whole scan without one costs the square of the table: auditing the table a
/// 10-minute soak leaves (about 400,000 items) took over 20 minutes. With a limit a page
/// reads at most that many.
pub const SCAN_PAGE: i32 = 1000;

pub async fn read_ledger(client: &aws_sdk_dynamodb::Client, table: &str, user: UserId) -> anyhow::Result<StoredLedger> {
    let mut items: Vec<Item> = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::user_partition(user)))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
            .with_context(|| format!("read the partition of user {user}"))?;
        items.extend(page.items().iter().cloned());
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    let profile = items
        .iter()
        .find(|i| get_s(i, "sk").ok() == Some(keys::profile(user).sk.as_str()))
        .ok_or_else(|| anyhow!("user {user} has no profile"))?;
    let mut entries = BTreeMap::new();
    for row in items.iter().filter(|i| get_s(i, "sk").is_ok_and(|sk| sk.starts_with(keys::HISTORY_PREFIX))) {
        let seq = get_u64(row, "seq")?;
        let entry = StoredEntry {
            kind: get_s(row, "kind")?.to_owned(),
            amount: get_n(row, "amount")?,
            balance_after: get_n(row, "balanceAfter")?,
            order: row.get("orderId").map(|_| get_s(row, "orderId")).transpose()?.map(str::to_owned),
        };
        if entries.insert(seq, entry).is_some() {
            bail!("user {user}: two history rows with seq {seq}");
        }
    }
    for (entry, _) in pending_entries(profile)? {
        let stored = StoredEntry {
            kind: entry.kind.as_str().to_owned(),
            amount: entry.amount.as_decimal(),
            balance_after: entry.balance_after.as_decimal(),
            order: entry.order.map(|o| o.to_string()),
        };
        if let Some(row) = entries.get(&entry.seq) {
            if *row != stored {
                bail!("user {user}: pending and materialised copies of seq {} differ", entry.seq);
            }
        }
        entries.insert(entry.seq, stored);
    }
    Ok(StoredLedger { balance: get_n(profile, "balance")?, entries })
}

/// Invariant 1: balance ≥ 0; entries numbered 1..n without gaps; each entry's
/// balance-after is the previous one plus its signed amount and never negative; the
/// balance equals the sum of the entries.
pub fn check_ledger(user: UserId, ledger: &StoredLedger) -> anyhow::Result<()> {
    if ledger.balance < Decimal::ZERO {
        bail!("user {user}: negative balance {}", ledger.balance);
    }
    let mut running = Decimal::ZERO;
    for (expected, (seq, entry)) in (1u64..).zip(&ledger.entries) {
        if *seq != expected {
            bail!("user {user}: the ledger jumps from seq {} to {seq}", expected - 1);
        }
        if entry.amount <= Decimal::ZERO {
            bail!("user {user}: entry {seq} has amount {}", entry.amount);
        }
        let credit = rushcart::balance::EntryKind::parse(&entry.kind).is_some_and(|kind| kind.is_credit());
        running += if credit { entry.amount } else { -entry.amount };
        if running != entry.balance_after {
            bail!("user {user}: entry {seq} says balance {} but the entries sum to {running}", entry.balance_after);
        }
        if running < Decimal::ZERO {
            bail!("user {user}: entry {seq} takes the balance below zero");
        }
    }
    if running != ledger.balance {
        bail!("user {user}: balance {} but the entries sum to {running}", ledger.balance);
    }
    Ok(())
}

/// Every user the table holds (each `USER#<id>` / `PROFILE`): a scan, for an audit
/// run offline.
pub async fn all_users(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<Vec<UserId>> {
    let mut users = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .limit(SCAN_PAGE)
            .filter_expression("sk = :profile")
            .expression_attribute_values(":profile", s("PROFILE"))
            .projection_expression("pk")
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        for item in page.items() {
            let pk = get_s(item, "pk")?;
            let id =
                pk.strip_prefix("USER#").and_then(|id| id.parse().ok()).ok_or_else(|| anyhow!("a profile at {pk}"))?;
            users.push(UserId::new(id)?);
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            users.sort();
            return Ok(users);
        }
    }
}

/// What [`check_coupon`] found.
#[derive(Debug)]
pub struct CouponAudit {
    pub total: u64,
    pub issued: u64,
    pub copies: u64,
}

/// Invariant 2, from the table, over shards: each counter's issued ≤ its share, the
/// shares add up to the total, and Σ issued over the counters = the users' copies ≤
/// total (one per user follows from the copy's key); no copy was issued at or after
/// the end date; a used copy was used before it expired.
pub async fn check_coupon(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    coupon: rushcart::ids::CouponId,
) -> anyhow::Result<CouponAudit> {
    use rushcart::adapters::dynamodb::coupons::{copy_from_item, coupon_from_item};
    let get = |key: keys::Key| async move {
        client
            .get_item()
            .table_name(table)
            .set_key(Some(key.item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
            .map(|output| output.item)
    };
    let item = get(keys::coupon(coupon)).await?.ok_or_else(|| anyhow!("coupon {coupon} does not exist"))?;
    let mut terms = coupon_from_item(&item)?;
    if terms.shards > 1 {
        let (mut issued, mut shares) = (0, 0);
        for k in 0..terms.shards {
            let shard =
                get(keys::coupon_shard(coupon, k)).await?.ok_or_else(|| anyhow!("coupon {coupon}: no shard {k}"))?;
            let (count, share) = (get_u64(&shard, "issued")?, get_u64(&shard, "total")?);
            if count > share || share != terms.shard_total(k) {
                bail!("coupon {coupon} shard {k}: issued {count} of {share} (its share is {})", terms.shard_total(k));
            }
            // Each shard refuses issues past the end on its own copy of the end.
            if get_s(&shard, "endsAt")? != get_s(&item, "endsAt")? {
                bail!(
                    "coupon {coupon} shard {k}: ends at {} but the coupon at {}",
                    get_s(&shard, "endsAt")?,
                    get_s(&item, "endsAt")?
                );
            }
            (issued, shares) = (issued + count, shares + share);
        }
        if shares != terms.total {
            bail!("coupon {coupon}: the shards' shares add up to {shares}, not {}", terms.total);
        }
        terms.issued = issued;
    }
    let mut copies = 0u64;
    let mut start = None;
    loop {
        // Copies live in their users' partitions: an audit scans (fine offline).
        let page = client
            .scan()
            .table_name(table)
            .limit(SCAN_PAGE)
            .filter_expression("sk = :copy")
            .expression_attribute_values(":copy", s(keys::coupon_copy_sk(coupon)))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        for item in page.items() {
            let copy = copy_from_item(item)?;
            if copy.issued_at >= terms.ends_at {
                bail!("coupon {coupon}: user {} got a copy at {} after the end", copy.user_id, copy.issued_at);
            }
            if copy.used_at.is_some_and(|used| used >= copy.expires_at) {
                bail!("coupon {coupon}: user {} used an expired copy", copy.user_id);
            }
            copies += 1;
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    if terms.issued > terms.total {
        bail!("coupon {coupon}: issued {} of {}", terms.issued, terms.total);
    }
    if copies != terms.issued {
        bail!("coupon {coupon}: issued count {} but {copies} users hold a copy", terms.issued);
    }
    Ok(CouponAudit { total: terms.total, issued: terms.issued, copies })
}

/// What [`check_orders`] found.
#[derive(Debug, Default)]
pub struct OrdersAudit {
    pub orders: usize,
    pub paid: usize,
    pub refunded: usize,
    pub cancelled: usize,
    /// Refused payment attempts, summed over the orders' counts.
    pub failed_payments: u64,
}

/// Invariants 3–5 and 8 (docs/architecture.md), from the table (a full scan: for tests
/// and offline audits): stock ≥ 0 (in every bucket) and initial stock + restocked =
/// stock (Σ buckets) + quantity sold
/// in paid orders − quantity refunded (and the per-day sales add up to the same); a
/// paid or refunded order has exactly one payment record, the one it names, whose
/// amount is its total, marked refunded exactly when the order is; each user's
/// PAYMENT entries name their paid or refunded orders and take exactly their totals,
/// and their REFUND entries name their refunded orders and give exactly those totals
/// back, one each; an unpaid or cancelled order has no payment; a refused payment left
/// nothing but its order's bounded failure record; a used coupon copy belongs to a
/// paid order of its owner that names it, or to a refunded one refunded after the
/// copy expired.
pub async fn check_orders(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<OrdersAudit> {
    use std::collections::HashMap;

    use rushcart::adapters::dynamodb::coupons::copy_from_item;
    use rushcart::adapters::dynamodb::orders::{order_from_item, payment_from_item};
    use rushcart::orders::{OrderStatus, KEPT_FAILURES};

    let mut items: Vec<Item> = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .limit(SCAN_PAGE)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        items.extend(page.items().iter().cloned());
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    let sk = |item: &Item| get_s(item, "sk").unwrap_or_default().to_owned();
    let pk = |item: &Item| get_s(item, "pk").unwrap_or_default().to_owned();
    let orders: Vec<_> = items
        .iter()
        .filter(|i| pk(i).starts_with("ORDER#") && sk(i) == "ORDER")
        .map(order_from_item)
        .collect::<anyhow::Result<_>>()?;
    let payments: Vec<_> = items
        .iter()
        .filter(|i| sk(i).starts_with("PAYMENT#"))
        .map(|i| Ok((payment_from_item(i)?, get_s(i, "status")? == "REFUNDED")))
        .collect::<anyhow::Result<_>>()?;

    let mut audit = OrdersAudit { orders: orders.len(), ..OrdersAudit::default() };
    audit.failed_payments = orders.iter().map(|order| order.failures.count).sum();
    let mut sold: HashMap<u64, u64> = HashMap::new();
    // (sales partition of the day paid, product) → quantity: what each sales row must hold.
    let mut sold_on: HashMap<(String, u64), u64> = HashMap::new();
    // Per user: order id → (total paid, refunded?), for the ledger check.
    let mut paid_by_user: HashMap<UserId, HashMap<String, (Decimal, bool)>> = HashMap::new();
    for order in &orders {
        let succeeded: Vec<_> = payments.iter().filter(|(p, _)| p.order == order.id).collect();
        if order.failures.latest.len() > KEPT_FAILURES || order.failures.latest.len() as u64 > order.failures.count {
            bail!(
                "order {}: {} kept failures of {} counted",
                order.id,
                order.failures.latest.len(),
                order.failures.count
            );
        }
        match order.status {
            OrderStatus::Paid | OrderStatus::Refunded => {
                let refunded = order.status == OrderStatus::Refunded;
                if refunded {
                    audit.refunded += 1;
                } else {
                    audit.paid += 1;
                }
                let [(payment, payment_refunded)] = succeeded.as_slice() else {
                    bail!("paid order {} has {} successful payments", order.id, succeeded.len());
                };
                if Some(payment.id) != order.payment || payment.amount != order.total {
                    bail!("paid order {}: payment {} of {} does not match", order.id, payment.id, payment.amount);
                }
                if *payment_refunded != refunded {
                    bail!(
                        "order {} is {:?} but its payment is marked refunded: {payment_refunded}",
                        order.id,
                        order.status
                    );
                }
                if refunded && order.cancelled_at.zip(order.paid_at).is_none_or(|(refund, paid)| refund < paid) {
                    bail!("order {} was refunded at {:?}, not after it was paid", order.id, order.cancelled_at);
                }
                if order.paid_at.is_none_or(|at| at >= order.pay_by) {
                    bail!(
                        "order {} was paid at {:?}, not before its deadline {}",
                        order.id,
                        order.paid_at,
                        order.pay_by
                    );
                }
                if order.total != order.subtotal.saturating_sub(order.discount) {
                    bail!("order {}: total {} is not subtotal − discount", order.id, order.total);
                }
                if !refunded {
                    let day = order.paid_at.map(|at| at.date()).unwrap_or(time::Date::MIN);
                    for line in &order.lines {
                        let quantity = u64::from(line.quantity.get());
                        *sold.entry(line.product_id.get()).or_default() += quantity;
                        let row = keys::sales(day, line.product_id, order.sales_sharded.then_some(order.id));
                        *sold_on.entry((row.pk, line.product_id.get())).or_default() += quantity;
                    }
                }
                paid_by_user
                    .entry(order.user)
                    .or_default()
                    .insert(order.id.to_string(), (order.total.as_decimal(), refunded));
            }
            // Expiry is decided when read, never stored.
            OrderStatus::PendingPayment | OrderStatus::Expired | OrderStatus::Cancelled => {
                if order.status == OrderStatus::Cancelled {
                    audit.cancelled += 1;
                }
                if !succeeded.is_empty() {
                    bail!("unpaid order {} has a successful payment", order.id);
                }
            }
        }
    }
    for product in items.iter().filter(|i| pk(i).starts_with("PRODUCT#") && sk(i) == "PRODUCT") {
        let id = get_u64(product, "productId")?;
        let initial = get_u64(product, "initialStock")?;
        // One bucket: the stock is on the product's item; more: the buckets' sum,
        // every bucket there (none ever goes below zero: its stock is unsigned).
        let buckets = if product.contains_key("buckets") { get_u64(product, "buckets")? } else { 1 };
        let stock = if buckets == 1 {
            get_u64(product, "stock")?
        } else {
            let prefix = format!("PRODUCT#{id}#");
            let held: Vec<&Item> = items.iter().filter(|i| pk(i).starts_with(&prefix) && sk(i) == "STOCK").collect();
            if held.len() as u64 != buckets || product.contains_key("stock") {
                bail!(
                    "product {id}: {} of its {buckets} buckets, and stock on its item too: {}",
                    held.len(),
                    product.contains_key("stock")
                );
            }
            held.iter().map(|bucket| get_u64(bucket, "stock")).sum::<anyhow::Result<u64>>()?
        };
        let restocked = if product.contains_key("restocked") { get_u64(product, "restocked")? } else { 0 };
        let sold_here = sold.get(&id).copied().unwrap_or(0);
        if stock + sold_here != initial + restocked {
            bail!("product {id}: stock {stock} + sold {sold_here} ≠ initial {initial} + restocked {restocked}");
        }
        let counted: u64 = items
            .iter()
            .filter(|i| pk(i).starts_with("SALES#") && get_u64(i, "productId").ok() == Some(id))
            .map(|i| get_u64(i, "quantity"))
            .sum::<anyhow::Result<u64>>()?;
        if counted != sold_here {
            bail!("product {id}: per-day sales add up to {counted}, paid orders to {sold_here}");
        }
    }
    // Each row holds exactly what the orders counted on it sold that day and did not
    // refund since (a refund takes its quantities off the day and shard they were
    // counted on, not the day refunded).
    for row in items.iter().filter(|i| pk(i).starts_with("SALES#")) {
        let partition = pk(row).to_owned();
        let product = get_u64(row, "productId")?;
        let expected = sold_on.remove(&(partition.clone(), product)).unwrap_or(0);
        let counted = get_u64(row, "quantity")?;
        if counted != expected {
            bail!("product {product} in {partition}: sales row says {counted}, its paid orders {expected}");
        }
    }
    if let Some(((partition, product), quantity)) = sold_on.into_iter().next() {
        bail!("product {product} in {partition}: {quantity} sold in paid orders but no sales row");
    }
    for copy in items.iter().filter(|i| pk(i).starts_with("USER#") && sk(i).starts_with("COUPON#")) {
        let used = copy_from_item(copy)?;
        let used_by = copy.get("orderId").map(|_| get_s(copy, "orderId")).transpose()?;
        // A refund gives an unexpired coupon back: a refunded order's copy is no longer
        // used by it, unless the copy had expired when the order was refunded.
        for refunded in orders
            .iter()
            .filter(|o| o.status == OrderStatus::Refunded && o.user == used.user_id && o.coupon == Some(used.coupon_id))
        {
            let expired_then = refunded.cancelled_at.is_some_and(|at| at >= used.expires_at);
            let still_used = used_by == Some(refunded.id.to_string().as_str());
            if still_used != expired_then {
                bail!(
                    "coupon {} of user {}: refunded order {} (expired then: {expired_then}) still uses it: {still_used}",
                    used.coupon_id,
                    used.user_id,
                    refunded.id
                );
            }
        }
        if used.used_at.is_none() {
            continue;
        }
        let order_id = get_s(copy, "orderId")?;
        let owner_paid = orders.iter().any(|o| {
            o.id.to_string() == order_id
                && o.user == used.user_id
                && o.coupon == Some(used.coupon_id)
                && (o.status == OrderStatus::Paid
                    || (o.status == OrderStatus::Refunded && o.cancelled_at.is_some_and(|at| at >= used.expires_at)))
        });
        if !owner_paid {
            bail!(
                "coupon {} of user {} is used by {order_id}, not a paid order of theirs",
                used.coupon_id,
                used.user_id
            );
        }
    }
    // Every user's ledger, those without a paid order too: none may hold a PAYMENT or
    // REFUND entry then.
    for profile in items.iter().filter(|i| pk(i).starts_with("USER#") && sk(i) == "PROFILE") {
        let id = pk(profile).trim_start_matches("USER#").parse::<u64>().map_err(|e| anyhow!("{}: {e}", pk(profile)))?;
        let user = UserId::new(id).map_err(|e| anyhow!("user {id}: {e}"))?;
        paid_by_user.entry(user).or_default();
    }
    for (user, paid) in paid_by_user {
        let ledger = read_ledger(client, table, user).await?;
        check_ledger(user, &ledger)?;
        for (kind, wanted) in [("PAYMENT", false), ("REFUND", true)] {
            // Order → the amounts its entries of this kind moved.
            let mut moved: HashMap<&str, Vec<Decimal>> = HashMap::new();
            for entry in ledger.entries.values().filter(|e| e.kind == kind) {
                let order =
                    entry.order.as_deref().ok_or_else(|| anyhow!("user {user}: a {kind} entry names no order"))?;
                moved.entry(order).or_default().push(entry.amount);
            }
            for (order, (total, refunded)) in &paid {
                let owed = match (wanted, *total > Decimal::ZERO) {
                    (false, true) => vec![*total],
                    (true, true) if *refunded => vec![*total],
                    _ => vec![],
                };
                let found = moved.remove(order.as_str()).unwrap_or_default();
                if found != owed {
                    bail!("user {user}: order {order} ({total}, refunded: {refunded}) has {kind} entries {found:?}");
                }
            }
            if let Some((order, _)) = moved.into_iter().next() {
                bail!("user {user}: a {kind} entry names {order}, which is not a paid order of theirs");
            }
        }
    }
    Ok(audit)
}
