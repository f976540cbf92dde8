//! Request extractors that fail with [`AppError`]s naming the field: JSON
//! bodies, query strings, and the bearer-token roles.

use std::borrow::Cow;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// A JSON body, decoded with the path of the first bad field.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                AppError::Client {
                    status,
                    code: "request.too_large",
                    field: Some("body".to_owned()),
                    message: "the request body is larger than the server accepts".to_owned(),
                }
            } else {
                AppError::bad_request("request.body", Some("body".to_owned()), rejection.body_text())
            }
        })?;
        decode_json(&bytes).map(ApiJson)
    }
}

/// Decodes JSON, reporting the path of the offending field.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    // Most bodies are valid: decode them directly, and decode again with
    // path tracking only to name the field of an invalid one.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." || path.is_empty() { "body".to_owned() } else { path };
        let code = if inner.is_syntax() || inner.is_eof() { "request.malformed_json" } else { "request.invalid_field" };
        AppError::bad_request(code, Some(field), inner.to_string())
    })?;
    de.end().map_err(|e| AppError::bad_request("request.malformed_json", Some("body".to_owned()), e.to_string()))?;
    Ok(value)
}

/// A query string, decoded with the name of the first bad parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() { "query".to_owned() } else { path };
            AppError::bad_request("request.invalid_query", Some(field), e.into_inner().to_string())
        })
    }
}

/// A role a bearer token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// May read runs, plugins and snapshots, and ask for runs.
    Read,
    /// May also ingest data and manage plugins.
    Admin,
}

/// The tokens the server accepts.
///
/// A configured token is either the token itself or `sha256:` and the 64
/// hex digits of its SHA-256 (`printf %s "$TOKEN" | sha256sum`), so a
/// configuration file need not hold the secret. Either way a presented
/// token is compared in time independent of where it differs, and
/// [`Auth`]'s `Debug` shows how many tokens there are, never one.
#[derive(Clone, Default)]
pub struct Auth {
    /// Tokens granting [`Role::Read`].
    pub read_tokens: Vec<String>,
    /// Tokens granting [`Role::Admin`] (and read).
    pub admin_tokens: Vec<String>,
    /// Accept requests without a token as admin: for a laptop, never a
    /// shared network. By default false.
    pub insecure_local: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("read_tokens", &self.read_tokens.len())
            .field("admin_tokens", &self.admin_tokens.len())
            .field("insecure_local", &self.insecure_local)
            .finish()
    }
}

/// The prefix of a token given as its digest.
const HASHED: &str = "sha256:";

impl Auth {
    /// Checks the configured tokens: none empty, every `sha256:` one
    /// followed by 64 hex digits. The error names the list and position,
    /// never the token.
    pub fn check(&self) -> Result<(), String> {
        for (list, tokens) in [("read", &self.read_tokens), ("admin", &self.admin_tokens)] {
            for (i, token) in tokens.iter().enumerate() {
                if token.trim().is_empty() {
                    return Err(format!("{list} token {} is empty", i + 1));
                }
                if let Some(hex) = token.strip_prefix(HASHED)
                    && !(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    return Err(format!("{list} token {} starts with `{HASHED}` but is not 64 hex digits", i + 1));
                }
            }
        }
        Ok(())
    }

    /// The role a request's `Authorization` header grants.
    pub fn role(&self, header: Option<&str>) -> Result<Role, AppError> {
        self.identify(header).map(|identity| identity.role)
    }

    /// Who a request's `Authorization` header says the caller is: the
    /// role and the token's subject.
    pub fn identify(&self, header: Option<&str>) -> Result<Identity, AppError> {
        let Some(header) = header else {
            if self.insecure_local {
                return Ok(Identity { role: Role::Admin, subject: "local".to_owned() });
            }
            return Err(AppError::unauthorized("missing `Authorization: Bearer <token>` header"));
        };
        let Some(token) = header.strip_prefix("Bearer ").map(str::trim) else {
            return Err(AppError::unauthorized("the `Authorization` header must be `Bearer <token>`"));
        };
        let digest = polis_core::canonical::Digest::of_bytes(token.as_bytes()).to_hex();
        let accepts = |configured: &String| match configured.strip_prefix(HASHED) {
            Some(hex) => same(&hex.to_ascii_lowercase(), &digest),
            None => same(configured, token),
        };
        let role = if self.admin_tokens.iter().any(accepts) {
            Role::Admin
        } else if self.read_tokens.iter().any(accepts) {
            Role::Read
        } else {
            return Err(AppError::unauthorized("unknown bearer token"));
        };
        Ok(Identity { role, subject: subject_of(token) })
    }
}

/// Who made a request: the role its token grants and the token's subject,
/// for audit records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The role.
    pub role: Role,
    /// `token:` and the first 12 hex digits of the token's SHA-256, so an
    /// audit record says which token acted without holding it; `local` for
    /// a tokenless request to an insecure local server.
    pub subject: String,
}

impl Identity {
    /// Whether this caller may act on a job `submitted_by` someone: an
    /// admin may act on any, a reader only on what its own token
    /// submitted.
    pub fn may_act_on(&self, submitted_by: Option<&str>) -> Result<(), AppError> {
        if self.role == Role::Admin || submitted_by == Some(self.subject.as_str()) {
            return Ok(());
        }
        Err(AppError::forbidden("this call needs an admin token or the token that submitted the run"))
    }
}

/// A token's subject: a prefix of its digest, never the token.
fn subject_of(token: &str) -> String {
    let hex = polis_core::canonical::Digest::of_bytes(token.as_bytes()).to_hex();
    format!("token:{}", &hex[..12])
}

