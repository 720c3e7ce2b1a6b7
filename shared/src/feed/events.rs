//! The events an order's payment and refund emit, as the data platform reads them
//! (schema version 1, documented in `docs/events.md`). The payment and the refund put
//! them in the outbox in their own transaction; the relay publishes them as they are.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::EventType;
use crate::clock::rfc3339;
use crate::ids::{OrderId, PaymentId};
use crate::orders::Order;

/// An event of one order, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    pub kind: EventType,
    pub order: OrderId,
    pub payload: Value,
    /// When the change that emits it was made.
    pub at: OffsetDateTime,
}

impl OrderEvent {
    /// `<orderId>:<TYPE>`: an order has at most one event of each type.
    pub fn event_id(&self) -> String {
        self.kind.event_id(self.order)
    }
}

/// ORDER_PAID: the order as it was paid, by which payment, and when.
pub fn order_paid(order: &Order, payment: PaymentId, paid_at: OffsetDateTime) -> OrderEvent {
    let mut payload = base(order, EventType::OrderPaid, payment);
    payload["paidAt"] = rfc3339(paid_at).into();
    OrderEvent { kind: EventType::OrderPaid, order: order.id, payload, at: paid_at }
}

/// ORDER_REFUNDED: the order as it was paid, when it was paid and when refunded.
pub fn order_refunded(order: &Order, payment: PaymentId, refunded_at: OffsetDateTime) -> OrderEvent {
    let mut payload = base(order, EventType::OrderRefunded, payment);
    payload["paidAt"] = order.paid_at.map(rfc3339).into();
    payload["refundedAt"] = rfc3339(refunded_at).into();
    OrderEvent { kind: EventType::OrderRefunded, order: order.id, payload, at: refunded_at }
}

/// The fields every order event carries.
fn base(order: &Order, kind: EventType, payment: PaymentId) -> Value {
    json!({
        "schemaVersion": 1,
        "eventId": kind.event_id(order.id),
        "type": kind.as_str(),
        "orderId": order.id.to_string(),
        "paymentId": payment.to_string(),
        "userId": order.user.get(),
        "lines": order.lines.iter().map(|line| json!({
            "productId": line.product_id.get(),
            "quantity": line.quantity.get(),
            "unitPrice": line.unit_price.to_string(),
            "lineTotal": line.line_total.to_string(),
        })).collect::<Vec<_>>(),
        "subtotal": order.subtotal.to_string(),
        "discount": order.discount.to_string(),
        "total": order.total.to_string(),
        "couponId": order.coupon.map(|coupon| coupon.get()),
    })
}
