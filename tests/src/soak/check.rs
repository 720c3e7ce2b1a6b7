//! The soak's checker: reads the history and what the tables hold afterwards, and says
//! what broke. Each check returns its violations, each naming the calls involved; none
//! trusts the server's word over the tables.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rushcart_testkit::audit::StoredLedger;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use super::history::{requests, Call, Known, Op};
use super::nemesis::Planned;

/// Something the soak's history or tables show that must never happen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub check: &'static str,
    pub message: String,
    /// The history's calls involved (ids).
    pub calls: Vec<u64>,
}

fn violation(check: &'static str, message: String, calls: impl IntoIterator<Item = u64>) -> Violation {
    Violation { check, message, calls: calls.into_iter().collect() }
}

/// Every answer is one its route may give under faults, in JSON: a success, a business
/// refusal (409), a throttle (429) or a 503 that says when to retry, API Gateway's own
/// 504, or no answer at all. Anything else — a 500, a 401 (the issuer's key lost in a
/// restart), a 400 or 404 to a well-formed request of the client's own, a body that is
/// not JSON — is a violation.
pub fn answers(calls: &[Call]) -> Vec<Violation> {
    calls
        .iter()
        .filter(|call| {
            let allowed = match call.status {
                0 | 200..=299 | 409 | 504 => true,
                429 | 503 => call.retry_after,
                _ => false,
            };
            !allowed || (call.status != 0 && call.answer.get("notJson").is_some())
        })
        .map(|call| {
            violation(
                "answers",
                format!(
                    "{} {} answered {} {} ({} ms)",
                    call.method,
                    call.path,
                    call.status,
                    call.answer,
                    call.end_ms - call.start_ms
                ),
                [call.id],
            )
        })
        .collect()
}

/// The kind of ledger entry a balance call makes.
fn entry_kind(op: Op) -> Option<&'static str> {
    match op {
        Op::Charge => Some("CHARGE"),
        Op::Use => Some("USE"),
        _ => None,
    }
}

/// A charge's or use's amount as the client sent it.
fn amount_of(call: &Call) -> Option<Decimal> {
    call.body.as_ref()?["amount"].as_str()?.parse().ok()
}

/// Balance linearizability, for users whose ledgers only the soak's charges and uses
/// write (after `opening` entries the seed made). Each charge or use carries an amount no
/// other request carries, so its entry can be found:
///
/// - an acknowledged change has exactly one entry, the one its answer named (`seq`), and
///   the balance it reported is that entry's balance after;
/// - a refused one has none; one never answered (or answered 5xx) at most one;
/// - no entry is one no request asked for;
/// - the ledger's order agrees with real time: a change acknowledged before another
///   began has the smaller `seq`.
pub fn balances(calls: &[Call], ledgers: &BTreeMap<u64, StoredLedger>, opening: u64) -> Vec<Violation> {
    const CHECK: &str = "balance linearizability";
    let mut violations = Vec::new();
    let all = requests(calls);
    for (user, ledger) in ledgers {
        let mut rows: HashMap<(&str, Decimal), Vec<u64>> = HashMap::new();
        for (seq, entry) in ledger.entries.range(opening + 1..) {
            rows.entry((entry.kind.as_str(), entry.amount)).or_default().push(*seq);
        }
        // (start, end if acknowledged, seq, first call) of every change that made an entry.
        let mut placed: Vec<(u64, Option<u64>, u64, u64)> = Vec::new();
        for request in all.iter().filter(|r| r.first().user == Some(*user)) {
            let first = request.first();
            let (Some(kind), Some(amount)) = (entry_kind(first.op), amount_of(first)) else { continue };
            let found = rows.remove(&(kind, amount)).unwrap_or_default();
            let ids = request.tries.iter().map(|c| c.id);
            match request.known() {
                Known::Done(done) => {
                    let [seq] = found[..] else {
                        violations.push(violation(
                            CHECK,
                            format!("user {user}: {kind} {amount} was acknowledged and has {} entries", found.len()),
                            ids,
                        ));
                        continue;
                    };
                    let answered_seq = done.answer["entry"]["seq"].as_u64();
                    let answered_balance = done.answer["balance"].as_str().and_then(|b| b.parse::<Decimal>().ok());
                    let entry = &ledger.entries[&seq];
                    if answered_seq != Some(seq) || answered_balance != Some(entry.balance_after) {
                        violations.push(violation(
                            CHECK,
                            format!(
                                "user {user}: {kind} {amount} answered seq {answered_seq:?} and balance {answered_balance:?}; the ledger has seq {seq} with balance {}",
                                entry.balance_after
                            ),
                            [done.id],
                        ));
                    }
                    placed.push((first.start_ms, Some(done.end_ms), seq, first.id));
                }
                Known::Refused(refused) if !found.is_empty() => violations.push(violation(
                    CHECK,
                    format!(
                        "user {user}: {kind} {amount} was refused ({}) and has {} entries",
                        refused.code(),
                        found.len()
                    ),
                    ids,
                )),
                Known::Refused(_) => {}
                Known::Unknown if found.len() > 1 => violations.push(violation(
                    CHECK,
                    format!("user {user}: {kind} {amount} was never answered and has {} entries", found.len()),
                    ids,
                )),
                Known::Unknown => placed.extend(found.first().map(|seq| (first.start_ms, None, *seq, first.id))),
            }
        }
        for ((kind, amount), seqs) in rows {
            violations.push(violation(
                CHECK,
                format!("user {user}: entries {seqs:?} ({kind} {amount}) no request asked for"),
                [],
            ));
        }
        violations.extend(real_time_order(*user, &placed));
    }
    violations
}

