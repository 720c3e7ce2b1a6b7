//! Lambda `use-balance`: use (deduct from) a user's balance.
rushcart::http_lambda!(UseBalance);
