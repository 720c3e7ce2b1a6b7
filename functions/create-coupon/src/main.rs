//! Lambda `create-coupon`: an operator creates a first-come coupon (operators only).
rushcart::http_lambda!(CreateCoupon);
