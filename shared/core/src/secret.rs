//! Secrets: references in configuration, values wrapped so they cannot be printed.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use secrecy::{ExposeSecret, SecretString};

/// Where a secret lives. Never the secret itself: configuration files hold references only.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SecretRef {
    /// `env:NAME`: an environment variable (local runs).
    Env(String),
    /// `arn:aws:secretsmanager:…` or `secretsmanager:NAME`: a Secrets Manager secret, optionally
    /// with `#json-key` to pick one field of a JSON secret.
    SecretsManager {
        /// The secret's ARN or name.
        id: String,
        /// The field of a JSON secret, if any.
        json_key: Option<String>,
    },
}

impl SecretRef {
    /// Parses a reference. Anything that is not a recognised reference is refused, so a secret
    /// pasted inline into a config file is an error, not a silently used value.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(name) = s.strip_prefix("env:") {
            let ok =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            return if ok {
                Ok(SecretRef::Env(name.to_string()))
            } else {
                Err(format!(
                    "secret reference env:{name:?} is not a valid environment variable name"
                ))
            };
        }
        let (body, json_key) = match s.split_once('#') {
            Some((b, k)) => (b, Some(k.to_string())),
            None => (s, None),
        };
        if body.starts_with("arn:aws:secretsmanager:") {
            return Ok(SecretRef::SecretsManager {
                id: body.to_string(),
                json_key,
            });
        }
        if let Some(name) = body.strip_prefix("secretsmanager:") {
            if !name.is_empty() {
                return Ok(SecretRef::SecretsManager {
                    id: name.to_string(),
                    json_key,
                });
            }
        }
        Err("not a secret reference: use env:NAME or a Secrets Manager ARN (secrets are never written inline)".to_string())
    }
}

impl TryFrom<String> for SecretRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SecretRef::parse(&s)
    }
}

impl From<SecretRef> for String {
    fn from(r: SecretRef) -> String {
        r.to_string()
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::SecretsManager { id, json_key } => {
                if id.starts_with("arn:") {
                    write!(f, "{id}")?;
                } else {
                    write!(f, "secretsmanager:{id}")?;
                }
                if let Some(k) = json_key {
                    write!(f, "#{k}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_secret_is_refused() {
        assert!(SecretRef::parse("hunter2").is_err());
        assert_eq!(
            SecretRef::parse("env:SF_SECRET").unwrap(),
            SecretRef::Env("SF_SECRET".into())
        );
        let r =
            SecretRef::parse("arn:aws:secretsmanager:us-east-1:1:secret:x#client_secret").unwrap();
        assert_eq!(
            r.to_string(),
            "arn:aws:secretsmanager:us-east-1:1:secret:x#client_secret"
        );
    }

    #[test]
    fn secret_values_do_not_print() {
        let s = SecretString::from("hunter2".to_string());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
