//! Lambda `pay-order`: pay an order from the balance in one all-or-nothing transaction.
rushcart::http_lambda!("pay-order", rushcart::http::orders::pay);
