//! Which handler serves which route, declared once.
//!
//! Each route is a type implementing [`Route`]: its method, its API Gateway path
//! template, the function (folder under `functions/`) that serves it, and its handler.
//! Operator routes check the operator role here, before their handler runs.
//! A function's `main` names its route (`rushcart::http_lambda!(GetBalance)`); the
//! local API serves [`ROUTES`] through [`dispatch`]; the OpenAPI document takes its
//! operations from [`Operations`]; tests compare [`ROUTES`] with `template.yaml` and
//! with the function crates, so none of them can drift.

use std::future::Future;

use http::Method;
use lambda_http::{Body, Request, Response};

use super::extract::require_operator;
use super::{admin, balance, catalog, coupons, instrumented, orders, top, Handled};
use crate::adapters::dynamodb::DynamoStore;
use crate::Deps;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with no token: the catalogue, the top 5, a coupon's terms.
    Public,
    /// A signed-in customer, acting for themself.
    Customer,
    /// A signed-in operator (the operator role).
    Operator,
}

/// One HTTP route and the handler its Lambda runs.
pub trait Route {
    const METHOD: Method;
    const ACCESS: Access;
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
    /// Whether API Gateway's authorizer stands in front of it (all but `Public`), and
    /// whether the function asks for the operator role.
    pub access: Access,
}

impl RouteInfo {
    /// API Gateway's route key: `POST /api/v1/coupons/{couponId}` (what its stage's
    /// route settings and a request context's `routeKey` name).
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The URL of one resource of route `R`: its path with the one `{…}` parameter filled
/// in (`url_of::<GetOrder>(id)` is `/api/v1/orders/{id}`). A 201 names it in
/// `Location`, so the URL comes from the table the routes are served from.
pub fn url_of<R: Route>(id: impl std::fmt::Display) -> String {
    match (R::PATH.find('{'), R::PATH.find('}')) {
        (Some(open), Some(close)) if open < close => format!("{}{id}{}", &R::PATH[..open], &R::PATH[close + 1..]),
        _ => R::PATH.to_owned(),
    }
}

macro_rules! routes {
    ($($route:ident: $access:ident $method:ident $path:literal => $function:literal, $module:ident::$handler:ident;)*) => {
        $(
            #[doc = concat!("`", stringify!($method), " ", $path, "`, served by `", $function, "`.")]
            pub struct $route;

            impl Route for $route {
                const METHOD: Method = Method::$method;
                const ACCESS: Access = Access::$access;
                const PATH: &'static str = $path;
                const FUNCTION: &'static str = $function;

                fn handle(request: Request, deps: &Deps<DynamoStore>) -> impl Future<Output = Handled> + Send + '_ {
                    async move {
                        // The table, not each handler, holds the operator routes to the role.
                        if Self::ACCESS == Access::Operator {
                            require_operator(&request, &deps.identity)?;
                        }
                        $module::$handler(request, deps).await
                    }
                }
            }
        )*

        /// Every route's operation as its handler's `#[utoipa::path]` describes it, and
        /// the schemas they name: the document's paths come from this table
        /// ([`super::openapi::document`]), never from a second list.
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($module::$handler),*))]
        pub struct Operations;

        /// Every HTTP route, in the order API Gateway lists them.
        pub const ROUTES: &[RouteInfo] = &[
            $(RouteInfo { method: Method::$method, path: $path, function: $function, access: Access::$access },)*
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
                $($function => instrumented($function, $route::ACCESS, request, |request| $route::handle(request, deps)).await,)*
                _ => return None,
            })
        }
    };
}

routes! {
    GetBalance: Customer GET "/api/v1/users/{userId}/balance" => "get-balance", balance::get_balance;
    ChargeBalance: Customer POST "/api/v1/users/{userId}/balance/charge" => "charge-balance", balance::charge;
    UseBalance: Customer POST "/api/v1/users/{userId}/balance/use" => "use-balance", balance::use_balance;
    BalanceHistory: Customer GET "/api/v1/users/{userId}/balance/history" => "balance-history", balance::history;
    ListProducts: Public GET "/api/v1/products" => "list-products", catalog::list_products;
    ProductsTop: Public GET "/api/v1/products/top" => "products-top", top::top;
    GetProduct: Public GET "/api/v1/products/{productId}" => "get-product", catalog::get_product;
    GetCoupon: Public GET "/api/v1/coupons/{couponId}" => "get-coupon", coupons::get_coupon;
    IssueCoupon: Customer POST "/api/v1/coupons/{couponId}" => "issue-coupon", coupons::issue_coupon;
    UserCoupons: Customer GET "/api/v1/users/{userId}/coupons" => "user-coupons", coupons::user_coupons;
    CreateOrder: Customer POST "/api/v1/orders" => "create-order", orders::create_order;
    GetOrder: Customer GET "/api/v1/orders/{orderId}" => "get-order", orders::get_order;
    PayOrder: Customer POST "/api/v1/payment" => "pay-order", orders::pay;
    UserOrders: Customer GET "/api/v1/users/{userId}/orders" => "user-orders", orders::user_orders;
    CancelOrder: Customer POST "/api/v1/orders/{orderId}/cancel" => "cancel-order", orders::cancel_order;
    CreateProduct: Operator POST "/api/v1/admin/products" => "create-product", admin::create_product;
    ChangeProduct: Operator PUT "/api/v1/admin/products/{productId}" => "change-product", admin::change_product;
    RestockProduct: Operator POST "/api/v1/admin/products/{productId}/stock" => "restock-product", admin::restock;
    CreateCoupon: Operator POST "/api/v1/admin/coupons" => "create-coupon", admin::create_coupon;
    ChargeUserBalance: Operator POST "/api/v1/admin/users/{userId}/balance/charge" => "charge-user-balance", admin::charge_user_balance;
    GetAnyOrder: Operator GET "/api/v1/admin/orders/{orderId}" => "get-any-order", orders::get_any_order;
    CancelAnyOrder: Operator POST "/api/v1/admin/orders/{orderId}/cancel" => "cancel-any-order", orders::cancel_any_order;
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
    fn exactly_the_catalogue_the_top_5_and_a_coupons_terms_are_public() {
        let public: Vec<&str> = ROUTES.iter().filter(|r| r.access == Access::Public).map(|r| r.function).collect();
        assert_eq!(public, ["list-products", "products-top", "get-product", "get-coupon"]);
        for route in ROUTES {
            assert_eq!(route.path.starts_with("/api/v1/admin/"), route.access == Access::Operator, "{route:?}");
        }
    }

    #[test]
    fn a_resource_url_fills_in_its_routes_one_parameter() {
        assert_eq!(url_of::<GetOrder>("01J0000000000000000000000A"), "/api/v1/orders/01J0000000000000000000000A");
        assert_eq!(url_of::<GetProduct>(7), "/api/v1/products/7");
        assert_eq!(url_of::<GetCoupon>(3), "/api/v1/coupons/3");
    }

    #[test]
    fn a_route_type_and_its_row_agree() {
        assert_eq!(
            ROUTES.iter().find(|r| r.function == PayOrder::FUNCTION),
            Some(&RouteInfo {
                method: PayOrder::METHOD,
                path: PayOrder::PATH,
                function: "pay-order",
                access: Access::Customer
            })
        );
    }
}
