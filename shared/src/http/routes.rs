//! Which handler serves which route, declared once.
//!
//! Each route is a type implementing [`Route`]: its method, its API Gateway path
//! template, the function (folder under `functions/`) that serves it, and its handler.
//! A function's `main` names its route (`rushcart::http_lambda!(GetBalance)`); the
//! local API serves [`ROUTES`] through [`dispatch`]; tests compare [`ROUTES`] with
//! `template.yaml` and with the function crates, so none of them can drift.

use std::future::Future;

use http::Method;
use lambda_http::{Body, Request, Response};

use super::{balance, catalog, coupons, instrumented, orders, top, Handled};
use crate::adapters::dynamodb::DynamoStore;
use crate::Deps;

/// One HTTP route and the handler its Lambda runs.
pub trait Route {
    const METHOD: Method;
    /// The API Gateway path template, e.g. `/api/v1/users/{userId}/balance`.
    const PATH: &'static str;
    /// The function's folder under `functions/` and its name in `template.yaml`.
    const FUNCTION: &'static str;

    fn handle(request: Request, deps: &Deps<DynamoStore>) -> impl Future<Output = Handled> + Send + '_;
}

/// A route as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    pub path: &'static str,
    pub function: &'static str,
}

macro_rules! routes {
    ($($route:ident: $method:ident $path:literal => $function:literal, $handler:path;)*) => {
        $(
            #[doc = concat!("`", stringify!($method), " ", $path, "`, served by `", $function, "`.")]
            pub struct $route;

            impl Route for $route {
                const METHOD: Method = Method::$method;
                const PATH: &'static str = $path;
                const FUNCTION: &'static str = $function;

                fn handle(request: Request, deps: &Deps<DynamoStore>) -> impl Future<Output = Handled> + Send + '_ {
                    $handler(request, deps)
                }
            }
        )*

        /// Every HTTP route, in the order API Gateway lists them.
        pub const ROUTES: &[RouteInfo] = &[
            $(RouteInfo { method: Method::$method, path: $path, function: $function },)*
        ];

        /// Each route type's name with its function's (a test holds them to one naming).
        #[cfg(test)]
        const NAMES: &[(&str, &str)] = &[$((stringify!($route), $function),)*];

        /// Calls the handler of `function` exactly as that function's `main` does;
        /// `None` for a function that serves no route.
        pub async fn dispatch(
            function: &str,
            request: Request,
            deps: &Deps<DynamoStore>,
        ) -> Option<Response<Body>> {
            Some(match function {
                $($function => instrumented($function, request, |request| $route::handle(request, deps)).await,)*
                _ => return None,
            })
        }
    };
}

routes! {
    GetBalance: GET "/api/v1/users/{userId}/balance" => "get-balance", balance::get_balance;
    ChargeBalance: POST "/api/v1/users/{userId}/balance/charge" => "charge-balance", balance::charge;
    UseBalance: POST "/api/v1/users/{userId}/balance/use" => "use-balance", balance::use_balance;
    BalanceHistory: GET "/api/v1/users/{userId}/balance/history" => "balance-history", balance::history;
    ListProducts: GET "/api/v1/products" => "list-products", catalog::list_products;
    ProductsTop: GET "/api/v1/products/top" => "products-top", top::top;
    GetProduct: GET "/api/v1/products/{productId}" => "get-product", catalog::get_product;
    GetCoupon: GET "/api/v1/coupons/{couponId}" => "get-coupon", coupons::get_coupon;
    IssueCoupon: POST "/api/v1/coupons/{couponId}" => "issue-coupon", coupons::issue_coupon;
    UserCoupons: GET "/api/v1/users/{userId}/coupons" => "user-coupons", coupons::user_coupons;
    CreateOrder: POST "/api/v1/orders" => "create-order", orders::create_order;
    GetOrder: GET "/api/v1/orders/{orderId}" => "get-order", orders::get_order;
    PayOrder: POST "/api/v1/payment" => "pay-order", orders::pay;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_function_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "{a:?} twice");
                assert_ne!(a.function, b.function, "{} serves two routes", a.function);
            }
        }
    }

    #[test]
    fn a_route_type_is_named_after_its_function() {
        for (route, function) in NAMES {
            let camel: String = function.split('-').map(|word| word[..1].to_uppercase() + &word[1..]).collect();
            assert_eq!(*route, camel, "{function} is served by {route}");
        }
    }

    #[test]
    fn a_route_type_and_its_row_agree() {
        assert_eq!(
            ROUTES.iter().find(|r| r.function == PayOrder::FUNCTION),
            Some(&RouteInfo { method: PayOrder::METHOD, path: PayOrder::PATH, function: "pay-order" })
        );
    }
}
