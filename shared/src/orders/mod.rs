//! Orders and payment. An order fixes its lines at current prices and its discount
//! (from a coupon the user holds) when it is created; stock is taken only when it is
//! paid. Paying is one all-or-nothing transaction (see the DynamoDB adapter): stock of
//! every line, the balance with its ledger entry, the coupon's use, the order's status,
//! the payment record, the outbox event and the per-day sales figures. A business
//! refusal changes nothing but the order's bounded failure record (a count and the
//! latest few refusals with their reasons).
//!
//! An unpaid order can be paid until its `payBy` (created + the payment window); after
//! that it reads as `EXPIRED` and paying it is refused. Nothing sweeps expired orders:
//! the status is decided when an order is read or paid (the payment transaction itself
//! checks the deadline), so an expired order is never paid, however late a retry.
//!
//! Cancelling an unpaid (pending or expired) order only moves its status to
//! `CANCELLED`. Cancelling a paid order refunds it within the refund window: one
//! transaction that inverts the payment (see the DynamoDB adapter's `payment` module,
//! where both directions sit side by side). A cancel that finds the order changed under
//! it (a payment committed first) reads it again and acts on what it now is; a second
//! cancel of a cancelled or refunded order answers it as it is and moves nothing.

pub mod plan;
pub mod use_cases;

use std::future::Future;

use time::OffsetDateTime;

use crate::balance::BalanceSeen;
use crate::coupons::IssuedCoupon;
use crate::ids::{CouponId, EntryId, IdempotencyKey, OrderId, PaymentId, ProductId, Quantity, UserId};
use crate::money::Money;
use crate::pagination::{Cursor, Page, PageRequest};

/// At most this many distinct products per order: paying one takes two transaction
/// items per product (stock, sales) plus six others, within DynamoDB's 100.
pub const MAX_LINES: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    /// Unpaid past its `payBy`: decided when read, never stored.
    Expired,
    /// Cancelled before it was paid (pending or expired then).
    Cancelled,
    /// Paid, then cancelled: the payment was given back.
    Refunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "PENDING_PAYMENT",
            OrderStatus::Paid => "PAID",
            OrderStatus::Expired => "EXPIRED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Refunded => "REFUNDED",
        }
    }

    /// A stored status (`EXPIRED` is never stored).
    pub fn parse(text: &str) -> Option<OrderStatus> {
        match text {
            "PENDING_PAYMENT" => Some(OrderStatus::PendingPayment),
            "PAID" => Some(OrderStatus::Paid),
            "CANCELLED" => Some(OrderStatus::Cancelled),
            "REFUNDED" => Some(OrderStatus::Refunded),
            _ => None,
        }
    }

    /// Why an order in this status cannot be paid (none for a pending one).
    pub fn payment_refusal(self) -> Option<OrderError> {
        match self {
            OrderStatus::PendingPayment => None,
            OrderStatus::Paid => Some(OrderError::AlreadyPaid),
            OrderStatus::Expired => Some(OrderError::Expired),
            OrderStatus::Cancelled => Some(OrderError::Cancelled),
            OrderStatus::Refunded => Some(OrderError::Refunded),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub product_id: ProductId,
    pub name: String,
    pub quantity: Quantity,
    pub unit_price: Money,
    pub line_total: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub user: UserId,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub subtotal: Money,
    pub discount: Money,
    /// subtotal − discount, never below zero: what payment takes from the balance.
    pub total: Money,
    pub coupon: Option<CouponId>,
    pub created_at: OffsetDateTime,
    /// The end of the payment window: an order still unpaid then is expired.
    pub pay_by: OffsetDateTime,
    pub paid_at: Option<OffsetDateTime>,
    pub payment: Option<PaymentId>,
    /// When it was cancelled unpaid, or refunded.
    pub cancelled_at: Option<OffsetDateTime>,
    /// The ledger entry that gave a refunded order's total back (none for a free order).
    pub refund_entry: Option<EntryId>,
    /// Refused payment attempts: how many, and the latest few.
    pub failures: Failures,
    /// Its payment counted its sales on the order's own shard of the day's figures
    /// (every order paid since they were sharded): its refund takes them back there.
    pub sales_sharded: bool,
}

impl Order {
    /// The order as it stands at `now`: an unpaid order past its deadline is expired.
    pub fn as_of(mut self, now: OffsetDateTime) -> Order {
        if self.status == OrderStatus::PendingPayment && now >= self.pay_by {
            self.status = OrderStatus::Expired;
        }
        self
    }

    /// The order as placing it answered: unpaid, nothing yet done to it (everything
    /// else about an order is fixed when it is placed). What a replayed create answers.
    pub fn as_placed(self) -> Order {
        Order {
            status: OrderStatus::PendingPayment,
            paid_at: None,
            payment: None,
            cancelled_at: None,
            refund_entry: None,
            failures: Failures::default(),
            sales_sharded: false,
            ..self
        }
    }

    /// What a payment retry must repeat for its key to be honoured.
    pub fn payment_fingerprint(&self) -> String {
        format!("PAY:{}:{}", self.user, self.id)
    }

    /// What a cancel retry must repeat for its key to be honoured.
    pub fn cancel_fingerprint(&self) -> String {
        format!("CANCEL:{}", self.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Succeeded,
    Failed,
}

/// The successful payment of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub order: OrderId,
    pub user: UserId,
    pub amount: Money,
    /// The ledger entry that took the money; none when the total was zero.
    pub entry: Option<EntryId>,
    pub at: OffsetDateTime,
}

/// How many of an order's refused payments it keeps in full.
pub const KEPT_FAILURES: usize = 5;

/// One refused payment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentFailure {
    pub payment: PaymentId,
    /// The refusal's error code (`OUT_OF_STOCK`, `INSUFFICIENT_BALANCE` …).
    pub reason: &'static str,
    pub amount: Money,
    pub at: OffsetDateTime,
}

/// An order's bounded record of refused payments: a count of all of them and the
/// latest [`KEPT_FAILURES`], oldest first. However often a payment is refused, the
/// order stays one small item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failures {
    pub count: u64,
    pub latest: Vec<PaymentFailure>,
}