/// A change acknowledged before another began must have the smaller seq. `placed`:
/// (start, end if acknowledged, seq, call) of each change with an entry.
fn real_time_order(user: u64, placed: &[(u64, Option<u64>, u64, u64)]) -> Vec<Violation> {
    let mut by_end: Vec<(u64, u64, u64)> =
        placed.iter().filter_map(|(_, end, seq, call)| end.map(|end| (end, *seq, *call))).collect();
    by_end.sort_unstable();
    let mut by_start: Vec<&(u64, Option<u64>, u64, u64)> = placed.iter().collect();
    by_start.sort_unstable_by_key(|p| p.0);
    let mut violations = Vec::new();
    let mut latest: Option<(u64, u64)> = None; // (seq, call) of the highest seq acknowledged so far
    let mut next = 0;
    for (start, _, seq, call) in by_start {
        while next < by_end.len() && by_end[next].0 < *start {
            let (_, done_seq, done_call) = by_end[next];
            if latest.is_none_or(|(s, _)| done_seq > s) {
                latest = Some((done_seq, done_call));
            }
            next += 1;
        }
        if let Some((earlier_seq, earlier_call)) = latest.filter(|(s, _)| s > seq) {
            violations.push(violation(
                "balance linearizability",
                format!(
                    "user {user}: entry {seq} began after entry {earlier_seq} was acknowledged, yet comes before it in the ledger"
                ),
                [earlier_call, *call],
            ));
        }
    }
    violations
}

/// A keyed request's answers: every success for one key is the same answer, byte for
/// byte in JSON (a replay answers exactly what the first request's own effect answered,
/// never a read of the state in between); a key is never "reused" by the client that
/// made it.
pub fn replays(calls: &[Call]) -> Vec<Violation> {
    let mut by_key: BTreeMap<(Option<u64>, &str, &str), Vec<&Call>> = BTreeMap::new();
    for call in calls {
        if let Some(key) = &call.key {
            by_key.entry((call.user, call.path.as_str(), key.as_str())).or_default().push(call);
        }
    }
    let mut violations = Vec::new();
    for ((user, path, key), tries) in by_key {
        let succeeded: Vec<&&Call> = tries.iter().filter(|c| c.succeeded()).collect();
        if let Some(first) = succeeded.first() {
            for other in &succeeded[1..] {
                if other.status != first.status || other.answer != first.answer {
                    violations.push(violation(
                        "exactly once",
                        format!(
                            "user {user:?} key {key} on {path}: answered {} {} and then {} {}",
                            first.status, first.answer, other.status, other.answer
                        ),
                        [first.id, other.id],
                    ));
                }
            }
        }
        for reused in tries.iter().filter(|c| c.code() == "IDEMPOTENCY_KEY_REUSED") {
            violations.push(violation(
                "exactly once",
                format!("user {user:?} key {key} on {path}: IDEMPOTENCY_KEY_REUSED to the same request"),
                [reused.id],
            ));
        }
    }
    violations
}

/// Orders against the table's statuses (order id → status): an acknowledged order
/// exists; an acknowledged payment left the order PAID (or REFUNDED, by a cancel);
/// a cancel's acknowledged status is the order's; an order no payment could have paid
/// (every payment of it refused) is not paid.
pub fn orders(calls: &[Call], statuses: &BTreeMap<String, String>) -> Vec<Violation> {
    const CHECK: &str = "orders";
    let mut violations = Vec::new();
    // order → whether some payment of it succeeded or may have.
    let mut payable: BTreeMap<&str, bool> = BTreeMap::new();
    for request in requests(calls) {
        let first = request.first();
        let ids = || request.tries.iter().map(|c| c.id).collect::<Vec<_>>();
        match (first.op, request.known()) {
            (Op::CreateOrder, Known::Done(done)) => {
                let order = done.answer["orderId"].as_str().unwrap_or_default();
                if !statuses.contains_key(order) {
                    violations.push(violation(
                        CHECK,
                        format!("order {order:?} was acknowledged and is not stored"),
                        ids(),
                    ));
                }
            }
            (Op::Pay, known) => {
                let Some(order) = first.body.as_ref().and_then(|b| b["orderId"].as_str()) else { continue };
                let status = statuses.get(order).map(String::as_str);
                let paid_now = matches!(status, Some("PAID" | "REFUNDED"));
                let may = !matches!(known, Known::Refused(_));
                *payable.entry(order).or_default() |= may;
                if let Known::Done(done) = known {
                    if !paid_now {
                        violations.push(violation(
                            CHECK,
                            format!(
                                "order {order}: payment acknowledged ({}), order {status:?}",
                                done.answer["status"]
                            ),
                            ids(),
                        ));
                    }
                }
            }
            (Op::Cancel, Known::Done(done)) => {
                let order = done.answer["orderId"].as_str().unwrap_or_default();
                let answered = done.answer["status"].as_str();
                let stored = statuses.get(order).map(String::as_str);
                if answered != stored {
                    violations.push(violation(
                        CHECK,
                        format!("order {order}: the cancel answered {answered:?}, the order is {stored:?}"),
                        ids(),
                    ));
                }
            }
            _ => {}
        }
    }
    for (order, status) in statuses {
        if matches!(status.as_str(), "PAID" | "REFUNDED") && payable.get(order.as_str()) == Some(&false) {
            violations.push(violation(
                CHECK,
                format!("order {order} is {status}, yet every payment of it was refused"),
                [],
            ));
        }
    }
    violations
}

