//! The local token issuer, and the checks API Gateway's JWT authorizer makes.
//!
//! `make run` plays both sides of sign-in. As the issuer it holds an RSA signing key
//! (RS256: an HTTP API JWT authorizer accepts only RSA), publishes it as a JWKS with
//! OIDC discovery, and mints access tokens shaped like Cognito's (`client_id`,
//! `token_use`, `cognito:groups`, and the shop's user id as `shop_user_id`). As the
//! authorizer it verifies every token on a protected route as API Gateway does —
//! the signature by `kid` from the JWKS, an allow-list of RSA algorithms (so no
//! `none`, no HS* signed with the public key), `iss`, `aud` or `client_id`, `exp` and
//! `nbf` with a small leeway — and hands the claims on with every value a string, as
//! API Gateway does (arrays rendered `[a b]`).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rushcart::identity::ClaimNames;
use rushcart::ids::UserId;
use serde_json::{json, Map, Value};

/// The audience (Cognito: the app client id) the local tokens are for.
pub const LOCAL_AUDIENCE: &str = "rushcart-local";
/// How long a minted token lives (Cognito's default for access tokens).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// How far `exp` and `nbf` may be off.
const LEEWAY_SECONDS: u64 = 5;
/// The algorithms an HTTP API JWT authorizer accepts: RSA only.
const ACCEPTED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];

pub struct LocalIssuer {
    issuer: String,
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    decoding: DecodingKey,
    claim_names: ClaimNames,
}

/// The verified claims, each a string, as the authorizer passes them on.
pub type Claims = HashMap<String, String>;

impl LocalIssuer {
    /// A new issuer named `issuer` (its URL) with a fresh 2048-bit RSA key.
    pub fn generate(issuer: impl Into<String>) -> anyhow::Result<LocalIssuer> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow!("generate an RSA key"))?;
        let pkcs8 = pair.as_der().map_err(|_| anyhow!("encode the RSA key"))?;
        LocalIssuer::with_key(issuer, &pem_of("PRIVATE KEY", pkcs8.as_ref()))
    }

    /// An issuer named `issuer` whose key lives in the PEM file at `path`: read if it is
    /// there, else made and written (readable by its owner only). A local API started
    /// again on the same file signs with the same key under the same `kid`, so the
    /// tokens it minted before still verify: as deployed, where a Lambda instance killed
    /// at its timeout changes nothing about the user pool's keys.
    pub fn from_file(issuer: impl Into<String>, path: &std::path::Path) -> anyhow::Result<LocalIssuer> {
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                LocalIssuer::with_key(issuer, &pem).with_context(|| format!("the signing key in {}", path.display()))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow!("generate an RSA key"))?;
                let pkcs8 = pair.as_der().map_err(|_| anyhow!("encode the RSA key"))?;
                let pem = pem_of("PRIVATE KEY", pkcs8.as_ref());
                write_private(path, &pem).with_context(|| format!("write the signing key to {}", path.display()))?;
                LocalIssuer::with_key(issuer, &pem)
            }
            Err(err) => Err(err).with_context(|| format!("read the signing key {}", path.display())),
        }
    }

    /// An issuer named `issuer` signing with the PKCS#8 RSA key in `pem`; its `kid`
    /// names the key (a digest of its public half), so the same key has the same one.
    fn with_key(issuer: impl Into<String>, pem: &str) -> anyhow::Result<LocalIssuer> {
        let der = der_of(pem, "PRIVATE KEY")?;
        let pair = KeyPair::from_pkcs8(&der).map_err(|_| anyhow!("not a PKCS#8 RSA private key"))?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).context("load the signing key")?;
        let public = pair.public_key();
        let modulus = public.modulus().big_endian_without_leading_zero();
        let n = URL_SAFE_NO_PAD.encode(modulus);
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, modulus);
        let kid = format!("local-{}", &URL_SAFE_NO_PAD.encode(digest.as_ref())[..12]);
        let jwk = json!({ "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": n, "e": e });
        let decoding = DecodingKey::from_jwk(&serde_json::from_value::<Jwk>(jwk.clone())?).context("the public JWK")?;
        Ok(LocalIssuer { issuer: issuer.into(), kid, encoding, jwk, decoding, claim_names: ClaimNames::default() })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `{"keys": [...]}`, as at the issuer's `jwks_uri`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// The OIDC discovery document.
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/jwks.json", self.issuer),
            "token_endpoint": format!("{}/token", self.issuer),
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    }

    /// An access token for `user`, in the operators' group if `operator`.
    pub fn mint(&self, user: UserId, operator: bool) -> anyhow::Result<String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = json!({
            "sub": format!("local-user-{user}"),
            "iss": self.issuer,
            "client_id": LOCAL_AUDIENCE,
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin",
            "username": format!("user-{user}"),
            "auth_time": now,
            "iat": now,
            "exp": now + TOKEN_LIFETIME.as_secs() as i64,
            "jti": ulid::Ulid::generate().to_string(),
        });
        claims[self.claim_names.user.as_str()] = json!(user.to_string());
        if operator {
            claims[self.claim_names.roles.as_str()] = json!([self.claim_names.operator_role]);
        }
        self.sign(&claims)
    }

    /// Signs any claims with this issuer's key and `kid` (tests make bad tokens so).
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("sign a token")
    }

    /// Checks an `Authorization` header as API Gateway's JWT authorizer does; the
    /// claims as it passes them on, or why the token is refused.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Claims, String> {
        let header = authorization.ok_or("no token")?;
        let token = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).unwrap_or(header).trim();
        let head = jsonwebtoken::decode_header(token).map_err(|_| "the token is malformed")?;
        if head.kid.as_deref() != Some(self.kid.as_str()) {
            return Err("no key with the token's kid".to_owned());
        }
        if !ACCEPTED.contains(&head.alg) {
            return Err(format!("algorithm {:?} is not accepted", head.alg));
        }
        let mut validation = Validation::new(head.alg);
        validation.algorithms = ACCEPTED.to_vec();
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                    jsonwebtoken::errors::ErrorKind::ImmatureSignature => "the token is not valid yet".to_owned(),
                    jsonwebtoken::errors::ErrorKind::InvalidIssuer => "the token is from another issuer".to_owned(),
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => "the signature does not verify".to_owned(),
                    jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim}"),
                    _ => "the token is not valid".to_owned(),
                }
            })?;
        let claims = data.claims;
        // As API Gateway: `aud` decides when the token has one; `client_id` otherwise.
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => aud == LOCAL_AUDIENCE,
            Some(Value::Array(auds)) => auds.iter().any(|aud| aud == LOCAL_AUDIENCE),
            Some(_) => false,
            None => claims.get("client_id").and_then(Value::as_str) == Some(LOCAL_AUDIENCE),
        };
        if !audience_ok {
            return Err("the token is for another audience".to_owned());
        }
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("the token is from another issuer".to_owned());
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match claims.get("iat").map(Value::as_i64) {
            Some(Some(issued)) if issued <= now + LEEWAY_SECONDS as i64 => {}
            Some(_) => return Err("the token was issued in the future".to_owned()),
            None => {}
        }
        Ok(claims.into_iter().map(|(name, value)| (name, as_gateway_string(&value))).collect())
    }
}

