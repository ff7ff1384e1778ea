//! Secrets Manager adapter against moto.

mod common;

use mlc_aws::SecretsManagerSecrets;
use mlc_core::ports::Secrets;
use mlc_core::secret::{ExposeSecret, SecretRef};
use mlc_core::PortError;

async fn create(ctx: &mlc_aws::AwsContext, name: &str, value: &str) -> String {
    let out = ctx
        .secrets()
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create secret on moto: {e}"));
    out.arn().expect("arn").to_string()
}

#[tokio::test]
async fn reads_plain_and_json_secrets_by_name_and_arn() {
    let ctx = common::ctx().await;
    let plain = common::unique("mlc/plain");
    let json = common::unique("mlc/json");
    create(&ctx, &plain, "hunter2").await;
    let arn = create(
        &ctx,
        &json,
        r#"{"client_id":"abc","client_secret":"s3cr3t","port":8443}"#,
    )
    .await;
    let secrets = SecretsManagerSecrets::new(&ctx);

    let r = SecretRef::parse(&format!("secretsmanager:{plain}")).unwrap();
    assert_eq!(secrets.get(&r).await.unwrap().expose_secret(), "hunter2");

    let r = SecretRef::parse(&format!("{arn}#client_secret")).unwrap();
    assert_eq!(secrets.get(&r).await.unwrap().expose_secret(), "s3cr3t");
    let r = SecretRef::parse(&format!("secretsmanager:{json}#client_id")).unwrap();
    assert_eq!(secrets.get(&r).await.unwrap().expose_secret(), "abc");
    let r = SecretRef::parse(&format!("secretsmanager:{json}#port")).unwrap();
    assert_eq!(secrets.get(&r).await.unwrap().expose_secret(), "8443");
}

#[tokio::test]
async fn missing_secret_and_missing_key_are_not_found() {
    let ctx = common::ctx().await;
    let secrets = SecretsManagerSecrets::new(&ctx);
    let r = SecretRef::parse(&format!("secretsmanager:{}", common::unique("mlc/none"))).unwrap();
    let e = secrets.get(&r).await.unwrap_err();
    assert!(matches!(e, PortError::NotFound(_)), "{e:?}");

    let name = common::unique("mlc/json");
    create(&ctx, &name, r#"{"user":"u","password":"p4ss"}"#).await;
    let r = SecretRef::parse(&format!("secretsmanager:{name}#token")).unwrap();
    let e = secrets.get(&r).await.unwrap_err();
    assert!(matches!(e, PortError::NotFound(_)), "{e:?}");
    assert!(
        !format!("{e} {e:?}").contains("p4ss"),
        "error leaks the secret: {e:?}"
    );

    let plain = common::unique("mlc/plain");
    create(&ctx, &plain, "not-json-p4ss").await;
    let r = SecretRef::parse(&format!("secretsmanager:{plain}#password")).unwrap();
    let e = secrets.get(&r).await.unwrap_err();
    assert!(
        !format!("{e} {e:?}").contains("p4ss"),
        "error leaks the secret: {e:?}"
    );

    let e = secrets
        .get(&SecretRef::parse("env:HOME").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, PortError::Permanent { .. }), "{e:?}");
}

#[tokio::test]
async fn cached_until_invalidated() {
    let ctx = common::ctx().await;
    let name = common::unique("mlc/rot");
    create(&ctx, &name, r#"{"password":"old"}"#).await;
    let secrets = SecretsManagerSecrets::new(&ctx);
    let r = SecretRef::parse(&format!("secretsmanager:{name}#password")).unwrap();
    assert_eq!(secrets.get(&r).await.unwrap().expose_secret(), "old");

    ctx.secrets()
        .put_secret_value()
        .secret_id(&name)
        .secret_string(r#"{"password":"new"}"#)
        .send()
        .await
        .expect("rotate");
    assert_eq!(
        secrets.get(&r).await.unwrap().expose_secret(),
        "old",
        "served from cache"
    );
    secrets.invalidate(&r).await;
    assert_eq!(
        secrets.get(&r).await.unwrap().expose_secret(),
        "new",
        "re-read after rejection"
    );
}