/// Exactly once for orders and restocks, from the table:
///
/// - each user has no more orders than their order requests that were acknowledged or
///   never answered (a keyed order retried after a 5xx is placed once), and no two
///   acknowledged requests name the same order;
/// - each product's `restocked` is at least what the acknowledged restocks added and at
///   most that plus what the unanswered ones asked for (a keyed restock retried after a
///   5xx adds once).
///
/// `owners`: order → its user; `restocked`: product → its `restocked`.
pub fn exactly_once(calls: &[Call], owners: &BTreeMap<String, u64>, restocked: &BTreeMap<u64, u64>) -> Vec<Violation> {
    const CHECK: &str = "exactly once";
    let mut violations = Vec::new();
    let mut may_place: BTreeMap<u64, (u64, Vec<u64>)> = BTreeMap::new();
    let mut named: BTreeMap<&str, u64> = BTreeMap::new();
    // product → (acknowledged, acknowledged + unknown)
    let mut added: BTreeMap<u64, (u64, u64, Vec<u64>)> = BTreeMap::new();
    for request in requests(calls) {
        let first = request.first();
        let known = request.known();
        match first.op {
            Op::CreateOrder => {
                let Some(user) = first.user else { continue };
                let entry = may_place.entry(user).or_default();
                if !matches!(known, Known::Refused(_)) {
                    entry.0 += 1;
                    entry.1.push(first.id);
                }
                if let Known::Done(done) = known {
                    let order = done.answer["orderId"].as_str().unwrap_or_default();
                    if let Some(other) = named.insert(order, done.id) {
                        violations.push(violation(
                            CHECK,
                            format!("two order requests were answered with order {order}"),
                            [other, done.id],
                        ));
                    }
                }
            }
            Op::Restock => {
                let product = first.path.split('/').nth(5).and_then(|p| p.parse::<u64>().ok());
                let add = first.body.as_ref().and_then(|b| b["add"].as_u64()).unwrap_or(0);
                let Some(product) = product else { continue };
                let entry = added.entry(product).or_default();
                match known {
                    Known::Done(_) => {
                        entry.0 += add;
                        entry.1 += add;
                    }
                    Known::Unknown => entry.1 += add,
                    Known::Refused(_) => {}
                }
                entry.2.push(first.id);
            }
            _ => {}
        }
    }
    let mut stored: BTreeMap<u64, u64> = BTreeMap::new();
    for user in owners.values() {
        *stored.entry(*user).or_default() += 1;
    }
    for (user, count) in stored {
        let (asked, ids) = may_place.get(&user).cloned().unwrap_or_default();
        if count > asked {
            violations.push(violation(
                CHECK,
                format!("user {user} has {count} orders from {asked} order requests"),
                ids,
            ));
        }
    }
    for (product, total) in restocked {
        let (done, at_most, ids) = added.get(product).cloned().unwrap_or_default();
        if *total < done || *total > at_most {
            violations.push(violation(
                CHECK,
                format!("product {product}: restocked {total}, acknowledged restocks add {done}, with the unanswered at most {at_most}"),
                ids,
            ));
        }
    }
    violations
}

