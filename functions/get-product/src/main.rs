//! Lambda `get-product`: GET one product.
rushcart::http_lambda!(GetProduct);
