//! The simulator answers like Salesforce: shapes, limits and refusals.

use serde_json::{json, Value};
use sim_salesforce::{OrgOptions, OrgSim};

async fn token(c: &reqwest::Client, url: &str) -> String {
    let r: Value = c
        .post(format!("{url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client-id"),
            ("client_secret", "sim-client-secret"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn token_endpoint_speaks_oauth_errors() {
    let org = OrgSim::start(OrgOptions::default()).await.unwrap();
    let c = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let r = c
        .post(format!("{}/services/oauth2/token", org.url()))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "x"),
            ("client_secret", "y"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let r = c
        .post(format!("{}/services/oauth2/token", org.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "nope"),
            ("client_secret", "y"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "invalid_client_id"
    );
    let t = token(&c, &org.url()).await;
    assert!(!t.is_empty());
    assert_eq!(org.api_calls(), 0, "token requests are not API calls");
}

#[tokio::test]
async fn upserts_queries_and_composite_limits() {
    let org = OrgSim::start(OrgOptions {
        query_page_size: 2,
        ..OrgOptions::default()
    })
    .await
    .unwrap();
    let c = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let t = token(&c, &org.url()).await;
    let base = format!("{}/services/data/v62.0", org.url());
    let up = |ext: &str, body: Value| {
        c.patch(format!("{base}/sobjects/Account/SYSPRO_Customer__c/{ext}"))
            .bearer_auth(&t)
            .json(&body)
            .send()
    };
    let r = up("C1", json!({"Name": "A"})).await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers()["sforce-limit-info"]
        .to_str()
        .unwrap()
        .starts_with("api-usage=1/"));
    assert_eq!(up("C1", json!({"Name": "A2"})).await.unwrap().status(), 200);
    let r = up("C2", json!({"Phone": "1"})).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "REQUIRED_FIELD_MISSING"
    );
    let r = c
        .patch(format!("{base}/sobjects/Account/Name/x"))
        .bearer_auth(&t)
        .json(&json!({"Phone": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    org.seed("Account", json!({"Name": "D", "SYSPRO_Customer__c": "DUP"}));
    org.seed("Account", json!({"Name": "D", "SYSPRO_Customer__c": "DUP"}));
    assert_eq!(up("DUP", json!({"Name": "D"})).await.unwrap().status(), 300);

    // SOQL: bad escapes are refused; paging follows nextRecordsUrl.
    let q = |soql: &str| {
        c.get(format!("{base}/query"))
            .bearer_auth(&t)
            .query(&[("q", soql)])
            .send()
    };
    let r = q(r"SELECT Id FROM Account WHERE Name = 'a\qb'")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "MALFORMED_QUERY"
    );
    let page: Value = q("SELECT Id, Name FROM Account WHERE Name IN ('a2', 'D')")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["totalSize"], 3,
        "SOQL text comparison is case-insensitive"
    );
    assert_eq!(page["done"], false);
    let next: Value = c
        .get(format!(
            "{}{}",
            org.url(),
            page["nextRecordsUrl"].as_str().unwrap()
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(next["records"].as_array().unwrap().len(), 1);
    assert_eq!(next["done"], true);

    // Composite: 26 subrequests or 6 collections are refused; references resolve; one call.
    let sub = |i: usize| json!({"method": "GET", "url": "/services/data/v62.0/limits", "referenceId": format!("r{i}")});
    let many: Vec<Value> = (0..26).map(sub).collect();
    let r = c
        .post(format!("{base}/composite"))
        .bearer_auth(&t)
        .json(&json!({"compositeRequest": many}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let coll = |i: usize| json!({"method": "PATCH", "url": "/services/data/v62.0/composite/sobjects/Account/SYSPRO_Customer__c", "referenceId": format!("c{i}"), "body": {"allOrNone": false, "records": []}});
    let many: Vec<Value> = (0..6).map(coll).collect();
    let r = c
        .post(format!("{base}/composite"))
        .bearer_auth(&t)
        .json(&json!({"compositeRequest": many}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    org.clear_requests();
    let body = json!({"allOrNone": false, "compositeRequest": [
        {"method": "PATCH", "url": "/services/data/v62.0/composite/sobjects/Account/SYSPRO_Customer__c", "referenceId": "accts",
         "body": {"allOrNone": false, "records": [{"attributes": {"type": "Account"}, "SYSPRO_Customer__c": "N1", "Name": "New"}]}},
        {"method": "PATCH", "url": "/services/data/v62.0/composite/sobjects/Opportunity/SYSPRO_Invoice__c", "referenceId": "opps",
         "body": {"allOrNone": false, "records": [
            {"attributes": {"type": "Opportunity"}, "SYSPRO_Invoice__c": "N1|1|I", "Name": "I1", "StageName": "Prospecting", "CloseDate": "2026-01-31", "AccountId": "@{accts[0].id}"},
            {"attributes": {"type": "Opportunity"}, "SYSPRO_Invoice__c": "N1|2|I", "Name": "I2", "StageName": "Nope", "CloseDate": "2026-01-31", "AccountId": "@{accts[0].id}"}]}}
    ]});
    let r: Value = c
        .post(format!("{base}/composite"))
        .bearer_auth(&t)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let opps = &r["compositeResponse"][1]["body"];
    assert_eq!(opps[0]["success"], true);
    assert_eq!(
        opps[1]["errors"][0]["statusCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert_eq!(org.api_calls(), 1);
    let acct = org
        .find("Account", "SYSPRO_Customer__c", "N1")
        .pop()
        .unwrap();
    assert_eq!(org.opportunities()[0].text("AccountId").unwrap(), acct.id);
}

#[tokio::test]
async fn daily_limit_is_enforced() {
    let org = OrgSim::start(OrgOptions {
        daily_limit: 2,
        ..OrgOptions::default()
    })
    .await
    .unwrap();
    let c = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let t = token(&c, &org.url()).await;
    let get = || {
        c.get(format!("{}/services/data/v62.0/limits", org.url()))
            .bearer_auth(&t)
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(get().await.unwrap().status(), 200);
    let r = get().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "REQUEST_LIMIT_EXCEEDED"
    );
}
