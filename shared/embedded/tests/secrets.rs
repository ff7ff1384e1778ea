//! Local secret resolution: names in errors, never values.

use mlc_core::ports::Secrets;
use mlc_core::secret::{ExposeSecret, SecretRef};
use mlc_core::PortError;
use mlc_embedded::{EnvSecrets, StaticSecrets};

#[tokio::test]
async fn env_reference_resolves_and_missing_names_the_variable() {
    // A name no other test uses, set before anything reads the environment concurrently.
    std::env::set_var("MLC_EMBEDDED_TEST_SECRET", "hunter2");
    let s = EnvSecrets::new();
    let v = s
        .get(&SecretRef::Env("MLC_EMBEDDED_TEST_SECRET".into()))
        .await
        .expect("set variable");
    assert_eq!(v.expose_secret(), "hunter2");

    let missing = s
        .get(&SecretRef::Env("MLC_EMBEDDED_TEST_MISSING".into()))
        .await;
    match missing {
        Err(PortError::NotFound(m)) => assert!(m.contains("MLC_EMBEDDED_TEST_MISSING"), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn secrets_manager_reference_needs_aws() {
    let r = SecretRef::parse("secretsmanager:prod/sf#client_secret").expect("parse");
    let e = EnvSecrets::new().get(&r).await.expect_err("refused");
    assert!(matches!(e, PortError::Permanent { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("secrets manager references need the AWS runtime"),
        "{e}"
    );
}

#[tokio::test]
async fn static_secrets_resolve_and_hide_values() {
    let r = SecretRef::Env("SF_SECRET".into());
    let s = StaticSecrets::default().with(r.clone(), "s3cr3t");
    assert_eq!(s.get(&r).await.expect("present").expose_secret(), "s3cr3t");
    assert!(!format!("{s:?}").contains("s3cr3t"));
    let e = s
        .get(&SecretRef::Env("OTHER".into()))
        .await
        .expect_err("absent");
    assert!(matches!(e, PortError::NotFound(_)), "{e:?}");
}
