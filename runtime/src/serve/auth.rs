//! API keys: who may call which model, and who may use the repository API.
//!
//! A key arrives as `Authorization: Bearer KEY` or `X-Api-Key: KEY` (HTTP
//! headers or gRPC metadata). Keys are held as sha256 digests and the
//! presented key's digest is compared with every configured one in constant
//! time ([`subtle`]), without stopping at a match, so timing says nothing
//! about which key or how much of it matched. Keys are never logged.
//! kiln.toml may hold the digest itself (`key_sha256`). The keys can be
//! replaced while serving ([`Auth::replace`], on SIGHUP or a config change):
//! each request checks against the set current when it arrives.
//! With no keys configured, everything is open (and the server binds to
//! loopback only; see `serve::mod`).

use std::sync::{Arc, RwLock};

use axum::http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::KeyConfig;
use super::error::ApiError;
use crate::registry::Principal;

/// What a request wants to do.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Infer with, or read the metadata of, this model.
    Model(&'a str),
    /// Use the repository API (index, load, unload).
    Admin,
    /// Read `/metrics` (a Prometheus scrape key, or an admin key).
    Metrics,
}

struct Key {
    digest: [u8; 32],
    /// Stays the same across reloads while the key does: requests of one
    /// key, and only those, may share a batch.
    id: usize,
    models: Vec<String>,
    admin: bool,
    metrics: bool,
}

/// The configured keys.
pub struct Auth {
    keys: RwLock<Keys>,
}

struct Keys {
    current: Arc<[Key]>,
    next_id: usize,
}

impl Auth {
    pub fn new(keys: &[KeyConfig]) -> Auth {
        let auth = Auth {
            keys: RwLock::new(Keys {
                current: Arc::new([]),
                next_id: 0,
            }),
        };
        auth.replace(keys);
        auth
    }

    /// Serves `keys` from now on; requests already checked are not
    /// affected.
    pub fn replace(&self, keys: &[KeyConfig]) {
        let mut held = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let mut next_id = held.next_id;
        let new: Vec<Key> = keys
            .iter()
            .filter_map(|k| {
                let digest = k.digest()?;
                let id = match held.current.iter().find(|old| old.digest == digest) {
                    Some(old) => old.id,
                    None => {
                        next_id += 1;
                        next_id - 1
                    }
                };
                Some(Key {
                    digest,
                    id,
                    models: k.models.clone(),
                    admin: k.admin,
                    metrics: k.metrics,
                })
            })
            .collect();
        *held = Keys {
            current: new.into(),
            next_id,
        };
    }

    fn current(&self) -> Arc<[Key]> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .current
            .clone()
    }

    /// Whether any key is configured (otherwise everything is open).
    pub fn enabled(&self) -> bool {
        !self.current().is_empty()
    }

    /// 401 without a (known) key, 403 with a key that lacks `scope`.
    pub fn check(&self, presented: Option<&str>, scope: Scope<'_>) -> Result<(), ApiError> {
        self.principal(presented, scope).map(|_| ())
    }

    /// [`Auth::check`], also saying who the caller is.
    pub fn principal(
        &self,
        presented: Option<&str>,
        scope: Scope<'_>,
    ) -> Result<Principal, ApiError> {
        let keys = self.current();
        let Some(key) = find(&keys, presented)? else {
            return Ok(Principal::ANYONE);
        };
        let allowed = match scope {
            Scope::Admin => key.admin,
            Scope::Metrics => key.admin || key.metrics,
            Scope::Model(m) => key.admin || key.models.iter().any(|k| k == "*" || k == m),
        };
        if allowed {
            Ok(Principal::key(key.id))
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                match scope {
                    Scope::Admin => "this API key may not use the repository API".to_string(),
                    Scope::Metrics => {
                        "this API key may not read /metrics (it needs `metrics = true` or `admin = true`)"
                            .to_string()
                    }
                    Scope::Model(m) => format!("this API key may not use model `{m}`"),
                },
            ))
        }
    }

    /// 401 without a (known) key, whatever it may do.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<(), ApiError> {
        find(&self.current(), presented).map(|_| ())
    }
}

