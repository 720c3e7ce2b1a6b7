//! Lambda `get-coupon`: GET a coupon with its remaining quantity.
rushcart::http_lambda!(GetCoupon);
