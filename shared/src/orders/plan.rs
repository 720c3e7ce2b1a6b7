//! Paying, refunding and cancelling an order as plans: the steps that commit together
//! or not at all, and what it means when some of them are refused. The rules live
//! here, as pure functions; a store only carries a plan out (one transaction on
//! DynamoDB) and says which steps refused it and what each found.
//!
//! | step | paying | refunding | cancelling unpaid |
//! |---|---|---|---|
//! | the order moves on, if still as read | pending, before `payBy` → PAID | PAID by this payment → REFUNDED | pending → CANCELLED |
//! | each line's stock | taken, if enough | given back | — |
//! | each line's sales on its day | added (the day paid) | taken off the day paid | — |
//! | the balance, by a ledger entry | debited (from the balance seen, or pending) | credited (pending) | — |
//! | the entry's history row | when debited from the balance seen | — | — |
//! | the coupon | used, if the user's, unused and unexpired | given back, if still usable | — |
//! | the payment record | new | marked refunded | — |
//! | the event, for the data platform | ORDER_PAID | ORDER_REFUNDED | — |
//! | the `Idempotency-Key` | claimed | claimed | claimed |
//!
//! Nothing is taken for a zero total, no coupon step without a coupon, no key step
//! without a key.

use time::{Date, OffsetDateTime};

use super::{Canceller, Order, OrderError, OrderStatus, Payment};
use crate::balance::{BalanceChange, BalanceSeen, EntryKind, LedgerEntry};
use crate::coupons::IssuedCoupon;
use crate::feed::events::{self, OrderEvent};
use crate::ids::{
    CouponId, EntryId, IdempotencyKey, KeyScope, KeyTarget, OrderId, PaymentId, ProductId, Quantity, UserId,
};
use crate::money::{Amount, Money};

/// Which way a step moves stock, sales or a coupon: out to the customer when paid,
/// back when refunded. Both directions of each step are one step, so they cannot drift
/// apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Out,
    Back,
}

/// How the order's own item moves, each only from the state the plan read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderMove {
    /// PENDING_PAYMENT → PAID, only before `payBy` (checked at `at`, by the commit itself).
    Pay { payment: PaymentId },
    /// PAID by `payment` → REFUNDED, naming the entry that gave the total back.
    Refund { payment: PaymentId, entry: Option<EntryId> },
    /// PENDING_PAYMENT (expired or not) → CANCELLED.
    Cancel,
}

/// A claim on an `Idempotency-Key`: it commits with the change it guards, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    pub scope: KeyScope,
    pub key: IdempotencyKey,
    /// What a retry under the key must repeat.
    pub fingerprint: String,
    pub target: KeyTarget,
    /// The ledger entry the change makes, if it moves money.
    pub entry: Option<EntryId>,
    /// The entry's seq, when its history row commits in the same plan.
    pub seq: Option<u64>,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Order(OrderMove),
    Stock {
        product: ProductId,
        quantity: Quantity,
        way: Way,
    },
    /// The day's sales figure of `product`, on the shard of order `of` (`None`: the
    /// day's one figure, for an order paid before the figures were sharded).
    Sales {
        day: Date,
        product: ProductId,
        quantity: Quantity,
        way: Way,
        of: Option<OrderId>,
    },
    /// The balance moved by `change`, its entry left pending for the store to finish
    /// after the commit; a debit only while the balance covers it, a credit only while
    /// it stays within the maximum.
    Balance(BalanceChange),
    /// A debit that commits only while the balance is still as `seen`: its entry,
    /// `seen.seq + 1`, is known before the commit.
    DebitSeen {
        change: BalanceChange,
        seen: BalanceSeen,
    },
    /// The history row of the entry a [`Step::DebitSeen`] makes.
    History(LedgerEntry),
    Coupon {
        coupon: CouponId,
        way: Way,
    },
    RecordPayment(Payment),
    PaymentRefunded {
        payment: PaymentId,
    },
    Emit(OrderEvent),
    ClaimKey(KeyClaim),
}

/// What a step is, to tell refused steps apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Order,
    Stock(ProductId),
    Sales(ProductId),
    Balance,
    History,
    Coupon,
    PaymentRecord,
    Event,
    Key,
}

