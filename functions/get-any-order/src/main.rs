//! Lambda `get-any-order`: an operator reads any order.
rushcart::http_lambda!(GetAnyOrder);
