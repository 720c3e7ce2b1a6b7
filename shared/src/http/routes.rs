//! Which handler serves which route, declared once.
//!
//! Each route is a type implementing [`Route`]: its method, its API Gateway path
//! template (from [`super::paths`]), the function (folder under `functions/`) that
//! serves it, and its handler. The table imports the handlers; no handler imports the
//! table.
//! Operator routes check the operator role here, before their handler runs.
//! A function's `main` names its route (`rushcart::http_lambda!(GetBalance)`); the
//! local API serves [`ROUTES`] through [`dispatch`]; the OpenAPI document takes its
//! operations from [`Operations`]; tests compare [`ROUTES`] with `template.yaml` and
//! with the function crates, so none of them can drift.

use std::future::Future;

use http::Method;
use lambda_http::{Body, Request, Response};

use super::extract::require_operator;
pub use super::extract::Access;
use super::paths;
use super::{admin, balance, catalog, coupons, instrumented, orders, top, Handled};
use crate::adapters::dynamodb::DynamoStore;
use crate::Deps;

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

macro_rules! routes {
    ($($route:ident: $access:ident $method:ident $path:expr => $function:literal, $module:ident::$handler:ident;)*) => {
        $(
            #[doc = concat!("`", stringify!($method), "` [`", stringify!($path), "`], served by `", $function, "`.")]
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

        /// Each route type's name with its function's (a test holds them to one naming)
        /// and its handler's.
        #[cfg(test)]
        const NAMES: &[(&str, &str, &str)] = &[$((stringify!($route), $function, stringify!($handler)),)*];

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
    GetBalance: Customer GET paths::BALANCE => "get-balance", balance::get_balance;
    ChargeBalance: Customer POST paths::BALANCE_CHARGE => "charge-balance", balance::charge;
    UseBalance: Customer POST paths::BALANCE_USE => "use-balance", balance::use_balance;
    BalanceHistory: Customer GET paths::BALANCE_HISTORY => "balance-history", balance::history;
    ListProducts: Public GET paths::PRODUCTS => "list-products", catalog::list_products;
    ProductsTop: Public GET paths::PRODUCTS_TOP => "products-top", top::top;
    GetProduct: Public GET paths::PRODUCT => "get-product", catalog::get_product;
    GetCoupon: Public GET paths::COUPON => "get-coupon", coupons::get_coupon;
    IssueCoupon: Customer POST paths::COUPON => "issue-coupon", coupons::issue_coupon;
    UserCoupons: Customer GET paths::USER_COUPONS => "user-coupons", coupons::user_coupons;
    CreateOrder: Customer POST paths::ORDERS => "create-order", orders::create_order;
    GetOrder: Customer GET paths::ORDER => "get-order", orders::get_order;
    PayOrder: Customer POST paths::PAYMENT => "pay-order", orders::pay;
    UserOrders: Customer GET paths::USER_ORDERS => "user-orders", orders::user_orders;
    CancelOrder: Customer POST paths::ORDER_CANCEL => "cancel-order", orders::cancel_order;
    CreateProduct: Operator POST paths::ADMIN_PRODUCTS => "create-product", admin::create_product;
    ChangeProduct: Operator PUT paths::ADMIN_PRODUCT => "change-product", admin::change_product;
    RestockProduct: Operator POST paths::ADMIN_PRODUCT_STOCK => "restock-product", admin::restock;
    CreateCoupon: Operator POST paths::ADMIN_COUPONS => "create-coupon", admin::create_coupon;
    ChargeUserBalance: Operator POST paths::ADMIN_BALANCE_CHARGE => "charge-user-balance", admin::charge_user_balance;
    GetAnyOrder: Operator GET paths::ADMIN_ORDER => "get-any-order", orders::get_any_order;
    CancelAnyOrder: Operator POST paths::ADMIN_ORDER_CANCEL => "cancel-any-order", orders::cancel_any_order;
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
        for (route, function, _) in NAMES {
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

    /// A handler writes its path and method in its `#[utoipa::path]`; the row that
    /// serves it must say the same (utoipa names an operation after its handler).
    #[test]
    fn each_handler_documents_its_rows_path_and_method() {
        use utoipa::OpenApi as _;
        let mut operations = Operations::openapi();
        for (route, (_, _, handler)) in ROUTES.iter().zip(NAMES) {
            let item = operations.paths.paths.get_mut(route.path);
            let operation = item.and_then(|item| super::super::openapi::operation_mut(item, &route.method));
            assert_eq!(operation.and_then(|o| o.operation_id.clone()).as_deref(), Some(*handler), "{route:?}");
        }
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
