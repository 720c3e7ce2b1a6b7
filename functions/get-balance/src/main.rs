//! Lambda `get-balance`: GET a user's balance.
rushcart::http_lambda!("get-balance", rushcart::http::balance::get_balance);
