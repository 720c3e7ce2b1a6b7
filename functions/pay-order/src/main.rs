//! Lambda `pay-order`: pay an order from the balance in one all-or-nothing transaction.
rushcart::http_lambda!(PayOrder);
