//! Lambda `cancel-any-order`: an operator cancels or refunds any order.
rushcart::http_lambda!(CancelAnyOrder);
