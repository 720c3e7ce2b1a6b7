//! The API described: an OpenAPI 3.1 document derived from the code, never kept by
//! hand.
//!
//! - Request and response bodies derive their schemas (`utoipa::ToSchema`) beside
//!   their `serde` derives, so a renamed or added field shows up in the document.
//! - Each handler carries its operation (`#[utoipa::path]`): its path
//!   ([`super::paths`]), its parameters ([`super::params`]), its body and the statuses
//!   it answers with their error codes; the route table gathers them.
//! - What every route shares is added here from the route table, once ([`Edge`]): the
//!   bearer token and the authorizer's 401 on every route that is not public, the
//!   403 of a token that may not act, the 413 and 415 of a body, the opaque 500 and
//!   the 503 with `Retry-After`.
//! - The scalars (ids, money) are described here by hand, as their parsers accept them.
//!
//! `make run` serves the document at `/openapi.json` (and Swagger UI at `/docs`);
//! `make openapi` writes it to `docs/openapi.json`. Tests hold its operations to the
//! route table and `template.yaml`, and validate it against the OpenAPI 3.1 schema.

use std::borrow::Cow;

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::params::Price;
use super::routes::{Access, ROUTES};
use crate::catalog::DisplayName;
use crate::ids::{CouponId, EntryId, OrderId, PaymentId, ProductId, Quantity, UserId};
use crate::money::{Amount, Money};

/// The name of the bearer scheme in the document.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rushcart",
        description = "The core of a shop under a rush: first-come coupons, stock, balances and payment, \
            correct under hundreds of concurrent requests.\n\n\
            Money is a decimal string with two fractional digits in every response (`\"1000.00\"`); requests \
            take a string or a JSON number with at most two fractional digits. Times are RFC 3339 in UTC. \
            Every error a function answers is `{\"code\", \"message\", \"requestId\"}`; `requestId` is also \
            the `apigw-requestid` header, the id to quote when reporting a failed call. What API Gateway \
            answers itself (the authorizer's 401, an unrouted 404, a route throttle's 429) is `{\"message\"}`.\n\n\
            Signed in, the acting user is the token's: a request naming another user is refused with 403, \
            and another user's order is not found (404).",
        license(name = "Proprietary")
    ),
    components(schemas(GatewayMessage, super::error::ErrorBody)),
    tags(
        (name = "balance", description = "A customer's balance and its history"),
        (name = "catalogue", description = "Products and the top 5 (public)"),
        (name = "coupons", description = "First-come coupons"),
        (name = "orders", description = "Orders, payment, cancel and refund"),
        (name = "operator", description = "The shop's own routes (the operator role)"),
    )
)]
pub struct ApiDoc;

/// The document.
pub fn document() -> serde_json::Value {
    // Serialising a document of plain maps and strings cannot fail.
    // The operations are the route table's; what every route shares is added to them.
    let mut api = ApiDoc::openapi();
    api.merge(super::routes::Operations::openapi());
    Edge.modify(&mut api);
    let mut document = serde_json::to_value(api).unwrap_or_default();
    amend(&mut document);
    document
}

/// The document as pretty JSON, as `make openapi` writes it.
pub fn document_json() -> String {
    serde_json::to_string_pretty(&document()).unwrap_or_default()
}

/// What utoipa cannot say: the error shapes hold nothing else, and a 429 is either a
/// function's error or API Gateway's.
fn amend(document: &mut serde_json::Value) {
    let schemas = &mut document["components"]["schemas"];
    // The two error shapes hold nothing else, so a body is exactly one of them.
    for shape in ["ErrorBody", "GatewayMessage"] {
        schemas[shape]["additionalProperties"] = serde_json::json!(false);
    }
    // A function's own 429 (coupon issue's per-user budget) shares its status with API
    // Gateway's throttle, whose body is its own.
    let error = serde_json::json!({ "$ref": "#/components/schemas/ErrorBody" });
    let either = serde_json::json!({ "oneOf": [error.clone(), { "$ref": "#/components/schemas/GatewayMessage" }] });
    for item in document["paths"].as_object_mut().into_iter().flat_map(|paths| paths.values_mut()) {
        for operation in item.as_object_mut().into_iter().flat_map(|item| item.values_mut()) {
            let schema = &mut operation["responses"]["429"]["content"]["application/json"]["schema"];
            if *schema == error {
                *schema = either.clone();
            }
        }
    }
}