impl Step {
    pub fn role(&self) -> Role {
        match self {
            Step::Order(_) => Role::Order,
            Step::Stock { product, .. } => Role::Stock(*product),
            Step::Sales { product, .. } => Role::Sales(*product),
            Step::Balance(_) | Step::DebitSeen { .. } => Role::Balance,
            Step::History(_) => Role::History,
            Step::Coupon { .. } => Role::Coupon,
            Step::RecordPayment(_) | Step::PaymentRefunded { .. } => Role::PaymentRecord,
            Step::Emit(_) => Role::Event,
            Step::ClaimKey(_) => Role::Key,
        }
    }
}

/// The steps of one change of one order, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What it does, for logs and errors ("pay order …").
    pub what: String,
    pub order: OrderId,
    pub user: UserId,
    /// When the change is made: the time every step writes and checks.
    pub at: OffsetDateTime,
    /// Names this attempt of the change, so that a store's resend of it commits once.
    pub attempt: String,
    pub steps: Vec<Step>,
    /// The entry a debit from the balance seen makes, known before the commit.
    pub entry: Option<LedgerEntry>,
}

impl Plan {
    fn new(what: String, order: &Order, at: OffsetDateTime, attempt: String) -> Plan {
        Plan { what, order: order.id, user: order.user, at, attempt, steps: Vec::new(), entry: None }
    }

    pub fn roles(&self) -> Vec<Role> {
        self.steps.iter().map(Step::role).collect()
    }
}

/// The record of the payment `id` that pays `order`: no ledger entry when nothing is
/// taken.
pub fn payment_record(order: &Order, id: PaymentId, entry: EntryId, at: OffsetDateTime) -> Payment {
    Payment {
        id,
        order: order.id,
        user: order.user,
        amount: order.total,
        entry: (order.total > Money::ZERO).then_some(entry),
        at,
    }
}

/// The plan that pays `order` as `payment` records it.
///
/// Without `seen`, the balance's change is a pending ledger entry, finished after the
/// commit. With it, the debit is made from the balance seen and the entry's history row
/// is one more step (`InsufficientBalance` when the balance seen cannot pay: the plan
/// could only be refused). `attempt` numbers the tries from a balance seen.
pub fn payment(
    order: &Order,
    payment: &Payment,
    key: Option<&IdempotencyKey>,
    seen: Option<(BalanceSeen, usize)>,
) -> Result<Plan, OrderError> {
    let at = payment.at;
    let attempt = match (seen, payment.entry) {
        (Some((_, attempt)), Some(entry)) => format!("{entry}-{attempt}"),
        _ => payment.id.to_string(),
    };
    let mut plan = Plan::new(format!("pay order {}", order.id), order, at, attempt);
    plan.steps.push(Step::Order(OrderMove::Pay { payment: payment.id }));
    lines(&mut plan, order, at.date(), Way::Out);

    if let Some(entry) = payment.entry {
        let change = change(order, entry, EntryKind::Payment, at, key)?;
        match seen {
            None => plan.steps.push(Step::Balance(change)),
            Some((seen, _)) => {
                let known = seen.debited(&change).ok_or(OrderError::InsufficientBalance)?;
                plan.steps.push(Step::DebitSeen { change, seen });
                plan.steps.push(Step::History(known.clone()));
                plan.entry = Some(known);
            }
        }
    }
    if let Some(coupon) = order.coupon {
        plan.steps.push(Step::Coupon { coupon, way: Way::Out });
    }
    plan.steps.push(Step::RecordPayment(payment.clone()));
    plan.steps.push(Step::Emit(events::order_paid(order, payment.id, at)));
    if let Some(key) = key {
        plan.steps.push(Step::ClaimKey(KeyClaim {
            scope: order.user.into(),
            key: key.clone(),
            fingerprint: order.payment_fingerprint(),
            target: KeyTarget::Payment(payment.id),
            entry: payment.entry,
            seq: plan.entry.as_ref().map(|entry| entry.seq),
        }));
    }
    Ok(plan)
}

