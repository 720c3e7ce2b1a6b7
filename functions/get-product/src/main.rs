//! Lambda `get-product`: GET one product.
rushcart::http_lambda!("get-product", rushcart::http::catalog::get_product);
