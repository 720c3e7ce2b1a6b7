//! Lambda `cancel-order`: a customer cancels their order, or has it refunded if paid.
rushcart::http_lambda!(CancelOrder);