/// A paid order's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paid {
    pub payment: Payment,
    pub balance_after: Money,
    pub replayed: bool,
}

/// An order as saved, and whether an idempotent retry found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order: Order,
    pub replayed: bool,
}

/// A create-order request after parsing: lines merged per product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub user: UserId,
    pub lines: Vec<(ProductId, Quantity)>,
    pub coupon: Option<CouponId>,
}

impl OrderRequest {
    /// What an idempotent retry must repeat for its key to be honoured.
    pub fn fingerprint(&self) -> String {
        let lines: Vec<String> = self.lines.iter().map(|(p, q)| format!("{p}x{}", q.get())).collect();
        let coupon = self.coupon.map(|c| c.to_string()).unwrap_or_default();
        format!("ORDER:{}:{}:{coupon}", self.user, lines.join(","))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("user {0} does not exist")]
    UnknownUser(UserId),
    #[error("product {0} does not exist")]
    UnknownProduct(ProductId),
    #[error("order not found")]
    UnknownOrder,
    #[error("the coupon is not the user's, or is used or expired")]
    CouponUnavailable,
    #[error("product {0} does not have enough stock")]
    OutOfStock(ProductId),
    #[error("the balance is lower than the order's total")]
    InsufficientBalance,
    #[error("the order is already paid")]
    AlreadyPaid,
    #[error("the order's payment window has closed")]
    Expired,
    #[error("the order is cancelled")]
    Cancelled,
    #[error("the order is refunded")]
    Refunded,
    #[error("the order was paid too long ago to be refunded")]
    RefundWindowClosed,
    #[error("the refund would take the balance past its maximum of 1000000000.00")]
    BalanceLimitExceeded,
    #[error("cursor is not one this API issued")]
    BadCursor,
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("the order's total must not exceed 10000000.00")]
    TooLarge,
    #[error("a dependency is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl OrderError {
    /// The code a refused payment is kept under, for refusals worth recording.
    pub fn failure_reason(&self) -> Option<&'static str> {
        match self {
            OrderError::OutOfStock(_) => Some("OUT_OF_STOCK"),
            OrderError::InsufficientBalance => Some("INSUFFICIENT_BALANCE"),
            OrderError::CouponUnavailable => Some("COUPON_UNAVAILABLE"),
            _ => None,
        }
    }
}

/// What placing an order reads before it prices the order, read together.
#[derive(Debug, Clone)]
pub struct OrderInputs {
    pub user_exists: bool,
    /// Each product asked for, in the order asked; `None`: no such product.
    pub products: Vec<Option<crate::catalog::ProductTerms>>,
    /// The user's copy of the coupon asked for, if they hold one.
    pub coupon: Option<IssuedCoupon>,
}