/// The plan that refunds the paid `order` at `now`, giving the total back as `entry`
/// (none for a free order). The coupon comes back only if the user's copy, as read
/// (`copy`), is still usable then: giving back a coupon nobody can use any more would
/// only make the books disagree.
pub fn refund(
    order: &Order,
    now: OffsetDateTime,
    entry: Option<EntryId>,
    copy: Option<&IssuedCoupon>,
    by: Canceller,
    key: Option<&IdempotencyKey>,
) -> Result<Plan, OrderError> {
    let (Some(payment), Some(paid_at)) = (order.payment, order.paid_at) else {
        return Err(OrderError::Unexpected(anyhow::anyhow!("order {} is not paid", order.id)));
    };
    // An attempt of this request's own: concurrent cancels must not pass for one.
    let attempt = entry.unwrap_or_else(EntryId::generate).to_string();
    let mut plan = Plan::new(format!("refund order {}", order.id), order, now, attempt);
    plan.steps.push(Step::Order(OrderMove::Refund { payment, entry }));
    // Sales come off the day they were counted, which the top 5 reads.
    lines(&mut plan, order, paid_at.date(), Way::Back);
    if let Some(entry) = entry {
        // The cancel's key guards the refund; its entry is found through the order.
        plan.steps.push(Step::Balance(change(order, entry, EntryKind::Refund, now, None)?));
    }
    let usable = copy.is_some_and(|copy| copy.used_at.is_some() && now < copy.expires_at);
    if let (Some(coupon), true) = (order.coupon, usable) {
        plan.steps.push(Step::Coupon { coupon, way: Way::Back });
    }
    plan.steps.push(Step::PaymentRefunded { payment });
    plan.steps.push(Step::Emit(events::order_refunded(order, payment, now)));
    claim_cancel_key(&mut plan, order, by, key, entry);
    Ok(plan)
}

/// The plan that cancels the unpaid (pending or expired) `order`: only its status moves.
pub fn cancel_unpaid(order: &Order, now: OffsetDateTime, by: Canceller, key: Option<&IdempotencyKey>) -> Plan {
    let mut plan = Plan::new(format!("cancel order {}", order.id), order, now, EntryId::generate().to_string());
    plan.steps.push(Step::Order(OrderMove::Cancel));
    claim_cancel_key(&mut plan, order, by, key, None);
    plan
}

/// Whose keys a cancel's key is among: the customer's, or the operators'.
pub fn cancel_scope(by: Canceller, order: &Order) -> KeyScope {
    match by {
        Canceller::Customer(_) => KeyScope::User(order.user),
        Canceller::Operator => KeyScope::Operators,
    }
}

fn claim_cancel_key(
    plan: &mut Plan,
    order: &Order,
    by: Canceller,
    key: Option<&IdempotencyKey>,
    entry: Option<EntryId>,
) {
    if let Some(key) = key {
        plan.steps.push(Step::ClaimKey(KeyClaim {
            scope: cancel_scope(by, order),
            key: key.clone(),
            fingerprint: order.cancel_fingerprint(),
            target: KeyTarget::Order(order.id),
            entry,
            seq: None,
        }));
    }
}

/// Every line's stock, then every line's sales of `day`, moved `way`.
fn lines(plan: &mut Plan, order: &Order, day: Date, way: Way) {
    for line in &order.lines {
        plan.steps.push(Step::Stock { product: line.product_id, quantity: line.quantity, way });
    }
    // A payment counts on its order's shard; a refund takes back from where its
    // payment counted.
    let of = match way {
        Way::Out => Some(order.id),
        Way::Back => order.sales_sharded.then_some(order.id),
    };
    for line in &order.lines {
        plan.steps.push(Step::Sales { day, product: line.product_id, quantity: line.quantity, way, of });
    }
}

fn change(
    order: &Order,
    id: EntryId,
    kind: EntryKind,
    at: OffsetDateTime,
    key: Option<&IdempotencyKey>,
) -> Result<BalanceChange, OrderError> {
    let amount = Amount::from_decimal(order.total.as_decimal()).map_err(|_| OrderError::TooLarge)?;
    Ok(BalanceChange { id, user: order.user, kind, amount, order: Some(order.id), at, idempotency_key: key.cloned() })
}

/// What a refused step found when the store tried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Its item does not exist.
    Missing,
    /// The order, in this stored status.
    Order(OrderStatus),
    /// The balance of a [`Step::DebitSeen`] moved on since it was seen: it is this now.
    Moved(BalanceSeen),
    /// The item is there; the step's condition said no.
    Refused,
}

/// The steps that refused a plan, in plan order, and what each found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Refused {
    pub steps: Vec<(Role, Found)>,
}

impl Refused {
    fn found(&self, role: Role) -> Option<&Found> {
        self.steps.iter().find(|(r, _)| *r == role).map(|(_, found)| found)
    }

