//! One SDK configuration, loaded once per process (Lambda container), and the clients built
//! from it.
//!
//! Loading reads the environment (region, credentials, `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>` overrides) without any network call; clients are cheap handles
//! that share one connection pool, so everything built from one context reuses connections.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::error::{Error, Result};

/// Environment variable the test harness (`tests/run`) sets to moto's address.
pub const TEST_ENDPOINT_ENV: &str = "MLC_TEST_AWS_ENDPOINT";

/// The loaded SDK configuration and one client per service.
#[derive(Clone, Debug)]
pub struct AwsContext {
    config: SdkConfig,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    secrets: aws_sdk_secretsmanager::Client,
}

impl AwsContext {
    /// Loads the configuration from the environment with the default settings.
    pub async fn from_env() -> Result<Self> {
        AwsContext::builder().load().await
    }

    /// A builder to adjust retries, timeouts and the endpoint.
    pub fn builder() -> AwsContextBuilder {
        AwsContextBuilder::default()
    }

    /// Builds the clients from an already loaded configuration.
    pub fn from_config(config: SdkConfig) -> Result<Self> {
        if let Some(url) = config.endpoint_url() {
            check_endpoint(url)?;
        }
        Ok(AwsContext {
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            config,
        })
    }

    /// For tests: a context pointed at the emulator that `tests/run` started.
    ///
    /// # Panics
    /// When `MLC_TEST_AWS_ENDPOINT` is not set: a missing emulator is a test failure, not a skip.
    pub async fn for_tests() -> Self {
        let endpoint = match std::env::var(TEST_ENDPOINT_ENV) {
            Ok(e) if !e.trim().is_empty() => e,
            _ => panic!(
                "{TEST_ENDPOINT_ENV} is not set: these tests need the moto emulator; run them through tests/run (it starts moto on loopback and exports the AWS_* variables)"
            ),
        };
        let ctx = AwsContext::builder()
            .endpoint_url(endpoint.trim())
            .test_credentials()
            .serialize_requests()
            .max_attempts(3)
            .load()
            .await;
        match ctx {
            Ok(c) => c,
            Err(e) => panic!("cannot build the test aws context: {e}"),
        }
    }

    /// The SDK configuration.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }

    /// The DynamoDB client.
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamodb
    }

    /// The SQS client.
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        &self.sqs
    }

    /// The Secrets Manager client.
    pub fn secrets(&self) -> &aws_sdk_secretsmanager::Client {
        &self.secrets
    }
}

/// Settings for [`AwsContext`].
#[derive(Debug, Clone)]
pub struct AwsContextBuilder {
    endpoint_url: Option<String>,
    region: Option<String>,
    max_attempts: u32,
    operation_timeout: Duration,
    connect_timeout: Duration,
    test_credentials: bool,
    serialize_requests: bool,
}

impl Default for AwsContextBuilder {
    fn default() -> Self {
        AwsContextBuilder {
            endpoint_url: None,
            region: None,
            max_attempts: 3,
            operation_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            test_credentials: false,
            serialize_requests: false,
        }
    }
}

impl AwsContextBuilder {
    /// Overrides the endpoint (otherwise `AWS_ENDPOINT_URL` applies, if set). Plain `http://`
    /// is accepted for loopback only.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Overrides the region (otherwise `AWS_REGION` / the profile).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Attempts per call, first included (SDK standard retry with backoff). At least 1.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Time limit of one operation, retries included.
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.operation_timeout = d;
        self
    }

    /// Static `test`/`test` credentials and `us-east-1` unless set: for the emulator only, so
    /// a test never finds real credentials on the machine.
    pub fn test_credentials(mut self) -> Self {
        self.test_credentials = true;
        self
    }

    /// For the emulator only: one HTTP request at a time across every context of the process
    /// that asked for it.
    ///
    /// moto's server is threaded and does not lock items: it checks a condition, then applies
    /// the update, so two concurrent conditional writes to one item can both pass (measured:
    /// 51 budget units granted for a limit of 50). DynamoDB serialises writes to an item, and
    /// the adapters rely on that; sending one request at a time restores it for tests. The
    /// adapters' calls are unchanged. A long-polling receive holds the gate while it waits.
    pub fn serialize_requests(mut self) -> Self {
        self.serialize_requests = true;
        self
    }

    /// Loads the configuration and builds the clients.
    pub async fn load(self) -> Result<AwsContext> {
        if let Some(url) = &self.endpoint_url {
            check_endpoint(url)?;
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(self.operation_timeout)
                    .connect_timeout(self.connect_timeout)
                    .build(),
            );
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let region = match (&self.region, self.test_credentials) {
            (Some(r), _) => Some(r.clone()),
            (None, true) => Some(
                std::env::var("AWS_REGION")
                    .ok()
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "us-east-1".to_string()),
            ),
            (None, false) => None,
        };
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r));
        }
        if self.serialize_requests {
            loader = loader.http_client(serial::client());
        }
        if self.test_credentials {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "mlc-test",
            ));
        }
        let config = loader.load().await;
        AwsContext::from_config(config)
    }
}

/// The one-request-at-a-time HTTP client of [`AwsContextBuilder::serialize_requests`].
mod serial {
    use aws_smithy_runtime_api::client::http::{
        http_client_fn, HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpClient,
        SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use tokio::sync::Semaphore;

    /// Process-wide, so separate contexts (two "containers" in one test) are serialised too.
    static GATE: Semaphore = Semaphore::const_new(1);

    /// The SDK's default HTTPS client (rustls + aws-lc, as the SDK crates' default), gated.
    pub(super) fn client() -> SharedHttpClient {
        let inner = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build_https();
        http_client_fn(move |settings, components| {
            SharedHttpConnector::new(Gated {
                inner: inner.http_connector(settings, components),
            })
        })
    }

    #[derive(Debug)]
    struct Gated {
        inner: SharedHttpConnector,
    }

    impl HttpConnector for Gated {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let inner = self.inner.clone();
            HttpConnectorFuture::new(async move {
                // The semaphore is never closed, so acquiring cannot fail.
                let _permit = GATE.acquire().await.ok();
                inner.call(request).await
            })
        }
    }
}

/// Plain HTTP only to loopback: anything else must be HTTPS.
fn check_endpoint(url: &str) -> Result<()> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            return Ok(());
        }
        return Err(Error::Config(format!(
            "endpoint {url:?} uses plain http to a non-loopback host: use https"
        )));
    }
    Err(Error::Config(format!(
        "endpoint {url:?} is not an http(s) url"
    )))
}

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(check_endpoint("http://127.0.0.1:5000").is_ok());
        assert!(check_endpoint("http://localhost:5000/").is_ok());
        assert!(check_endpoint("http://[::1]:5000").is_ok());
        assert!(check_endpoint("https://dynamodb.us-east-1.amazonaws.com").is_ok());
        assert!(check_endpoint("http://10.0.0.5:4566").is_err());
        assert!(check_endpoint("http://127.0.0.1.evil.example:80").is_err());
        assert!(check_endpoint("ftp://x").is_err());
    }
}
