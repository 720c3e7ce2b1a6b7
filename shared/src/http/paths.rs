//! The API's paths, as API Gateway's route keys write them (`{…}` for a path
//! parameter). A leaf: the route table ([`super::routes`]) pairs each with its method,
//! function and handler; a handler names its own in `#[utoipa::path]`, and the path of
//! a resource it creates for `Location` ([`fill`]). Nothing here imports the handlers
//! or the table, so the dependencies point one way.

pub const BALANCE: &str = "/api/v1/users/{userId}/balance";
pub const BALANCE_CHARGE: &str = "/api/v1/users/{userId}/balance/charge";
pub const BALANCE_USE: &str = "/api/v1/users/{userId}/balance/use";
pub const BALANCE_HISTORY: &str = "/api/v1/users/{userId}/balance/history";
pub const PRODUCTS: &str = "/api/v1/products";
pub const PRODUCTS_TOP: &str = "/api/v1/products/top";
pub const PRODUCT: &str = "/api/v1/products/{productId}";
pub const COUPON: &str = "/api/v1/coupons/{couponId}";
pub const USER_COUPONS: &str = "/api/v1/users/{userId}/coupons";
pub const ORDERS: &str = "/api/v1/orders";
pub const ORDER: &str = "/api/v1/orders/{orderId}";
pub const PAYMENT: &str = "/api/v1/payment";
pub const USER_ORDERS: &str = "/api/v1/users/{userId}/orders";
pub const ORDER_CANCEL: &str = "/api/v1/orders/{orderId}/cancel";
pub const ADMIN_PRODUCTS: &str = "/api/v1/admin/products";
pub const ADMIN_PRODUCT: &str = "/api/v1/admin/products/{productId}";
pub const ADMIN_PRODUCT_STOCK: &str = "/api/v1/admin/products/{productId}/stock";
pub const ADMIN_COUPONS: &str = "/api/v1/admin/coupons";
pub const ADMIN_BALANCE_CHARGE: &str = "/api/v1/admin/users/{userId}/balance/charge";
pub const ADMIN_ORDER: &str = "/api/v1/admin/orders/{orderId}";
pub const ADMIN_ORDER_CANCEL: &str = "/api/v1/admin/orders/{orderId}/cancel";

/// `path` with its one `{…}` parameter filled in: `fill(ORDER, id)` is
/// `/api/v1/orders/{id}`. A path without one comes back as it is.
pub fn fill(path: &str, id: impl std::fmt::Display) -> String {
    match (path.find('{'), path.find('}')) {
        (Some(open), Some(close)) if open < close => format!("{}{id}{}", &path[..open], &path[close + 1..]),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_url_fills_in_its_paths_one_parameter() {
        assert_eq!(fill(ORDER, "01J0000000000000000000000A"), "/api/v1/orders/01J0000000000000000000000A");
        assert_eq!(fill(PRODUCT, 7), "/api/v1/products/7");
        assert_eq!(fill(COUPON, 3), "/api/v1/coupons/3");
        assert_eq!(fill(PAYMENT, 3), "/api/v1/payment");
    }
}
