//! Lambda `user-coupons`: list a user's coupons with their status.
rushcart::http_lambda!(UserCoupons);