/// What API Gateway answers itself: the authorizer's 401, a path no route takes (404),
/// the route throttle's 429.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GatewayMessage {
    #[schema(examples("Unauthorized"))]
    message: String,
}

/// Adds what every route shares, from the route table.
struct Edge;

impl Modify for Edge {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token from the shop's issuer (Cognito; locally `POST /_local/token` or \
                         `rushcart-admin token`). Operator routes need the operator role.",
                    ))
                    .build(),
            ),
        );
        for route in ROUTES {
            let Some(item) = openapi.paths.paths.get_mut(route.path) else { continue };
            let Some(operation) = operation_mut(item, &route.method) else { continue };
            // The function's name is the operation's: one name in the template, the
            // logs and the document.
            operation.operation_id = Some(route.function.to_owned());
            if let Some(RefOr::T(body)) = operation.request_body.as_mut() {
                optional_body_may_be_left_out(body);
            }
            let has_body = operation.request_body.is_some();
            let keyed =
                operation.parameters.iter().flatten().any(|p| matches!(p, RefOr::T(p) if p.name == "Idempotency-Key"));
            let responses = &mut operation.responses.responses;
            if keyed && route.method != http::Method::PUT {
                // What takes an Idempotency-Key answers a retry with the first answer,
                // marked (`http::replayed`); a PUT is idempotent as it is and marks nothing.
                for (status, response) in responses.iter_mut() {
                    if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                        response.headers.insert(super::REPLAYED_HEADER.to_owned(), RefOr::T(replayed_header()));
                    }
                }
            }
            if has_body || keyed {
                let mut codes = String::new();
                if has_body {
                    codes.push_str(
                        "; the body's own: `MALFORMED_JSON`, `INVALID_BODY` (not a JSON object), `UNKNOWN_FIELD` (names it), `DUPLICATE_FIELD`",
                    );
                }
                if keyed {
                    codes.push_str("; `INVALID_IDEMPOTENCY_KEY`");
                }
                match responses.get_mut("400") {
                    Some(RefOr::T(response)) => response.description.push_str(&codes),
                    _ => {
                        responses.insert("400".to_owned(), error(codes.trim_start_matches("; ")));
                    }
                }
            }
            let mut add = |status: &str, response: RefOr<utoipa::openapi::Response>| {
                responses.entry(status.to_owned()).or_insert(response);
            };
            if route.access != Access::Public {
                operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
                add("401", gateway("No token, or one the authorizer does not accept (`WWW-Authenticate` says why)"));
                add(
                    "403",
                    error(if route.access == Access::Operator {
                        "`FORBIDDEN`: the token lacks the operator role"
                    } else {
                        "`FORBIDDEN`: the request names a user other than the token's"
                    }),
                );
            }
            if has_body {
                add("413", error("`PAYLOAD_TOO_LARGE`: the body is over 16 KiB"));
                add("415", error("`UNSUPPORTED_MEDIA_TYPE`: a body that is not `application/json`"));
            }
            add("429", gateway("API Gateway's route throttle: past the route's rate and burst (template.yaml), before the authorizer"));
            add("500", error("`INTERNAL_ERROR`: a bug; the body says nothing more, the log has the cause"));
            add(
                "503",
                error("`SERVICE_UNAVAILABLE`: a dependency is down or overloaded; nothing changed, retry after `Retry-After` seconds"),
            );
        }
    }
}

fn replayed_header() -> utoipa::openapi::header::Header {
    utoipa::openapi::header::HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["true"]))))
        .description(Some("`true` when this answers a retry with an earlier request's `Idempotency-Key`"))
        .build()
}

