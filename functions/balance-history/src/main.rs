//! Lambda `balance-history`: page through a user's balance history.
rushcart::http_lambda!("balance-history", rushcart::http::balance::history);
