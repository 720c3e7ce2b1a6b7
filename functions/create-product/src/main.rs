//! Lambda `create-product`: an operator adds a product to the catalogue (operators only).
rushcart::http_lambda!(CreateProduct);