pub(super) fn operation_mut<'a>(
    item: &'a mut utoipa::openapi::PathItem,
    method: &http::Method,
) -> Option<&'a mut Operation> {
    match *method {
        http::Method::GET => item.get.as_mut(),
        http::Method::POST => item.post.as_mut(),
        http::Method::PUT => item.put.as_mut(),
        http::Method::DELETE => item.delete.as_mut(),
        http::Method::PATCH => item.patch.as_mut(),
        _ => None,
    }
}

/// A body that may be left out is derived as "the type or null"; the API takes no
/// `null` body, but no body at all.
fn optional_body_may_be_left_out(body: &mut utoipa::openapi::request_body::RequestBody) {
    use utoipa::openapi::schema::SchemaType;
    let is_null = |item: &RefOr<Schema>| matches!(item, RefOr::T(Schema::Object(object)) if object.schema_type == SchemaType::Type(Type::Null));
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else { continue };
        let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else { continue };
        let mut rest = one_of.items.iter().filter(|item| !is_null(item));
        if let (Some(only), None, true) = (rest.next(), rest.next(), one_of.items.iter().any(is_null)) {
            content.schema = Some(only.clone());
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    with_body(description, "ErrorBody")
}

fn gateway(description: &str) -> RefOr<utoipa::openapi::Response> {
    with_body(description, "GatewayMessage")
}

fn with_body(description: &str, schema: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name(schema))).build(),
        )
        .build()
        .into()
}

// --- The scalars, as their parsers accept them -------------------------------------

/// A ULID as this API issues them: 26 Crockford base-32 characters, the first at most
/// `7` (128 bits).
const ULID_PATTERN: &str = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$";

fn numeric_id(what: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .maximum(Some(UserId::MAX))
        .description(Some(format!("{what}: a positive integer (a string of digits is accepted too)")))
        .examples([serde_json::json!(1)])
        .into()
}

fn ulid(what: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(ULID_PATTERN))
        .description(Some(format!("{what}: an opaque ULID")))
        .examples([serde_json::json!("01JDQ8Z4ZV7V4E7Q2W8J5K3M9N")])
        .into()
}

/// Money in a request: a decimal string (no sign, exponent or leading zeros) or a
/// JSON number, which is read from its literal text, never through a float.
fn money_input(pattern: &str, positive: bool, max: u64, description: &str, example: &str) -> RefOr<Schema> {
    let number = ObjectBuilder::new().schema_type(Type::Number).maximum(Some(max)).multiple_of(Some(0.01));
    let number = if positive { number.exclusive_minimum(Some(0)) } else { number.minimum(Some(0)) };
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)))
        .item(number)
        .description(Some(description))
        .examples([serde_json::json!(example)])
        .into()
}

macro_rules! scalar {
    ($($ty:ty => $schema:expr;)*) => {
        $(
            impl PartialSchema for $ty {
                fn schema() -> RefOr<Schema> {
                    $schema
                }
            }

            impl ToSchema for $ty {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($ty))
                }
            }
        )*
    };
}

