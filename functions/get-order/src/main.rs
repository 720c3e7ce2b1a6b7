//! Lambda `get-order`: GET an order with its payment attempts.
rushcart::http_lambda!("get-order", rushcart::http::orders::get_order);
