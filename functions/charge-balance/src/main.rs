//! Lambda `charge-balance`: charge (add to) a user's balance.
rushcart::http_lambda!(ChargeBalance);
