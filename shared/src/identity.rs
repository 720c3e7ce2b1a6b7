//! Who is acting.
//!
//! Deployed, an API Gateway JWT authorizer verifies the bearer token and hands the
//! function its claims (`requestContext.authorizer.jwt.claims`, every claim a
//! string). The shop's numeric user id is one claim (`shop_user_id` by default, put
//! into Cognito's tokens by the `token-claims` trigger), the roles another
//! (`cognito:groups`); a shop with its own OIDC issuer names both. A request acts for
//! the token's user and no one else; operator routes need the operator role.
//!
//! Locally, `AUTH=off` is the baseline's trust-the-client mode ([`Identity::TrustClient`]):
//! the client names the user, for the baseline's own load client. Only the local API
//! can choose it; the functions' own set-up never does.
//!
//! Signing up gives a new user the next numeric user id and an empty balance
//! ([`UserRegistry`]).

use std::collections::HashMap;
use std::future::Future;

use crate::ids::UserId;

/// How a function learns who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// From the verified claims the authorizer passes on.
    Claims(ClaimNames),
    /// The client names the user (local `AUTH=off` only).
    TrustClient,
}

/// Which claims carry the shop's user id and the roles, and which role is the
/// operator's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub user: String,
    pub roles: String,
    pub operator_role: String,
}

impl Default for ClaimNames {
    fn default() -> ClaimNames {
        ClaimNames {
            user: "shop_user_id".to_owned(),
            roles: "cognito:groups".to_owned(),
            operator_role: "operators".to_owned(),
        }
    }
}

impl ClaimNames {
    /// From `USER_ID_CLAIM`, `ROLES_CLAIM` and `OPERATOR_ROLE` (template parameters),
    /// defaulting to Cognito's.
    pub fn from_env() -> ClaimNames {
        let default = ClaimNames::default();
        let var = |name: &str, default: String| std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or(default);
        ClaimNames {
            user: var("USER_ID_CLAIM", default.user),
            roles: var("ROLES_CLAIM", default.roles),
            operator_role: var("OPERATOR_ROLE", default.operator_role),
        }
    }
}

/// The caller a token describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The shop user the token acts for; `None` when it names none (or not a number).
    pub user: Option<UserId>,
    pub operator: bool,
}

impl Caller {
    /// Reads the caller from the authorizer's claims.
    pub fn from_claims(claims: &HashMap<String, String>, names: &ClaimNames) -> Caller {
        let user = claims.get(&names.user).and_then(|text| text.parse().ok());
        let operator = claims.get(&names.roles).is_some_and(|roles| roles_in(roles).any(|r| r == names.operator_role));
        Caller { user, operator }
    }
}

/// The roles in a roles claim as API Gateway passes it: `[a b]` (its rendering of an
/// array), a JSON array, or a single role.
pub fn roles_in(claim: &str) -> impl Iterator<Item = &str> {
    let inner = claim.trim().trim_start_matches('[').trim_end_matches(']');
    inner.split([' ', ',']).map(|role| role.trim().trim_matches('"')).filter(|role| !role.is_empty())
}

#[derive(Debug, thiserror::Error)]
pub enum SignUpError {
    #[error("a dependency is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The shop's users by their identity provider's subject (`sub`).
pub trait UserRegistry: Send + Sync {
    /// The user id of `subject`; a subject seen for the first time gets the next id and
    /// an empty balance, exactly once however often it is asked.
    fn user_for(
        &self,
        subject: &str,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<UserId, SignUpError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn roles_come_in_api_gateways_array_rendering_json_or_alone() {
        assert_eq!(roles_in("[operators admins]").collect::<Vec<_>>(), ["operators", "admins"]);
        assert_eq!(roles_in(r#"["operators","admins"]"#).collect::<Vec<_>>(), ["operators", "admins"]);
        assert_eq!(roles_in("operators").collect::<Vec<_>>(), ["operators"]);
        assert_eq!(roles_in("[]").count(), 0);
    }

    #[test]
    fn the_caller_is_the_tokens_user_and_an_operator_only_with_the_role() {
        let names = ClaimNames::default();
        let customer = Caller::from_claims(&claims(&[("shop_user_id", "42"), ("sub", "x")]), &names);
        assert_eq!(customer, Caller { user: Some(UserId::new(42).unwrap()), operator: false });
        let operator =
            Caller::from_claims(&claims(&[("shop_user_id", "7"), ("cognito:groups", "[operators]")]), &names);
        assert!(operator.operator);
        let lookalike = Caller::from_claims(&claims(&[("cognito:groups", "[operators-trainee]")]), &names);
        assert_eq!(lookalike, Caller { user: None, operator: false });
        let garbage = Caller::from_claims(&claims(&[("shop_user_id", "-1")]), &names);
        assert_eq!(garbage.user, None);
    }
}
