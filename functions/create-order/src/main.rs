//! Lambda `create-order`: create an order at current prices, with an optional coupon.
rushcart::http_lambda!(CreateOrder);
