//! Lambda `get-order`: GET an order with its payment attempts.
rushcart::http_lambda!(GetOrder);
