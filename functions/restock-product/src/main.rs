//! Lambda `restock-product`: an operator adds to a product's stock (operators only).
rushcart::http_lambda!(RestockProduct);