scalar! {
    UserId => numeric_id("A customer");
    ProductId => numeric_id("A product");
    CouponId => numeric_id("A coupon");
    OrderId => ulid("An order");
    PaymentId => ulid("A payment");
    EntryId => ulid("A balance-history entry");
    Quantity => ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(Quantity::MAX))
        .into();
    Money => ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^[0-9]+\.[0-9]{2}$"))
        .description(Some("An amount of money: a decimal string with two fractional digits"))
        .examples([serde_json::json!("1000.00")])
        .into();
    Amount => money_input(
        r"^([1-9][0-9]{0,6}(\.[0-9]{1,2})?|10000000(\.0{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$",
        true,
        10_000_000,
        "An amount to move: more than 0, at most 10000000.00, at most 2 fractional digits",
        "250.00",
    );
    Price => money_input(
        r"^((0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?|1000000000(\.0{1,2})?)$",
        false,
        1_000_000_000,
        "A price: from 0 to 1000000000.00, at most 2 fractional digits",
        "1000.00",
    );
    DisplayName => ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(DisplayName::MAX_CHARS))
        .pattern(Some(DisplayName::pattern()))
        .description(Some(
            "A name shown to customers: no blank edges, no control characters, no invisible ones \
             (bidirectional controls, zero-width characters)",
        ))
        .examples([serde_json::json!("Espresso beans 1 kg")])
        .into();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> serde_json::Value {
        serde_json::from_str(&document_json()).expect("JSON")
    }

    fn operation<'a>(document: &'a serde_json::Value, method: &http::Method, path: &str) -> &'a serde_json::Value {
        &document["paths"][path][method.as_str().to_ascii_lowercase()]
    }

    #[test]
    fn every_route_is_an_operation_named_after_its_function_with_its_access() {
        let document = document();
        for route in ROUTES {
            let operation = operation(&document, &route.method, route.path);
            assert_eq!(operation["operationId"], route.function, "{route:?}");
            let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            assert_eq!(secured, route.access != Access::Public, "{route:?}");
            let responses = operation["responses"].as_object().expect("responses");
            assert_eq!(responses.contains_key("401"), route.access != Access::Public, "{route:?}");
            for status in ["429", "500", "503"] {
                assert!(responses.contains_key(status), "{route:?} {status}");
            }
            let success: Vec<&String> = responses.keys().filter(|s| s.starts_with('2')).collect();
            assert_eq!(success.len(), 1, "{route:?}: one success status");
            for (status, response) in responses {
                let schema = &response["content"]["application/json"]["schema"];
                assert!(schema.is_object(), "{route:?} {status}: a JSON body with a schema");
            }
        }
    }

    /// Every error code the API can answer ([`Code::ALL`]: an answer can carry no
    /// other) is named in the document, so a client reading it knows every code it may
    /// meet. A 401 has API Gateway's body, which carries no code.
    #[test]
    fn every_error_code_is_documented() {
        use crate::http::Code;
        let text = document_json();
        let missing: Vec<&str> = Code::ALL
            .iter()
            .filter(|code| **code != Code::Unauthorized)
            .map(|code| code.as_str())
            .filter(|code| !text.contains(&format!("`{code}`")))
            .collect();
        assert!(missing.is_empty(), "codes the document never names: {missing:?}");
    }

    #[test]
    fn money_is_a_decimal_string_in_answers_and_a_string_or_a_number_in_requests() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        assert_eq!(schemas["Money"]["type"], "string");
        let amount = schemas["Amount"]["anyOf"].as_array().expect("anyOf");
        let types: Vec<&str> = amount.iter().filter_map(|s| s["type"].as_str()).collect();
        assert_eq!(types, ["string", "number"]);
        assert_eq!(schemas["ChangeRequest"]["additionalProperties"], false, "unknown fields are refused");
    }

    /// What utoipa 5 wrote wrongly and 6 derives (a product change's `minProperties`,
    /// the links' `operationId`), and what `amend` adds.
    #[test]
    fn a_product_change_needs_a_property_error_bodies_are_closed_and_a_new_order_links_on() {
        let document = document();
        let change = &document["components"]["schemas"]["ProductChangeRequest"];
        assert_eq!((change["minProperties"].as_u64(), change.get("maxProperties")), (Some(1), None));
        // A function's 429 body is an ErrorBody and not also a GatewayMessage.
        for shape in ["ErrorBody", "GatewayMessage"] {
            assert_eq!(document["components"]["schemas"][shape]["additionalProperties"], false, "{shape}");
        }
        let links = &document["paths"]["/api/v1/orders"]["post"]["responses"]["201"]["links"];
        for (name, operation) in [("GetOrder", "get-order"), ("PayOrder", "pay-order"), ("CancelOrder", "cancel-order")]
        {
            assert_eq!(links[name]["operationId"], operation, "{name}");
            assert!(operation_exists(&document, operation), "{operation}");
        }
    }

    fn operation_exists(document: &serde_json::Value, id: &str) -> bool {
        let paths = document["paths"].as_object().into_iter().flatten();
        paths.flat_map(|(_, item)| item.as_object().into_iter().flatten()).any(|(_, op)| op["operationId"] == id)
    }
}