/// The configured key `presented` is (`None` when no key is configured), or
/// 401.
fn find<'k>(keys: &'k [Key], presented: Option<&str>) -> Result<Option<&'k Key>, ApiError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let Some(presented) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this server needs an API key: send `Authorization: Bearer KEY` or `X-Api-Key: KEY`",
        ));
    };
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found: Option<&Key> = None;
    for key in keys {
        // No early exit: every key is compared.
        if bool::from(key.digest.ct_eq(&digest)) {
            found = Some(key);
        }
    }
    found
        .map(Some)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown API key"))
}

/// The key a request presents, from `Authorization: Bearer` or `X-Api-Key`.
pub(crate) fn presented(headers: &HeaderMap) -> Option<&str> {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
    key_from(get("authorization"), get("x-api-key"))
}

/// The key in an `Authorization: Bearer KEY` value, else in `X-Api-Key`.
pub(crate) fn key_from<'a>(
    authorization: Option<&'a str>,
    api_key: Option<&'a str>,
) -> Option<&'a str> {
    authorization
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or(api_key)
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(&[
            KeyConfig {
                key: Some("user-key-0123456789".into()),
                key_sha256: None,
                models: vec!["a".into()],
                admin: false,
                metrics: false,
            },
            KeyConfig {
                key: Some("scrape-key-0123456789".into()),
                key_sha256: None,
                models: vec![],
                admin: false,
                metrics: true,
            },
            KeyConfig {
                key: Some("admin-key-0123456789".into()),
                key_sha256: None,
                models: vec![],
                admin: true,
                metrics: false,
            },
        ])
    }

    #[test]
    fn scopes() {
        let a = auth();
        let code = |k: Option<&str>, s| a.check(k, s).map_err(|e| e.status.as_u16());
        assert_eq!(code(None, Scope::Model("a")), Err(401));
        assert_eq!(code(Some("wrong"), Scope::Model("a")), Err(401));
        assert_eq!(code(Some("user-key-0123456789"), Scope::Model("a")), Ok(()));
        assert_eq!(
            code(Some("user-key-0123456789"), Scope::Model("b")),
            Err(403)
        );
        assert_eq!(code(Some("user-key-0123456789"), Scope::Admin), Err(403));
        assert_eq!(code(Some("admin-key-0123456789"), Scope::Admin), Ok(()));
        assert_eq!(
            code(Some("admin-key-0123456789"), Scope::Model("b")),
            Ok(())
        );
        assert_eq!(code(None, Scope::Metrics), Err(401));
        assert_eq!(code(Some("user-key-0123456789"), Scope::Metrics), Err(403));
        assert_eq!(code(Some("scrape-key-0123456789"), Scope::Metrics), Ok(()));
        assert_eq!(
            code(Some("scrape-key-0123456789"), Scope::Model("a")),
            Err(403)
        );
        assert_eq!(code(Some("admin-key-0123456789"), Scope::Metrics), Ok(()));
        assert!(Auth::new(&[]).check(None, Scope::Admin).is_ok());
        assert!(Auth::new(&[]).check(None, Scope::Metrics).is_ok());
    }

    #[test]
    fn replaced_keys_apply_to_the_next_check_and_a_kept_key_keeps_its_principal() {
        let a = auth();
        let principal = |k| a.principal(Some(k), Scope::Model("a")).unwrap();
        let user = principal("user-key-0123456789");
        let new = KeyConfig {
            key: Some("new-key-0123456789".into()),
            key_sha256: None,
            models: vec!["a".into()],
            admin: false,
            metrics: false,
        };
        // The user key moves to second place; a new key comes first.
        let kept = KeyConfig {
            key: Some("user-key-0123456789".into()),
            key_sha256: None,
            models: vec!["a".into()],
            admin: false,
            metrics: false,
        };
        a.replace(&[new.clone(), kept]);
        assert_eq!(principal("user-key-0123456789"), user);
        assert_ne!(principal("new-key-0123456789"), user);
        let code = |k: &str| {
            a.check(Some(k), Scope::Admin)
                .map_err(|e| e.status.as_u16())
        };
        assert_eq!(code("admin-key-0123456789"), Err(401));
        a.replace(&[new]);
        assert_eq!(
            a.check(Some("user-key-0123456789"), Scope::Model("a"))
                .map_err(|e| e.status.as_u16()),
            Err(401)
        );
    }
}