/// Invariant 7 after the load: the top 5 answered once a refresh had run after the last
/// sale is the true top 5 by quantity sold in paid orders (refunds take theirs back),
/// ties by product id. `sold`: product → quantity.
pub fn top_five(answer: &Value, sold: &BTreeMap<u64, u64>) -> Vec<Violation> {
    let mut truth: Vec<(u64, u64)> = sold.iter().filter(|(_, q)| **q > 0).map(|(p, q)| (*p, *q)).collect();
    truth.sort_by_key(|(product, quantity)| (std::cmp::Reverse(*quantity), *product));
    truth.truncate(5);
    let answered: Vec<(u64, u64)> = answer["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| (item["productId"].as_u64().unwrap_or(0), item["soldQuantity"].as_u64().unwrap_or(0)))
        .collect();
    if answered == truth {
        return Vec::new();
    }
    vec![violation("top 5", format!("answered {answered:?}; the orders say {truth:?}"), [])]
}

/// What the table holds of one coupon.
#[derive(Debug, Clone, Default)]
pub struct CouponHeld {
    pub total: u64,
    pub issued: u64,
    /// The copies the table holds, whoever holds them.
    pub copies: u64,
    /// The users found holding a copy.
    pub holders: BTreeSet<u64>,
}

/// The coupon in a call's path (`/api/v1/coupons/{id}`).
fn coupon_of(call: &Call) -> Option<u64> {
    call.path.strip_prefix("/api/v1/coupons/")?.split(['?', '/']).next()?.parse().ok()
}

/// Coupons: issued ≤ total and = the copies; every user told "issued" (or, after a try
/// of theirs went unanswered, "already issued") holds a copy, and so does every user told
/// "already issued"; every holder asked; every "sold out" came after the last copy went
/// — by the time it was answered, `total` holders had begun asking.
pub fn coupons(calls: &[Call], held: &BTreeMap<u64, CouponHeld>) -> Vec<Violation> {
    const CHECK: &str = "coupons";
    let mut violations = Vec::new();
    // (coupon, user) → when the user's first request for it began.
    let mut asked: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for request in requests(calls).iter().filter(|r| r.first().op == Op::IssueCoupon) {
        let first = request.first();
        let (Some(coupon), Some(user)) = (coupon_of(first), first.user) else { continue };
        let since = asked.entry((coupon, user)).or_insert(first.start_ms);
        *since = (*since).min(first.start_ms);
        let holds = held.get(&coupon).is_some_and(|c| c.holders.contains(&user));
        let told_held = matches!(request.known(), Known::Done(_))
            || request.tries.last().is_some_and(|c| c.code() == "COUPON_ALREADY_ISSUED");
        if told_held && !holds {
            violations.push(violation(
                CHECK,
                format!("coupon {coupon}: user {user} was told it holds a copy and holds none"),
                request.tries.iter().map(|c| c.id),
            ));
        }
    }
    for (coupon, state) in held {
        if state.issued > state.total || state.issued != state.copies {
            violations.push(violation(
                CHECK,
                format!("coupon {coupon}: issued {} of {}, {} copies held", state.issued, state.total, state.copies),
                [],
            ));
        }
        if state.copies > state.holders.len() as u64 {
            violations.push(violation(
                CHECK,
                format!(
                    "coupon {coupon}: {} copies held by users who never asked for one",
                    state.copies - state.holders.len() as u64
                ),
                [],
            ));
        }
        let mut began: Vec<u64> = Vec::new();
        for user in &state.holders {
            match asked.get(&(*coupon, *user)) {
                Some(start) => began.push(*start),
                None => violations.push(violation(
                    CHECK,
                    format!("coupon {coupon}: user {user} holds a copy and never asked"),
                    [],
                )),
            }
        }
        began.sort_unstable();
        for sold_out in calls.iter().filter(|c| coupon_of(c) == Some(*coupon) && c.code() == "COUPON_SOLD_OUT") {
            let could_have_gone = began.partition_point(|start| *start < sold_out.end_ms) as u64;
            if could_have_gone < state.total {
                violations.push(violation(
                    CHECK,
                    format!(
                        "coupon {coupon}: sold out at {} ms, when at most {could_have_gone} of {} copies could have been issued",
                        sold_out.end_ms, state.total
                    ),
                    [sold_out.id],
                ));
            }
        }
    }
    violations
}

/// What reached the data platform: accepted deliveries by event id (`<order>:<TYPE>`),
/// and the events Kinesis holds, in its order.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    pub accepted: BTreeMap<String, u32>,
    pub kinesis: Vec<String>,
}

/// The feed: every paid order's ORDER_PAID and every refunded order's ORDER_REFUNDED
/// reached the platform (at least once; it counts each event id once); nothing reached
/// it for an order that was not paid; on Kinesis an order's payment comes before its
/// refund.
pub fn feed(statuses: &BTreeMap<String, String>, delivered: &Delivered) -> Vec<Violation> {
    const CHECK: &str = "feed";
    let mut violations = Vec::new();
    for (order, status) in statuses {
        let mut expected = Vec::new();
        if matches!(status.as_str(), "PAID" | "REFUNDED") {
            expected.push("ORDER_PAID");
        }
        if status == "REFUNDED" {
            expected.push("ORDER_REFUNDED");
        }
        for kind in expected {
            if !delivered.accepted.contains_key(&format!("{order}:{kind}")) {
                violations.push(violation(
                    CHECK,
                    format!("order {order} is {status}; its {kind} never reached the platform"),
                    [],
                ));
            }
        }
    }
    for event in delivered.accepted.keys() {
        let (order, kind) = event.split_once(':').unwrap_or((event, ""));
        let fits = matches!(
            (kind, statuses.get(order).map(String::as_str)),
            ("ORDER_PAID", Some("PAID" | "REFUNDED")) | ("ORDER_REFUNDED", Some("REFUNDED"))
        );
        if !fits {
            violations.push(violation(
                CHECK,
                format!("{event} reached the platform; the order is {:?}", statuses.get(order)),
                [],
            ));
        }
    }
    let mut first_at: HashMap<&str, usize> = HashMap::new();
    for (at, event) in delivered.kinesis.iter().enumerate() {
        first_at.entry(event.as_str()).or_insert(at);
    }
    for (order, status) in statuses.iter().filter(|(_, s)| s.as_str() == "REFUNDED") {
        let paid = first_at.get(format!("{order}:ORDER_PAID").as_str());
        let refunded = first_at.get(format!("{order}:ORDER_REFUNDED").as_str());
        match (paid, refunded) {
            (Some(p), Some(r)) if p < r => {}
            _ => violations.push(violation(
                CHECK,
                format!("order {order} ({status}): on Kinesis its payment is at {paid:?}, its refund at {refunded:?}"),
                [],
            )),
        }
    }
    violations
}