/// A claim's value as API Gateway passes it: strings as they are, arrays as `[a b]`,
/// anything else as its JSON text.
fn as_gateway_string(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(as_gateway_string).collect::<Vec<_>>().join(" ")),
        other => other.to_string(),
    }
}

/// The DER inside a PEM block labelled `label`.
fn der_of(pem: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    let (begin, end) = (format!("-----BEGIN {label}-----"), format!("-----END {label}-----"));
    let body = pem
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .ok_or_else(|| anyhow!("no {label} PEM block"))?;
    let body: String = body.split_whitespace().collect();
    STANDARD.decode(body).context("the PEM block's base64")
}

/// Writes `contents` to a new file at `path` that only its owner may read.
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())
}

fn pem_of(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> =
        body.as_bytes().chunks(64).map(|line| std::str::from_utf8(line).unwrap_or_default()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_started_again_on_its_key_file_signs_as_before_and_its_tokens_still_verify() {
        let dir = std::env::temp_dir().join(format!("rushcart-issuer-{}", ulid::Ulid::generate()));
        let path = dir.join("keys").join("issuer.pem");
        let first = LocalIssuer::from_file("http://127.0.0.1:3000/_local", &path).unwrap();
        let token = first.mint(UserId::new(7).unwrap(), true).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "the key file is its owner's alone");
        let again = LocalIssuer::from_file("http://127.0.0.1:3000/_local", &path).unwrap();
        assert_eq!((again.kid(), again.jwks()), (first.kid(), first.jwks()));
        let bearer = format!("Bearer {token}");
        let claims = again.verify(Some(&bearer)).expect("a token minted before the restart");
        assert_eq!(claims["shop_user_id"], "7");
        let other = LocalIssuer::generate("http://127.0.0.1:3000/_local").unwrap();
        assert_ne!(other.kid(), first.kid(), "another key, another kid");
        assert!(other.verify(Some(&bearer)).is_err());
        std::fs::write(&path, "not a key").unwrap();
        assert!(
            LocalIssuer::from_file("http://127.0.0.1:3000/_local", &path).is_err(),
            "a broken file stops the start"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_minted_token_verifies_and_carries_the_user_and_roles_as_strings() {
        let issuer = LocalIssuer::generate("http://127.0.0.1:3000/_local").unwrap();
        let token = issuer.mint(UserId::new(42).unwrap(), true).unwrap();
        let claims = issuer.verify(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(claims["shop_user_id"], "42");
        assert_eq!(claims["cognito:groups"], "[operators]");
        assert_eq!(claims["client_id"], LOCAL_AUDIENCE);
        assert!(claims["exp"].parse::<i64>().is_ok());
    }

    #[test]
    fn another_issuers_token_is_refused_by_its_kid() {
        let ours = LocalIssuer::generate("http://127.0.0.1:3000/_local").unwrap();
        let theirs = LocalIssuer::generate("http://127.0.0.1:3000/_local").unwrap();
        let token = theirs.mint(UserId::new(1).unwrap(), false).unwrap();
        assert!(ours.verify(Some(&token)).unwrap_err().contains("kid"));
    }
}
