//! Local secrets: environment variables ([`EnvSecrets`]) and a fixed map for tests and the demo
//! ([`StaticSecrets`]). Error messages name the reference, never a value.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use mlc_core::ports::Secrets;
use mlc_core::secret::{ExposeSecret, SecretRef, SecretString};
use mlc_core::{PortError, PortResult};

/// Resolves `env:NAME` references from the process environment. Secrets Manager references are
/// refused: they need the AWS runtime.
///
/// Nothing is cached: reading the environment is cheap, and an operator who fixes a variable
/// and restarts sees it at once. `invalidate` therefore has nothing to drop.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvSecrets;

impl EnvSecrets {
    /// The resolver.
    pub fn new() -> Self {
        EnvSecrets
    }
}

#[async_trait]
impl Secrets for EnvSecrets {
    async fn get(&self, reference: &SecretRef) -> PortResult<SecretString> {
        match reference {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
                Ok(_) => Err(PortError::NotFound(format!(
                    "environment variable {name} is empty"
                ))),
                Err(std::env::VarError::NotPresent) => Err(PortError::NotFound(format!(
                    "environment variable {name} is not set"
                ))),
                // The error type carries the raw value: do not chain it.
                Err(std::env::VarError::NotUnicode(_)) => Err(PortError::invalid(format!(
                    "environment variable {name} is not valid unicode"
                ))),
            },
            SecretRef::SecretsManager { .. } => Err(PortError::invalid(format!(
                "{reference}: secrets manager references need the AWS runtime; \
                 use env:NAME locally"
            ))),
        }
    }

    async fn invalidate(&self, _reference: &SecretRef) {}
}

/// A fixed map of references to values, for tests and the demo. Any kind of reference may be
/// present; a missing one is `NotFound`.
#[derive(Clone, Default)]
pub struct StaticSecrets {
    values: Arc<HashMap<SecretRef, SecretString>>,
}

impl std::fmt::Debug for StaticSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // References only; values stay hidden.
        f.debug_struct("StaticSecrets")
            .field("refs", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl StaticSecrets {
    /// A map of references to values.
    pub fn new(values: impl IntoIterator<Item = (SecretRef, SecretString)>) -> Self {
        StaticSecrets {
            values: Arc::new(values.into_iter().collect()),
        }
    }

    /// Adds one value (builder style).
    pub fn with(self, reference: SecretRef, value: impl Into<String>) -> Self {
        let mut values = Arc::unwrap_or_clone(self.values);
        values.insert(reference, SecretString::from(value.into()));
        StaticSecrets {
            values: Arc::new(values),
        }
    }
}

#[async_trait]
impl Secrets for StaticSecrets {
    async fn get(&self, reference: &SecretRef) -> PortResult<SecretString> {
        self.values
            .get(reference)
            .map(|v| SecretString::from(v.expose_secret().to_string()))
            .ok_or_else(|| PortError::NotFound(format!("secret {reference} is not configured")))
    }

    async fn invalidate(&self, _reference: &SecretRef) {}
}
