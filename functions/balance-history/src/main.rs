//! Lambda `balance-history`: page through a user's balance history.
rushcart::http_lambda!(BalanceHistory);
