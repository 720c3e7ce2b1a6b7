//! Lambda `get-coupon`: GET a coupon with its remaining quantity.
rushcart::http_lambda!("get-coupon", rushcart::http::coupons::get_coupon);
