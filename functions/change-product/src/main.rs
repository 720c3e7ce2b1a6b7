//! Lambda `change-product`: an operator changes a product's name or price (operators only).
rushcart::http_lambda!(ChangeProduct);