impl<S: Send + Sync> FromRequestParts<S> for Identity
where
    Arc<Auth>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        Arc::<Auth>::from_ref(state).identify(header(parts).as_deref())
    }
}

/// Proof the caller is an admin, with who they are.
#[derive(Debug, Clone)]
pub struct AdminIdentity(pub Identity);

impl<S: Send + Sync> FromRequestParts<S> for AdminIdentity
where
    Arc<Auth>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let identity = Arc::<Auth>::from_ref(state).identify(header(parts).as_deref())?;
        match identity.role {
            Role::Admin => Ok(AdminIdentity(identity)),
            Role::Read => Err(AppError::forbidden("this call needs an admin token")),
        }
    }
}

/// Compares tokens in time independent of where they first differ.
fn same(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Authorization` header, or a bearer token from the `polis_token`
/// cookie (so that a browser can open the console).
fn header(parts: &Parts) -> Option<Cow<'_, str>> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return Some(Cow::Borrowed(value));
    }
    let cookies = parts.headers.get(axum::http::header::COOKIE).and_then(|v| v.to_str().ok())?;
    cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == "polis_token")
        .map(|(_, token)| Cow::Owned(format!("Bearer {token}")))
}

/// Proof the caller may read. Any state that can hand out the [`Auth`]
/// (the core's, or a domain's own) authenticates the same way.
#[derive(Debug, Clone, Copy)]
pub struct ReadAccess;

impl<S: Send + Sync> FromRequestParts<S> for ReadAccess
where
    Arc<Auth>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        Arc::<Auth>::from_ref(state).role(header(parts).as_deref()).map(|_| ReadAccess)
    }
}

/// Proof the caller is an admin.
#[derive(Debug, Clone, Copy)]
pub struct AdminAccess;

impl<S: Send + Sync> FromRequestParts<S> for AdminAccess
where
    Arc<Auth>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match Arc::<Auth>::from_ref(state).role(header(parts).as_deref())? {
            Role::Admin => Ok(AdminAccess),
            Role::Read => Err(AppError::forbidden("this call needs an admin token")),
        }
    }
}

/// Integers that JSON writes with a zero fraction, such as `1704101400.0`:
/// JSON Schema's `integer` admits them, so the API does too.
pub mod integral {
    use serde::de::{Deserialize, Deserializer, Error};

    fn to_i64<E: Error>(n: &serde_json::Number) -> Result<i64, E> {
        if let Some(i) = n.as_i64() {
            return Ok(i);
        }
        match n.as_f64() {
            // Bounds are exclusive above: i64::MAX is not representable as f64.
            Some(f) if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) => {
                Ok(f as i64)
            }
            _ => Err(E::custom(format!("invalid value: `{n}`, expected an integer"))),
        }
    }

    /// An `i64`, from an integer or an integral number.
    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        to_i64(&serde_json::Number::deserialize(d)?)
    }

    /// An optional `u32`, from an integer or an integral number.
    pub fn option_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
            return Ok(None);
        };
        let i = to_i64(&n)?;
        u32::try_from(i).map(Some).map_err(|_| D::Error::custom(format!("invalid value: `{n}`, expected a u32")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth {
            read_tokens: vec!["reader-secret".into()],
            admin_tokens: vec!["ops-secret".into()],
            insecure_local: false,
        }
    }

    #[test]
    fn a_token_is_identified_by_a_digest_prefix_never_by_itself() {
        let identity = auth().identify(Some("Bearer ops-secret")).unwrap();
        assert_eq!(identity.role, Role::Admin);
        assert!(identity.subject.starts_with("token:") && identity.subject.len() == 18, "{}", identity.subject);
        assert!(!identity.subject.contains("ops-secret"));
        let reader = auth().identify(Some("Bearer reader-secret")).unwrap();
        assert_eq!(reader.role, Role::Read);
        assert_ne!(reader.subject, identity.subject);
    }

    #[test]
    fn a_token_configured_as_its_digest_is_accepted_and_a_bad_digest_refused_at_start() {
        let hex = polis_core::canonical::Digest::of_bytes(b"ops-secret").to_hex();
        let hashed = Auth { admin_tokens: vec![format!("sha256:{}", hex.to_uppercase())], ..auth() };
        assert_eq!(hashed.check(), Ok(()));
        let identity = hashed.identify(Some("Bearer ops-secret")).unwrap();
        assert_eq!(identity, auth().identify(Some("Bearer ops-secret")).unwrap());
        assert!(hashed.identify(Some(&format!("Bearer sha256:{hex}"))).is_err(), "the digest is not the token");
        let bad = Auth { read_tokens: vec!["sha256:abc".into()], ..auth() };
        let error = bad.check().unwrap_err();
        assert!(error.contains("read token 1") && !error.contains("abc"), "{error}");
        let shown = format!("{:?}", auth());
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn only_an_admin_or_the_submitter_may_act_on_a_job() {
        let reader = auth().identify(Some("Bearer reader-secret")).unwrap();
        let admin = auth().identify(Some("Bearer ops-secret")).unwrap();
        assert!(reader.may_act_on(Some(&reader.subject)).is_ok());
        assert!(reader.may_act_on(Some(&admin.subject)).is_err());
        assert!(reader.may_act_on(None).is_err());
        assert!(admin.may_act_on(Some(&reader.subject)).is_ok());
        assert!(admin.may_act_on(None).is_ok());
    }

    #[test]
    fn a_tokenless_request_is_local_only_on_an_insecure_server() {
        assert!(auth().identify(None).is_err());
        let local = Auth { insecure_local: true, ..auth() }.identify(None).unwrap();
        assert_eq!((local.role, local.subject.as_str()), (Role::Admin, "local"));
    }
}