/// Saves and reads orders, and what creating one needs to know.
pub trait OrderStore: Send + Sync {
    /// Whether the user exists, the products and the user's copy of the coupon (if
    /// one is named), in one read where the store allows.
    fn order_inputs(
        &self,
        user: UserId,
        products: &[ProductId],
        coupon: Option<CouponId>,
    ) -> impl Future<Output = Result<OrderInputs, OrderError>> + Send;
    fn user_exists(&self, user: UserId) -> impl Future<Output = Result<bool, OrderError>> + Send;
    fn user_coupon(
        &self,
        user: UserId,
        coupon: CouponId,
    ) -> impl Future<Output = Result<Option<IssuedCoupon>, OrderError>> + Send;
    /// Saves a new order; with a key, a second order under the same key is not saved and
    /// the first is returned (or `IdempotencyKeyReused` when the request differs).
    fn place(
        &self,
        order: Order,
        key: Option<(IdempotencyKey, String)>,
    ) -> impl Future<Output = Result<Placed, OrderError>> + Send;
    /// The order, with its bounded failure record.
    fn order(&self, id: OrderId) -> impl Future<Output = Result<Option<Order>, OrderError>> + Send;
    /// A user's orders, newest first. A just-placed order may take a moment to be
    /// listed (DynamoDB's index is eventually consistent); reading it by id is exact.
    fn orders_of(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Order>, OrderError>> + Send;
}

/// How long an order may wait for its payment, and a paid one for its refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderWindows {
    /// From creation to `payBy` (`ORDER_PAYMENT_WINDOW` seconds; 30 minutes by default).
    pub payment: time::Duration,
    /// From `paidAt` to the last moment a cancel refunds (`ORDER_REFUND_WINDOW`
    /// seconds; 7 days by default).
    pub refund: time::Duration,
}

impl Default for OrderWindows {
    fn default() -> OrderWindows {
        OrderWindows { payment: time::Duration::minutes(30), refund: time::Duration::days(7) }
    }
}

/// The cursor of an order page that ended at `order`; the next page holds older ones.
pub fn cursor_after(order: &Order) -> Cursor {
    Cursor::encode(&format!("o:{}", list_position(order.created_at, order.id)))
}

/// Where an order stands in its user's list: creation time, then id (newest last).
/// Fixed-width text, so it sorts as the pair does.
pub fn list_position(created_at: OffsetDateTime, id: OrderId) -> String {
    format!("{}#{id}", crate::clock::rfc3339(created_at))
}

/// The position a cursor points past, if it is one this API issued.
pub fn cursor_position(cursor: &Cursor) -> Option<String> {
    let position = cursor.position();
    let (at, id) = position.strip_prefix("o:")?.split_once('#')?;
    let at = OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    Some(list_position(at, id.parse().ok()?))
}

/// Who cancels an order: its customer, or an operator for them. Their
/// `Idempotency-Key`s are kept apart (the operators share theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canceller {
    Customer(UserId),
    Operator,
}

/// A cancelled or refunded order, and whether an idempotent retry found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelOutcome {
    pub order: Order,
    pub replayed: bool,
}

/// Carries out plans ([`plan`]): every step or none.
pub trait PlanStore: Send + Sync {
    /// Commits `plan` (`Ok(Ok(()))`), or says which of its steps refused it and what
    /// each found (`Ok(Err(refused))`, nothing changed). Faults are `Err`.
    fn commit(&self, plan: &plan::Plan) -> impl Future<Output = Result<Result<(), plan::Refused>, OrderError>> + Send;
    /// Finishes the ledger entry a committed plan left pending (its history row): the
    /// balance right after it.
    fn settle_entry(
        &self,
        user: UserId,
        entry: EntryId,
        key: Option<&IdempotencyKey>,
    ) -> impl Future<Output = Result<Money, OrderError>> + Send;
    /// The balance as it is now.
    fn balance_now(&self, user: UserId) -> impl Future<Output = Result<Money, OrderError>> + Send;
}

/// What cancelling needs besides plans.
pub trait OrderCanceller: PlanStore {
    /// Whether `key` already cancelled this order (`true`: answer the order as it is
    /// now), or `IdempotencyKeyReused` when it was used for another request.
    fn cancel_key_used(
        &self,
        by: Canceller,
        key: &IdempotencyKey,
        order: &Order,
    ) -> impl Future<Output = Result<bool, OrderError>> + Send;
}

/// What paying needs besides plans.
pub trait OrderPayer: PlanStore {
    /// The order and its payer's balance (absent for a user who does not exist), in one
    /// read where the store allows: a payment that saw the balance can write its ledger
    /// entry with the change.
    fn order_to_pay(
        &self,
        id: OrderId,
        user: UserId,
    ) -> impl Future<Output = Result<(Option<Order>, Option<BalanceSeen>), OrderError>> + Send;
    /// The payment `key` made of `order` first, answered as it was then
    /// (`IdempotencyKeyReused` when the key made something else).
    fn replay_payment(
        &self,
        order: &Order,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Paid, OrderError>> + Send;
    /// Counts a refused attempt and keeps it among the latest few: the only write a
    /// refused payment makes.
    fn record_failure(
        &self,
        order: &Order,
        failure: PaymentFailure,
    ) -> impl Future<Output = Result<(), OrderError>> + Send;
}
