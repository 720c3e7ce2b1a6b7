//! Lambda `list-products`: list products in id order.
rushcart::http_lambda!("list-products", rushcart::http::catalog::list_products);
