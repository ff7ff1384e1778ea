//! [`SecretsManagerSecrets`]: secret references resolved with Secrets Manager, cached in
//! process.
//!
//! A secret is read once per container (the whole secret string is cached, so several
//! `#json-key` references to one secret cost one call) and re-read after
//! [`Secrets::invalidate`], which callers use when a credential is rejected (rotation). Values
//! live only in [`SecretString`]s: errors name the secret id, never its content.

use std::collections::HashMap;

use async_trait::async_trait;
use mlc_core::ports::Secrets;
use mlc_core::secret::{ExposeSecret, SecretRef, SecretString};
use mlc_core::{PortError, PortResult};
use tokio::sync::Mutex;

use crate::context::AwsContext;
use crate::error::port_error;

/// Secrets Manager behind the [`Secrets`] port.
#[derive(Debug)]
pub struct SecretsManagerSecrets {
    client: aws_sdk_secretsmanager::Client,
    cache: Mutex<HashMap<String, SecretString>>,
}

impl SecretsManagerSecrets {
    /// A resolver with the context's Secrets Manager client and an empty cache.
    pub fn new(ctx: &AwsContext) -> Self {
        SecretsManagerSecrets {
            client: ctx.secrets().clone(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn whole(&self, id: &str) -> PortResult<SecretString> {
        if let Some(v) = self.cache.lock().await.get(id) {
            return Ok(v.clone());
        }
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| port_error(&format!("SecretsManager.GetSecretValue ({id})"), e))?;
        let value = match (out.secret_string(), out.secret_binary()) {
            (Some(s), _) => SecretString::from(s.to_string()),
            (None, Some(b)) => match String::from_utf8(b.as_ref().to_vec()) {
                Ok(s) => SecretString::from(s),
                Err(_) => {
                    return Err(PortError::invalid(format!(
                        "secret {id} is binary and not utf-8 text"
                    )))
                }
            },
            (None, None) => {
                return Err(PortError::NotFound(format!("secret {id} has no value")));
            }
        };
        self.cache
            .lock()
            .await
            .insert(id.to_string(), value.clone());
        Ok(value)
    }
}

/// Picks one field of a JSON secret. Errors name the key, never the content (serde_json's
/// messages carry positions only, and are not passed on anyway).
fn select_json_key(id: &str, whole: &SecretString, json_key: &str) -> PortResult<SecretString> {
    let doc: serde_json::Value = serde_json::from_str(whole.expose_secret()).map_err(|_| {
        PortError::invalid(format!(
            "secret {id} is not a JSON object, so #{json_key} cannot be selected"
        ))
    })?;
    let obj = doc.as_object().ok_or_else(|| {
        PortError::invalid(format!(
            "secret {id} is not a JSON object, so #{json_key} cannot be selected"
        ))
    })?;
    match obj.get(json_key) {
        Some(serde_json::Value::String(s)) => Ok(SecretString::from(s.clone())),
        Some(serde_json::Value::Null) | None => Err(PortError::NotFound(format!(
            "secret {id} has no key {json_key:?}"
        ))),
        Some(other) => Ok(SecretString::from(other.to_string())),
    }
}

#[async_trait]
impl Secrets for SecretsManagerSecrets {
    async fn get(&self, reference: &SecretRef) -> PortResult<SecretString> {
        match reference {
            SecretRef::SecretsManager { id, json_key } => {
                let whole = self.whole(id).await?;
                match json_key {
                    None => Ok(whole),
                    Some(k) => select_json_key(id, &whole, k),
                }
            }
            SecretRef::Env(_) => Err(PortError::invalid(format!(
                "{reference} is an environment reference; this resolver reads Secrets Manager only"
            ))),
        }
    }

    async fn invalidate(&self, reference: &SecretRef) {
        if let SecretRef::SecretsManager { id, .. } = reference {
            self.cache.lock().await.remove(id);
        }
    }
}
