//! Lambda `charge-balance`: charge (add to) a user's balance.
rushcart::http_lambda!("charge-balance", rushcart::http::balance::charge);