    fn stock(&self) -> Option<ProductId> {
        self.steps.iter().find_map(|(role, _)| if let Role::Stock(product) = role { Some(*product) } else { None })
    }
}

/// What follows a refused payment.
#[derive(Debug)]
pub enum AfterPayment {
    /// Its key paid already: answer that payment.
    Replay,
    /// Another change of the payer's came first: pay again from the balance as it is now.
    TryFrom(BalanceSeen),
    /// The refusal a customer can act on.
    Refuse(OrderError),
}

/// The refusal of a payment of `order` that a customer can act on first: the order's
/// state, then stock, then the balance (or a payer who is gone), then the coupon. A
/// key already used wins over all of them (it is a replay), and a balance that only
/// moved on is tried again rather than refused.
pub fn payment_refused(refused: &Refused, order: &Order) -> AfterPayment {
    if refused.found(Role::Key).is_some() {
        return AfterPayment::Replay;
    }
    AfterPayment::Refuse(if let Some(found) = refused.found(Role::Order) {
        match found {
            Found::Order(OrderStatus::PendingPayment) => OrderError::Expired,
            Found::Order(status) => status.payment_refusal().unwrap_or(OrderError::AlreadyPaid),
            _ => OrderError::UnknownOrder,
        }
    } else if let Some(product) = refused.stock() {
        OrderError::OutOfStock(product)
    } else if let Some(found) = refused.found(Role::Balance) {
        match found {
            Found::Missing => OrderError::UnknownUser(order.user),
            Found::Moved(now) => return AfterPayment::TryFrom(*now),
            _ => OrderError::InsufficientBalance,
        }
    } else if refused.found(Role::Coupon).is_some() {
        OrderError::CouponUnavailable
    } else {
        OrderError::Unexpected(anyhow::anyhow!("a payment was refused by steps that cannot refuse: {refused:?}"))
    })
}

/// What follows a refused cancel or refund.
#[derive(Debug)]
pub enum AfterCancel {
    /// The key was claimed first: by this same cancel (answer the order as it is) or by
    /// another request (the key was reused).
    KeyClaimed,
    /// The order, or its coupon's expiry, changed since it was read: read it again.
    Changed,
    Refuse(OrderError),
}

