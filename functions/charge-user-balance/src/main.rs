//! Lambda `charge-user-balance`: an operator credits a customer's balance (operators only).
rushcart::http_lambda!(ChargeUserBalance);
