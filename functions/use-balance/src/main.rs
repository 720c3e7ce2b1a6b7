//! Lambda `use-balance`: use (deduct from) a user's balance.
rushcart::http_lambda!("use-balance", rushcart::http::balance::use_balance);