/// Sign-ups through the trigger's handler: every subject confirmed (the handler
/// answered) has a shop user, with a profile; no two subjects share one.
/// `registered`: subject → its user, if any; `profiles`: users with a profile.
pub fn sign_ups(calls: &[Call], registered: &BTreeMap<String, u64>, profiles: &BTreeSet<u64>) -> Vec<Violation> {
    const CHECK: &str = "sign-ups";
    let mut violations = Vec::new();
    for request in requests(calls).iter().filter(|r| r.first().op == Op::SignUp) {
        let subject = request.first().body.as_ref().and_then(|b| b["sub"].as_str()).unwrap_or_default();
        let ids = request.tries.iter().map(|c| c.id);
        match (request.known(), registered.get(subject)) {
            (Known::Done(_), None) => {
                violations.push(violation(CHECK, format!("{subject} was confirmed and has no shop user"), ids))
            }
            (_, Some(user)) if !profiles.contains(user) => {
                violations.push(violation(CHECK, format!("{subject} is user {user}, who has no profile"), ids))
            }
            _ => {}
        }
    }
    let mut owners: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for (subject, user) in registered {
        owners.entry(*user).or_default().push(subject);
    }
    for (user, subjects) in owners.into_iter().filter(|(_, s)| s.len() > 1) {
        violations.push(violation(CHECK, format!("user {user} was given to {subjects:?}"), []));
    }
    violations
}

/// The load did its work: every operation of the mix succeeded at least once, and more
/// payments went through than were refused (a soak whose checkouts all run out of
/// balance or stock checks little of what matters).
pub fn mix(calls: &[Call]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for op in Op::ALL {
        if !calls.iter().any(|c| c.op == op && c.succeeded()) {
            violations.push(violation("mix", format!("no {} succeeded", op.name()), []));
        }
    }
    let paid = calls.iter().filter(|c| c.op == Op::Pay && c.succeeded()).count();
    let refused = calls.iter().filter(|c| c.op == Op::Pay && c.status == 409).count();
    if paid <= refused {
        violations.push(violation("mix", format!("{paid} payments went through, {refused} were refused"), []));
    }
    violations
}

/// How a fault showed in the history: the calls made while it lasted (and 2 s after)
/// that got no answer, a 5xx, or took longer than a second.
pub fn felt(fault: &Planned, calls: &[Call]) -> Vec<u64> {
    let (from, to) = (fault.at_ms, fault.at_ms + fault.length_ms + 2_000);
    calls
        .iter()
        .filter(|c| c.start_ms < to && c.end_ms > from)
        .filter(|c| c.uncertain() || c.end_ms - c.start_ms > 1_000)
        .map(|c| c.id)
        .collect()
}

/// How a fault on the feed's path showed: the payments acknowledged while it lasted
/// whose ORDER_PAID reached the platform only after it ended (`first_seen`: event id →
/// when the platform first had it, in the history's milliseconds).
pub fn held_back(fault: &Planned, calls: &[Call], first_seen: &HashMap<String, u64>) -> Vec<u64> {
    let end = fault.at_ms + fault.length_ms;
    calls
        .iter()
        .filter(|c| c.op == Op::Pay && c.succeeded() && c.end_ms >= fault.at_ms && c.end_ms < end)
        .filter(|c| {
            let order = c.body.as_ref().and_then(|b| b["orderId"].as_str()).unwrap_or_default();
            first_seen.get(&format!("{order}:ORDER_PAID")).is_none_or(|at| *at > end)
        })
        .map(|c| c.id)
        .collect()
}