/// What a refused cancel of `order` means.
pub fn cancel_refused(refused: &Refused, order: &Order) -> AfterCancel {
    if refused.found(Role::Key).is_some() {
        return AfterCancel::KeyClaimed;
    }
    if refused.found(Role::Order).is_some() || refused.found(Role::Coupon).is_some() {
        return AfterCancel::Changed;
    }
    AfterCancel::Refuse(match refused.found(Role::Balance) {
        Some(Found::Missing) => OrderError::UnknownUser(order.user),
        Some(_) => OrderError::BalanceLimitExceeded,
        None => OrderError::Unexpected(anyhow::anyhow!("cancelling order {} was refused: {refused:?}", order.id)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::ids::Quantity;
    use crate::orders::{Failures, OrderLine};

    fn p(id: u64) -> ProductId {
        ProductId::new(id).unwrap()
    }

    fn money(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    fn user() -> UserId {
        UserId::new(7).unwrap()
    }

    /// User 7's order of products 1 (×2) and 2 (×3) at 10.00, with or without a coupon
    /// of 5.00, placed on 2026-11-24 at 10:00 and payable until 10:30.
    pub(crate) fn order(coupon: bool) -> Order {
        let line = |id: u64, quantity: u64| OrderLine {
            product_id: p(id),
            name: format!("Product {id}"),
            quantity: Quantity::new(quantity).unwrap(),
            unit_price: money("10.00"),
            line_total: money("10.00").checked_mul(quantity as u32).unwrap(),
        };
        Order {
            id: OrderId::generate(),
            user: user(),
            status: OrderStatus::PendingPayment,
            lines: vec![line(1, 2), line(2, 3)],
            subtotal: money("50.00"),
            discount: if coupon { money("5.00") } else { Money::ZERO },
            total: if coupon { money("45.00") } else { money("50.00") },
            coupon: coupon.then(|| CouponId::new(9).unwrap()),
            created_at: datetime!(2026-11-24 10:00 UTC),
            pay_by: datetime!(2026-11-24 10:30 UTC),
            paid_at: None,
            payment: None,
            cancelled_at: None,
            refund_entry: None,
            failures: Failures::default(),
            sales_sharded: false,
        }
    }

    fn paid(order: Order) -> Order {
        Order {
            status: OrderStatus::Paid,
            paid_at: Some(datetime!(2026-11-24 10:05 UTC)),
            payment: Some(PaymentId::generate()),
            sales_sharded: true,
            ..order
        }
    }

    fn key() -> IdempotencyKey {
        IdempotencyKey::parse("k-1").unwrap()
    }

    fn record(order: &Order) -> Payment {
        payment_record(order, PaymentId::generate(), EntryId::generate(), order.created_at)
    }

    /// The steps of a payment of [`order`] with its coupon and a key, and of its refund:
    /// item by item the same, each moved the other way.
    fn every_role() -> [Role; 10] {
        [
            Role::Order,
            Role::Stock(p(1)),
            Role::Stock(p(2)),
            Role::Sales(p(1)),
            Role::Sales(p(2)),
            Role::Balance,
            Role::Coupon,
            Role::PaymentRecord,
            Role::Event,
            Role::Key,
        ]
    }

    #[test]
    fn a_payment_moves_the_order_stock_sales_balance_coupon_record_event_and_key_together() {
        let order = order(true);
        let payment = record(&order);
        let plan = super::payment(&order, &payment, Some(&key()), None).unwrap();
        assert_eq!(plan.roles(), every_role());
        assert_eq!(plan.entry, None, "the entry is pending until the commit");
        assert_eq!(plan.attempt, payment.id.to_string());
        let Step::Balance(change) = &plan.steps[5] else { panic!("the balance: {:?}", plan.steps[5]) };
        assert_eq!(
            (change.kind, change.amount.money(), change.order),
            (EntryKind::Payment, money("45.00"), Some(order.id))
        );
        assert_eq!(change.idempotency_key, Some(key()));
        let Step::Sales { day, quantity, way, of, .. } = &plan.steps[4] else { panic!("sales") };
        assert_eq!((*day, quantity.get(), *way), (datetime!(2026-11-24 0:00 UTC).date(), 3, Way::Out));
        assert_eq!(*of, Some(order.id), "on the order's shard");
        let Step::ClaimKey(claim) = &plan.steps[9] else { panic!("the key") };
        assert_eq!(
            (claim.scope, claim.target, claim.seq),
            (KeyScope::User(user()), KeyTarget::Payment(payment.id), None)
        );
        assert_eq!(claim.fingerprint, order.payment_fingerprint());
        let Step::Emit(event) = &plan.steps[8] else { panic!("the event") };
        assert_eq!((event.kind, event.payload["total"].as_str()), (crate::feed::EventType::OrderPaid, Some("45.00")));
    }

    #[test]
    fn a_free_order_without_coupon_or_key_takes_no_balance_even_from_a_balance_seen() {
        let mut order = order(false);
        order.total = Money::ZERO;
        let payment = record(&order);
        assert_eq!(payment.entry, None);
        let seen = BalanceSeen { balance: money("10.00"), seq: 3 };
        let plan = super::payment(&order, &payment, None, Some((seen, 0))).unwrap();
        assert_eq!(plan.entry, None);
        assert!(!plan
            .roles()
            .iter()
            .any(|role| matches!(role, Role::Balance | Role::History | Role::Coupon | Role::Key)));
    }

    #[test]
    fn from_a_balance_seen_the_entry_is_known_at_the_next_seq_and_the_key_names_it() {
        let order = order(true);
        let payment = record(&order);
        let seen = BalanceSeen { balance: money("100.00"), seq: 7 };
        let plan = super::payment(&order, &payment, Some(&key()), Some((seen, 2))).unwrap();
        let entry = plan.entry.clone().expect("known before the commit");
        assert_eq!((entry.seq, entry.balance_after, entry.id), (8, money("55.00"), payment.entry.unwrap()));
        assert_eq!(plan.roles()[5..7], [Role::Balance, Role::History]);
        assert!(matches!(&plan.steps[5], Step::DebitSeen { seen: s, .. } if *s == seen));
        assert_eq!(plan.steps[6], Step::History(entry.clone()));
        assert_eq!(plan.attempt, format!("{}-2", entry.id), "each try from a balance seen is a request of its own");
        let Some(Step::ClaimKey(claim)) = plan.steps.last() else { panic!("the key") };
        assert_eq!(claim.seq, Some(8));
    }

    #[test]
    fn a_balance_seen_too_low_to_pay_makes_no_plan() {
        let order = order(true);
        let seen = BalanceSeen { balance: money("44.99"), seq: 2 };
        let built = super::payment(&order, &record(&order), None, Some((seen, 0)));
        assert!(matches!(built, Err(OrderError::InsufficientBalance)), "{built:?}");
    }

    fn copy(used: bool, expires_at: OffsetDateTime) -> IssuedCoupon {
        IssuedCoupon {
            coupon_id: CouponId::new(9).unwrap(),
            user_id: user(),
            name: "nine".into(),
            discount: money("5.00"),
            issued_at: datetime!(2026-11-20 0:00 UTC),
            expires_at,
            used_at: used.then_some(datetime!(2026-11-24 10:05 UTC)),
        }
    }

    #[test]
    fn a_refund_inverts_the_payment_and_takes_sales_off_the_day_paid() {
        let order = paid(order(true));
        let now = datetime!(2026-11-26 9:00 UTC);
        let entry = EntryId::generate();
        let usable = copy(true, datetime!(2026-12-01 0:00 UTC));
        let plan = refund(&order, now, Some(entry), Some(&usable), Canceller::Operator, Some(&key())).unwrap();
        assert_eq!(plan.roles(), every_role());
        assert_eq!(
            plan.steps[0],
            Step::Order(OrderMove::Refund { payment: order.payment.unwrap(), entry: Some(entry) })
        );
        let Step::Sales { day, way, of, .. } = &plan.steps[3] else { panic!("sales") };
        assert_eq!((*day, *way), (datetime!(2026-11-24 0:00 UTC).date(), Way::Back), "the day it was counted");
        assert_eq!(*of, Some(order.id), "the shard it was counted on");
        let before_shards = Order { sales_sharded: false, ..order.clone() };
        let before = refund(&before_shards, now, Some(entry), Some(&usable), Canceller::Operator, None).unwrap();
        let Step::Sales { of, .. } = &before.steps[3] else { panic!("sales") };
        assert_eq!(*of, None, "paid before the figures were sharded: the day's one figure");
        let Step::Balance(change) = &plan.steps[5] else { panic!("the balance") };
        assert_eq!((change.kind, change.idempotency_key.clone()), (EntryKind::Refund, None));
        assert_eq!(plan.steps[6], Step::Coupon { coupon: CouponId::new(9).unwrap(), way: Way::Back });
        let Some(Step::ClaimKey(claim)) = plan.steps.last() else { panic!("the key") };
        assert_eq!((claim.scope, claim.target), (KeyScope::Operators, KeyTarget::Order(order.id)));
    }

    #[test]
    fn a_coupon_that_expired_before_the_refund_stays_used() {
        let order = paid(order(true));
        let now = datetime!(2026-11-26 9:00 UTC);
        let by = Canceller::Customer(user());
        let expired = copy(true, now);
        let plan = refund(&order, now, Some(EntryId::generate()), Some(&expired), by, None).unwrap();
        assert!(!plan.roles().contains(&Role::Coupon));
        let plan = refund(&order, now, Some(EntryId::generate()), None, by, None).unwrap();
        assert!(!plan.roles().contains(&Role::Coupon), "no copy read: nothing to give back");
        let usable = copy(true, now + time::Duration::seconds(1));
        assert!(refund(&order, now, None, Some(&usable), by, None).unwrap().roles().contains(&Role::Coupon));
    }

    #[test]
    fn cancelling_an_unpaid_order_moves_only_its_status_and_key() {
        let order = order(false);
        let by = Canceller::Customer(user());
        let plan = cancel_unpaid(&order, order.created_at, by, Some(&key()));
        assert_eq!(plan.roles(), [Role::Order, Role::Key]);
        assert_eq!(plan.steps[0], Step::Order(OrderMove::Cancel));
        assert!(
            refund(&order, order.created_at, None, None, by, None).is_err(),
            "an unpaid order has nothing to refund"
        );
    }

    fn refused(steps: &[(Role, Found)]) -> Refused {
        Refused { steps: steps.to_vec() }
    }

    fn payment_refusal(steps: &[(Role, Found)]) -> AfterPayment {
        payment_refused(&refused(steps), &order(false))
    }

    #[test]
    fn each_refused_step_of_a_payment_is_its_refusal() {
        use Found::{Missing, Refused as No};
        let refuse = |steps: &[(Role, Found)]| match payment_refusal(steps) {
            AfterPayment::Refuse(err) => err,
            other => panic!("not a refusal: {other:?}"),
        };
        assert!(matches!(refuse(&[(Role::Stock(p(2)), No)]), OrderError::OutOfStock(id) if id == p(2)));
        assert!(matches!(refuse(&[(Role::Balance, No)]), OrderError::InsufficientBalance));
        assert!(matches!(refuse(&[(Role::Balance, Missing)]), OrderError::UnknownUser(u) if u == user()));
        assert!(matches!(refuse(&[(Role::Coupon, No)]), OrderError::CouponUnavailable));
        assert!(matches!(refuse(&[(Role::Order, Missing)]), OrderError::UnknownOrder));
        assert!(matches!(refuse(&[(Role::PaymentRecord, No)]), OrderError::Unexpected(_)));
        let status = |status| refuse(&[(Role::Order, Found::Order(status))]);
        assert!(matches!(status(OrderStatus::Paid), OrderError::AlreadyPaid));
        assert!(matches!(status(OrderStatus::PendingPayment), OrderError::Expired), "still pending: past payBy");
        assert!(matches!(status(OrderStatus::Cancelled), OrderError::Cancelled));
        assert!(matches!(status(OrderStatus::Refunded), OrderError::Refunded));
    }

    #[test]
    fn the_refusal_a_customer_can_act_on_first_wins_and_a_used_key_wins_over_all() {
        use Found::Refused as No;
        let first = |steps: &[(Role, Found)]| payment_refusal(steps);
        let paid = Found::Order(OrderStatus::Paid);
        assert!(matches!(
            first(&[(Role::Stock(p(1)), No), (Role::Stock(p(2)), No), (Role::Balance, No), (Role::Coupon, No)]),
            AfterPayment::Refuse(OrderError::OutOfStock(id)) if id == p(1)
        ));
        assert!(matches!(
            first(&[(Role::Order, paid.clone()), (Role::Stock(p(1)), No)]),
            AfterPayment::Refuse(OrderError::AlreadyPaid)
        ));
        assert!(matches!(
            first(&[(Role::Balance, No), (Role::Coupon, No)]),
            AfterPayment::Refuse(OrderError::InsufficientBalance)
        ));
        assert!(matches!(first(&[(Role::Order, paid), (Role::Key, No)]), AfterPayment::Replay));
    }

    #[test]
    fn a_balance_that_moved_on_is_tried_again_unless_something_else_refused_first() {
        let now = BalanceSeen { balance: money("80.00"), seq: 9 };
        assert!(matches!(payment_refusal(&[(Role::Balance, Found::Moved(now))]), AfterPayment::TryFrom(b) if b == now));
        assert!(matches!(
            payment_refusal(&[(Role::Balance, Found::Moved(now)), (Role::Coupon, Found::Refused)]),
            AfterPayment::TryFrom(_)
        ));
        assert!(matches!(
            payment_refusal(&[(Role::Stock(p(1)), Found::Refused), (Role::Balance, Found::Moved(now))]),
            AfterPayment::Refuse(OrderError::OutOfStock(_))
        ));
    }

    #[test]
    fn a_refused_cancel_reads_again_on_change_and_refuses_only_for_the_balance() {
        let order = order(false);
        let after = |steps: &[(Role, Found)]| cancel_refused(&refused(steps), &order);
        assert!(matches!(after(&[(Role::Order, Found::Order(OrderStatus::Paid))]), AfterCancel::Changed));
        assert!(
            matches!(after(&[(Role::Coupon, Found::Refused)]), AfterCancel::Changed),
            "the coupon expired meanwhile"
        );
        assert!(matches!(
            after(&[(Role::Order, Found::Refused), (Role::Key, Found::Refused)]),
            AfterCancel::KeyClaimed
        ));
        assert!(matches!(
            after(&[(Role::Balance, Found::Refused)]),
            AfterCancel::Refuse(OrderError::BalanceLimitExceeded)
        ));
        assert!(matches!(after(&[(Role::Balance, Found::Missing)]), AfterCancel::Refuse(OrderError::UnknownUser(_))));
        assert!(matches!(
            after(&[(Role::Stock(p(1)), Found::Refused)]),
            AfterCancel::Refuse(OrderError::Unexpected(_))
        ));
    }
}
