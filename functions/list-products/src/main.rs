//! Lambda `list-products`: list products in id order.
rushcart::http_lambda!(ListProducts);
