//! Lambda `user-orders`: list a user's orders, newest first.
rushcart::http_lambda!(UserOrders);
