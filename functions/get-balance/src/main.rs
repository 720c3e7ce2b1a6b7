//! Lambda `get-balance`: GET a user's balance.
rushcart::http_lambda!(GetBalance);
