//! Orders and payment. An order fixes its lines at current prices and its discount
//! (from a coupon the user holds) when it is created; stock is taken only when it is
//! paid. Paying is one all-or-nothing transaction (see the DynamoDB adapter): stock of
//! every line, the balance with its ledger entry, the coupon's use, the order's status,
//! the payment record, the outbox event and the per-day sales figures. A business
//! refusal changes nothing but leaves a FAILED payment record with its reason.

pub mod use_cases;

use std::future::Future;

use time::OffsetDateTime;

use crate::coupons::IssuedCoupon;
use crate::ids::{CouponId, EntryId, IdempotencyKey, OrderId, PaymentId, ProductId, Quantity, UserId};
use crate::money::Money;

/// At most this many distinct products per order: paying one takes two transaction
/// items per product (stock, sales) plus six others, within DynamoDB's 100.
pub const MAX_LINES: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "PENDING_PAYMENT",
            OrderStatus::Paid => "PAID",
        }
    }

    pub fn parse(text: &str) -> Option<OrderStatus> {
        match text {
            "PENDING_PAYMENT" => Some(OrderStatus::PendingPayment),
            "PAID" => Some(OrderStatus::Paid),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    pub paid_at: Option<OffsetDateTime>,
    pub payment: Option<PaymentId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Succeeded,
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Succeeded => "SUCCEEDED",
            PaymentStatus::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentStatus> {
        match text {
            "SUCCEEDED" => Some(PaymentStatus::Succeeded),
            "FAILED" => Some(PaymentStatus::Failed),
            _ => None,
        }
    }
}

/// One attempt to pay an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub order: OrderId,
    pub user: UserId,
    pub status: PaymentStatus,
    pub amount: Money,
    /// The error code of a FAILED attempt.
    pub reason: Option<String>,
    /// The ledger entry of a SUCCEEDED attempt that took money.
    pub entry: Option<EntryId>,
    pub at: OffsetDateTime,
}

/// A paid order's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paid {
    pub payment: Payment,
    pub balance_after: Money,
    pub paid_at: OffsetDateTime,
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
    /// The code a FAILED payment record keeps, for refusals worth recording.
    pub fn failure_reason(&self) -> Option<&'static str> {
        match self {
            OrderError::OutOfStock(_) => Some("OUT_OF_STOCK"),
            OrderError::InsufficientBalance => Some("INSUFFICIENT_BALANCE"),
            OrderError::CouponUnavailable => Some("COUPON_UNAVAILABLE"),
            _ => None,
        }
    }
}

/// Saves and reads orders, and what creating one needs to know.
pub trait OrderStore: Send + Sync {
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
    /// The order with every payment attempt, oldest first.
    fn order(&self, id: OrderId) -> impl Future<Output = Result<Option<(Order, Vec<Payment>)>, OrderError>> + Send;
}

/// Pays orders all or nothing.
pub trait OrderPayer: Send + Sync {
    fn pay(
        &self,
        order: &Order,
        payment: PaymentId,
        now: OffsetDateTime,
        key: Option<IdempotencyKey>,
    ) -> impl Future<Output = Result<Paid, OrderError>> + Send;
    /// Keeps a FAILED attempt: the only write a refused payment makes.
    fn record_failure(&self, payment: &Payment) -> impl Future<Output = Result<(), OrderError>> + Send;
}