/// A call's JSON answer as the history keeps it, for tests and the runner.
pub fn no_answer(error: &str) -> Value {
    serde_json::json!({ "error": error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::nemesis::Fault;
    use rushcart_testkit::audit::StoredEntry;
    use serde_json::json;

    /// A history written by hand: each call its own request unless `request` says.
    struct Story {
        calls: Vec<Call>,
    }

    impl Story {
        fn new() -> Story {
            Story { calls: Vec::new() }
        }

        #[allow(clippy::too_many_arguments)]
        fn call(
            &mut self,
            request: u64,
            op: Op,
            user: u64,
            path: &str,
            body: Option<Value>,
            (start_ms, end_ms): (u64, u64),
            status: u16,
            answer: Value,
        ) -> &mut Call {
            let id = self.calls.len() as u64;
            let attempt = self.calls.iter().filter(|c| c.request == request).count() as u32 + 1;
            self.calls.push(Call {
                id,
                request,
                attempt,
                op,
                user: Some(user),
                key: None,
                method: "POST".into(),
                path: path.into(),
                body,
                start_ms,
                end_ms,
                status,
                retry_after: status == 503,
                answer,
            });
            self.calls.last_mut().unwrap()
        }

        fn charge(&mut self, request: u64, amount: &str, at: (u64, u64), status: u16, seq: u64, balance: &str) {
            let answer = if status == 200 {
                json!({"userId": 1, "balance": balance, "entry": {"seq": seq}})
            } else {
                json!({"code": "SERVICE_UNAVAILABLE"})
            };
            self.call(
                request,
                Op::Charge,
                1,
                "/api/v1/users/1/balance/charge",
                Some(json!({"amount": amount})),
                at,
                status,
                answer,
            );
        }
    }

    fn ledger(entries: &[(u64, &str, &str, &str)]) -> BTreeMap<u64, StoredLedger> {
        let entries: BTreeMap<u64, StoredEntry> = entries
            .iter()
            .map(|(seq, kind, amount, after)| {
                let entry = StoredEntry {
                    kind: (*kind).into(),
                    amount: amount.parse().unwrap(),
                    balance_after: after.parse().unwrap(),
                    order: None,
                };
                (*seq, entry)
            })
            .collect();
        let balance = entries.values().last().map_or(Decimal::ZERO, |e| e.balance_after);
        [(1, StoredLedger { balance, entries })].into_iter().collect()
    }

    #[test]
    fn a_history_that_agrees_with_the_ledger_passes() {
        let mut story = Story::new();
        story.charge(1, "1.00", (0, 10), 200, 2, "51.00");
        story.charge(2, "1.01", (20, 30), 200, 3, "52.01");
        // Unanswered, and it landed: at most one entry is fine.
        story.charge(3, "1.02", (25, 40), 0, 0, "");
        let ledger = ledger(&[
            (1, "CHARGE", "50.00", "50.00"),
            (2, "CHARGE", "1.00", "51.00"),
            (3, "CHARGE", "1.01", "52.01"),
            (4, "CHARGE", "1.02", "53.03"),
        ]);
        assert_eq!(balances(&story.calls, &ledger, 1), vec![]);
    }

    #[test]
    fn an_acknowledged_change_without_its_entry_is_caught() {
        let mut story = Story::new();
        story.charge(1, "1.00", (0, 10), 200, 2, "51.00");
        let ledger = ledger(&[(1, "CHARGE", "50.00", "50.00")]);
        let found = balances(&story.calls, &ledger, 1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("has 0 entries"), "{found:?}");
    }

    #[test]
    fn a_retried_change_applied_twice_is_caught() {
        let mut story = Story::new();
        story.charge(1, "1.00", (0, 10), 503, 0, "");
        story.charge(1, "1.00", (20, 30), 200, 3, "52.00");
        let ledger =
            ledger(&[(1, "CHARGE", "50.00", "50.00"), (2, "CHARGE", "1.00", "51.00"), (3, "CHARGE", "1.00", "52.00")]);
        let found = balances(&story.calls, &ledger, 1);
        assert!(found.iter().any(|v| v.message.contains("has 2 entries")), "{found:?}");
    }

    #[test]
    fn a_reported_balance_that_is_not_the_entrys_is_caught() {
        let mut story = Story::new();
        story.charge(1, "1.00", (0, 10), 200, 2, "60.00");
        let ledger = ledger(&[(1, "CHARGE", "50.00", "50.00"), (2, "CHARGE", "1.00", "51.00")]);
        let found = balances(&story.calls, &ledger, 1);
        assert!(found.iter().any(|v| v.message.contains("answered seq Some(2) and balance Some(60.00)")), "{found:?}");
    }

    #[test]
    fn a_ledger_order_against_real_time_is_caught() {
        let mut story = Story::new();
        // Acknowledged at 10 ms; the second began at 20 ms, yet its entry comes first.
        story.charge(1, "1.00", (0, 10), 200, 3, "52.01");
        story.charge(2, "1.01", (20, 30), 200, 2, "51.01");
        let ledger =
            ledger(&[(1, "CHARGE", "50.00", "50.00"), (2, "CHARGE", "1.01", "51.01"), (3, "CHARGE", "1.00", "52.01")]);
        let found = balances(&story.calls, &ledger, 1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("began after entry 3"), "{found:?}");
        assert_eq!(found[0].calls, vec![0, 1]);
        // Overlapping in time, either order is right.
        let mut story = Story::new();
        story.charge(1, "1.00", (0, 25), 200, 3, "52.01");
        story.charge(2, "1.01", (20, 30), 200, 2, "51.01");
        assert_eq!(balances(&story.calls, &ledger, 1), vec![]);
    }

    #[test]
    fn an_entry_no_request_asked_for_is_caught() {
        let story = Story::new();
        let ledger = ledger(&[(1, "CHARGE", "50.00", "50.00"), (2, "USE", "7.00", "43.00")]);
        let found = balances(&story.calls, &ledger, 1);
        assert!(found[0].message.contains("no request asked for"), "{found:?}");
    }

    #[test]
    fn a_replay_that_answers_another_state_is_caught() {
        let mut story = Story::new();
        let path = "/api/v1/orders/o1/cancel";
        story.call(1, Op::Cancel, 1, path, None, (0, 10), 200, json!({"orderId": "o1", "status": "REFUNDED"})).key =
            Some("k".into());
        story.call(2, Op::Cancel, 1, path, None, (5, 12), 200, json!({"orderId": "o1", "status": "PAID"})).key =
            Some("k".into());
        let found = replays(&story.calls);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].calls, vec![0, 1]);
    }

    #[test]
    fn orders_whose_answers_the_table_contradicts_are_caught() {
        let mut story = Story::new();
        story.call(1, Op::CreateOrder, 1, "/api/v1/orders", None, (0, 10), 201, json!({"orderId": "o1"}));
        story.call(
            2,
            Op::Pay,
            1,
            "/api/v1/payment",
            Some(json!({"orderId": "o1"})),
            (10, 20),
            200,
            json!({"status": "PAID"}),
        );
        story.call(
            3,
            Op::Pay,
            1,
            "/api/v1/payment",
            Some(json!({"orderId": "o2"})),
            (10, 20),
            409,
            json!({"code": "OUT_OF_STOCK"}),
        );
        story.call(
            4,
            Op::Cancel,
            1,
            "/api/v1/orders/o3/cancel",
            None,
            (10, 20),
            200,
            json!({"orderId": "o3", "status": "CANCELLED"}),
        );
        let statuses: BTreeMap<String, String> = [("o1", "PENDING_PAYMENT"), ("o2", "PAID"), ("o3", "PENDING_PAYMENT")]
            .map(|(o, s)| (o.into(), s.into()))
            .into();
        let found: Vec<String> = orders(&story.calls, &statuses).into_iter().map(|v| v.message).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        let right: BTreeMap<String, String> =
            [("o1", "PAID"), ("o2", "PENDING_PAYMENT"), ("o3", "CANCELLED")].map(|(o, s)| (o.into(), s.into())).into();
        assert_eq!(orders(&story.calls, &right), vec![]);
    }

    fn issue(story: &mut Story, request: u64, user: u64, at: (u64, u64), status: u16, code: &str) {
        let answer = if status == 201 { json!({"couponId": 7}) } else { json!({"code": code}) };
        story.call(request, Op::IssueCoupon, user, "/api/v1/coupons/7", None, at, status, answer);
    }

    #[test]
    fn a_sold_out_before_the_last_copy_went_is_caught_and_one_after_it_is_not() {
        let mut story = Story::new();
        issue(&mut story, 1, 1, (0, 10), 201, "");
        issue(&mut story, 2, 2, (5, 15), 409, "COUPON_SOLD_OUT");
        issue(&mut story, 3, 3, (20, 30), 201, "");
        issue(&mut story, 4, 4, (40, 50), 409, "COUPON_SOLD_OUT");
        let held: BTreeMap<u64, CouponHeld> =
            [(7, CouponHeld { total: 2, issued: 2, copies: 2, holders: [1, 3].into() })].into();
        let found = coupons(&story.calls, &held);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].calls, vec![1]);
    }

    #[test]
    fn an_issue_told_and_not_held_or_held_and_not_asked_is_caught() {
        let mut story = Story::new();
        issue(&mut story, 1, 1, (0, 10), 201, "");
        issue(&mut story, 2, 2, (0, 10), 409, "COUPON_ALREADY_ISSUED");
        let held: BTreeMap<u64, CouponHeld> =
            [(7, CouponHeld { total: 5, issued: 2, copies: 2, holders: [1, 9].into() })].into();
        let found: Vec<String> = coupons(&story.calls, &held).into_iter().map(|v| v.message).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().any(|m| m.contains("user 2 was told")), "{found:?}");
        assert!(found.iter().any(|m| m.contains("user 9 holds a copy and never asked")), "{found:?}");
    }

    #[test]
    fn a_lost_or_phantom_event_or_a_refund_before_its_payment_is_caught() {
        let statuses: BTreeMap<String, String> =
            [("o1", "PAID"), ("o2", "REFUNDED"), ("o3", "PENDING_PAYMENT")].map(|(o, s)| (o.into(), s.into())).into();
        let good = Delivered {
            accepted: [("o1:ORDER_PAID", 1), ("o2:ORDER_PAID", 2), ("o2:ORDER_REFUNDED", 1)]
                .map(|(e, n)| (e.into(), n))
                .into(),
            kinesis: ["o2:ORDER_PAID", "o1:ORDER_PAID", "o2:ORDER_REFUNDED", "o2:ORDER_PAID"].map(Into::into).into(),
        };
        assert_eq!(feed(&statuses, &good), vec![]);
        let bad = Delivered {
            accepted: [("o2:ORDER_PAID", 1), ("o2:ORDER_REFUNDED", 1), ("o3:ORDER_PAID", 1)]
                .map(|(e, n)| (e.into(), n))
                .into(),
            kinesis: ["o2:ORDER_REFUNDED", "o2:ORDER_PAID"].map(Into::into).into(),
        };
        let found: Vec<String> = feed(&statuses, &bad).into_iter().map(|v| v.message).collect();
        assert_eq!(found.len(), 3, "{found:?}");
    }

    #[test]
    fn a_confirmed_sign_up_without_a_user_or_a_shared_user_is_caught() {
        let mut story = Story::new();
        story.call(1, Op::SignUp, 0, "user-signup", Some(json!({"sub": "a"})), (0, 5), 200, json!({}));
        story.call(2, Op::SignUp, 0, "user-signup", Some(json!({"sub": "b"})), (0, 5), 200, json!({}));
        story.call(3, Op::SignUp, 0, "user-signup", Some(json!({"sub": "c"})), (0, 5), 200, json!({}));
        let registered: BTreeMap<String, u64> = [("a".into(), 5), ("c".into(), 5)].into();
        let found: Vec<String> =
            sign_ups(&story.calls, &registered, &[5].into()).into_iter().map(|v| v.message).collect();
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn an_order_or_a_restock_made_twice_is_caught() {
        let mut story = Story::new();
        story.call(1, Op::CreateOrder, 1, "/api/v1/orders", None, (0, 10), 503, json!({}));
        story.call(1, Op::CreateOrder, 1, "/api/v1/orders", None, (20, 30), 201, json!({"orderId": "o1"}));
        story.call(
            2,
            Op::Restock,
            9,
            "/api/v1/admin/products/3/stock",
            Some(json!({"add": 50})),
            (0, 10),
            200,
            json!({}),
        );
        story.call(
            3,
            Op::Restock,
            9,
            "/api/v1/admin/products/3/stock",
            Some(json!({"add": 20})),
            (0, 10),
            0,
            no_answer("reset"),
        );
        let once: BTreeMap<String, u64> = [("o1".into(), 1)].into();
        for restocked in [50, 70] {
            assert_eq!(exactly_once(&story.calls, &once, &[(3, restocked)].into()), vec![], "{restocked}");
        }
        let twice: BTreeMap<String, u64> = [("o1".into(), 1), ("o2".into(), 1)].into();
        let found: Vec<String> =
            exactly_once(&story.calls, &twice, &[(3, 120)].into()).into_iter().map(|v| v.message).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("user 1 has 2 orders from 1"), "{found:?}");
        assert!(found[1].contains("restocked 120"), "{found:?}");
    }

    #[test]
    fn a_top_five_that_is_not_the_orders_is_caught() {
        let sold: BTreeMap<u64, u64> = [(1, 5), (2, 9), (3, 9), (4, 1), (5, 2), (6, 3), (7, 0)].into();
        let items = |pairs: &[(u64, u64)]| json!({"items": pairs.iter().map(|(p, q)| json!({"productId": p, "soldQuantity": q})).collect::<Vec<_>>()});
        assert_eq!(top_five(&items(&[(2, 9), (3, 9), (1, 5), (6, 3), (5, 2)]), &sold), vec![]);
        assert_eq!(top_five(&items(&[(3, 9), (2, 9), (1, 5), (6, 3), (5, 2)]), &sold).len(), 1);
        assert_eq!(top_five(&items(&[(2, 9), (3, 9), (1, 5), (6, 3)]), &sold).len(), 1);
        assert_eq!(top_five(&items(&[]), &[(7, 0)].into()), vec![]);
    }

    #[test]
    fn a_load_that_did_little_is_caught() {
        let mut story = Story::new();
        for (request, op) in Op::ALL.into_iter().enumerate() {
            story.call(request as u64, op, 1, "/x", Some(json!({"orderId": "o"})), (0, 1), 200, json!({}));
        }
        assert_eq!(mix(&story.calls), vec![]);
        for request in 20..22 {
            story.call(
                request,
                Op::Pay,
                1,
                "/api/v1/payment",
                None,
                (0, 1),
                409,
                json!({"code": "INSUFFICIENT_BALANCE"}),
            );
        }
        let found: Vec<String> = mix(&story.calls[1..]).into_iter().map(|v| v.message).collect();
        assert_eq!(found, ["no charge succeeded", "1 payments went through, 2 were refused"]);
    }

    #[test]
    fn answers_a_route_may_not_give_are_caught() {
        let mut story = Story::new();
        story.charge(1, "1.00", (0, 10), 200, 2, "51.00");
        story.call(2, Op::Top, 1, "/api/v1/products/top", None, (0, 10), 500, json!({"code": "INTERNAL_ERROR"}));
        story.call(3, Op::Top, 1, "/api/v1/products/top", None, (0, 10), 401, json!({"message": "Unauthorized"}));
        story.call(4, Op::Top, 1, "/api/v1/products/top", None, (0, 10), 503, json!({})).retry_after = false;
        story.call(5, Op::Top, 1, "/api/v1/products/top", None, (0, 10), 0, no_answer("connection reset"));
        story.call(6, Op::Top, 1, "/api/v1/products/top", None, (0, 10), 200, json!({"notJson": "<html>"}));
        assert_eq!(answers(&story.calls).iter().map(|v| v.calls[0]).collect::<Vec<_>>(), vec![1, 2, 3, 5]);
    }

    #[test]
    fn a_fault_is_felt_by_the_calls_it_failed_or_slowed() {
        let mut story = Story::new();
        story.charge(1, "1.00", (1_000, 1_010), 200, 2, "51.00");
        story.charge(2, "1.01", (1_500, 3_000), 200, 3, "52.01");
        story.charge(3, "1.02", (2_000, 2_100), 503, 0, "");
        story.charge(4, "1.03", (9_000, 9_100), 0, 0, "");
        let fault = Planned { at_ms: 1_000, length_ms: 2_000, fault: Fault::KillApi };
        assert_eq!(felt(&fault, &story.calls), vec![1, 2]);
    }

    #[test]
    fn a_feed_fault_is_felt_by_the_deliveries_it_held_back() {
        let mut story = Story::new();
        for (request, (order, at)) in [("o1", 1_500), ("o2", 2_000), ("o3", 4_000)].into_iter().enumerate() {
            story.call(
                request as u64,
                Op::Pay,
                1,
                "/api/v1/payment",
                Some(json!({"orderId": order})),
                (at - 10, at),
                200,
                json!({}),
            );
        }
        let fault = Planned { at_ms: 1_000, length_ms: 2_000, fault: Fault::KillFeed };
        // o1 arrived while the fault lasted (another path), o2 only after it: held back.
        let first_seen: HashMap<String, u64> =
            [("o1:ORDER_PAID", 1_600), ("o2:ORDER_PAID", 3_500), ("o3:ORDER_PAID", 4_100)]
                .map(|(e, t)| (e.into(), t))
                .into();
        assert_eq!(held_back(&fault, &story.calls, &first_seen), vec![1]);
    }
}
