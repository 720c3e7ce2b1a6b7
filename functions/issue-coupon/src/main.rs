//! Lambda `issue-coupon`: issue a first-come coupon to a user.
rushcart::http_lambda!(IssueCoupon);
