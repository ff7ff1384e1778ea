//! The simulator on the wire: shapes, rejections and every fault switch, with a plain HTTP
//! client (no mlc-syspro logic in between).

use std::time::{Duration, Instant};

use base64::Engine;
use sim_syspro::{SimHandle, SimOptions, SysproSim};

const PW: &str = "sim-password";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn start() -> SimHandle {
    SysproSim::start(SimOptions::default()).await.unwrap()
}

fn odata(sim: &SimHandle, rest: &str) -> String {
    format!("{}/SYSPRO8Odata/SYSPROOData/EDU1/{rest}", sim.base_url())
}

async fn get(url: &str, pw: Option<&str>) -> (u16, Vec<u8>) {
    let mut r = client().get(url);
    if let Some(pw) = pw {
        r = r.basic_auth("ADMIN", Some(pw));
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

async fn logon(sim: &SimHandle, pw: &str) -> String {
    let url = format!(
        "{}/SYSPROWCFService/Rest/Logon?Operator=ADMIN&OperatorPassword={pw}&CompanyId=EDU1&CompanyPassword=",
        sim.base_url()
    );
    String::from_utf8(get(&url, None).await.1).unwrap()
}

async fn comfnd(sim: &SimHandle, token: &str, xml: &str) -> (u16, Vec<u8>) {
    let q: String = url_encode(xml);
    get(
        &format!(
            "{}/SYSPROWCFService/Rest/query/query?UserId={token}&BusinessObject=COMFND&XmlIn={q}",
            sim.base_url()
        ),
        None,
    )
    .await
}

fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

const XML: &str = "<Query><TableName>ArCustomer</TableName><ReturnRows>3</ReturnRows><Columns><Column>customer</Column><Column>Name</Column><Column>CreditLimit</Column><Column>DateLastSale</Column></Columns><OrderBy><Column>Customer</Column></OrderBy></Query>";

#[tokio::test]
async fn logon_token_shape_and_eviction() {
    let sim = start().await;
    let t1 = logon(&sim, PW).await;
    assert_eq!(t1.len(), 36);
    assert!(t1.ends_with("  "));
    assert!(t1
        .trim()
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    let (_, body) = comfnd(&sim, t1.trim(), XML).await;
    let text = encoding_rs::WINDOWS_1252.decode(&body).0.into_owned();
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"Windows-1252\"?>"));
    assert!(
        text.contains("<RowsReturned>       3</RowsReturned>"),
        "{text}"
    );
    assert!(text.contains("<DateLastSale>0000-00-00</DateLastSale>"));
    assert!(text.contains("<CreditLimit>"));
    // A second logon of the same operator evicts the first session.
    let t2 = logon(&sim, PW).await;
    let (_, body) = comfnd(&sim, t1.trim(), XML).await;
    assert!(String::from_utf8_lossy(&body).contains("UserID is invalid"));
    let (_, body) = comfnd(&sim, t2.trim(), XML).await;
    assert!(String::from_utf8_lossy(&body).contains("<Row>"));
    // An untrimmed token is not a session.
    let (_, body) = comfnd(&sim, &url_encode(&t2), XML).await;
    assert!(String::from_utf8_lossy(&body).contains("UserID is invalid"));
    // Eviction switch.
    sim.evict_sessions();
    let (_, body) = comfnd(&sim, t2.trim(), XML).await;
    assert!(String::from_utf8_lossy(&body).starts_with("ERROR: The supplied UserID is invalid"));
    let logoff = format!(
        "{}/SYSPROWCFService/Rest/Logoff?UserId={}",
        sim.base_url(),
        t2.trim()
    );
    assert_eq!(get(&logoff, None).await.1, b"0");
    let v = format!("{}/SYSPROWCFService/Rest/GetVersion", sim.base_url());
    assert!(!get(&v, None).await.1.is_empty());
    assert_eq!(sim.count("logon"), 2);
}

#[tokio::test]
async fn wrong_password_is_an_http_200_error() {
    let sim = start().await;
    assert_eq!(
        logon(&sim, "nope").await,
        "ERROR: Invalid operator password"
    );
    sim.set_password("ADMIN", "new");
    assert_eq!(logon(&sim, PW).await, "ERROR: Invalid operator password");
    assert!(!logon(&sim, "new").await.starts_with("ERROR"));
    let (status, _) = get(&odata(&sim, "ArCustomer"), Some(PW)).await;
    assert_eq!(status, 401);
    let (status, _) = get(&odata(&sim, "ArCustomer"), None).await;
    assert_eq!(status, 401);
    let missing = format!(
        "{}/SYSPROWCFService/Rest/Logon?Operator=ADMIN&OperatorPassword=new&CompanyId=EDU1",
        sim.base_url()
    );
    assert_eq!(get(&missing, None).await.0, 400);
}

#[tokio::test]
async fn odata_query_options() {
    let sim = start().await;
    let url = odata(
        &sim,
        &format!(
            "ArInvoice?$select=Customer,Invoice,InvoiceDate,TimeStamp&$filter={}&$orderby=InvoiceDate%20desc,Invoice&$top=5&$skip=1",
            url_encode("(InvoiceBal1 ne 0 or InvoiceDate ge 2026-11-01) and Customer ne 'O''x'")
        ),
    );
    let (status, body) = get(&url, Some(PW)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["@odata.context"]
        .as_str()
        .unwrap()
        .contains("$metadata#ArInvoice"));
    let rows = v["value"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0].as_object().unwrap().len(), 4);
    assert!(rows[0]["InvoiceDate"]
        .as_str()
        .unwrap()
        .ends_with("T00:00:00+02:00"));
    let rv = base64::engine::general_purpose::URL_SAFE
        .decode(rows[0]["TimeStamp"].as_str().unwrap())
        .unwrap();
    assert_eq!(rv.len(), 8);
    let dates: Vec<&str> = rows
        .iter()
        .map(|r| r["InvoiceDate"].as_str().unwrap())
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted);
    // Bad queries are 400s with an OData error body, never "accept anything".
    for bad in [
        "ArInvoice?$filter=Customer%20eq",
        "ArInvoice?$filter=Customer%20eq%20'x",
        "ArInvoice?$filter=Nope%20eq%201",
        "ArInvoice?$filter=InvoiceBal1%20eq%20'x'",
        "ArInvoice?$select=Nope",
        "ArInvoice?$orderby=Nope",
        "ArInvoice?$top=x",
        "ArInvoice?$expand=x",
    ] {
        let (status, body) = get(&odata(&sim, bad), Some(PW)).await;
        assert_eq!(status, 400, "{bad}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"]["message"].is_string());
    }
    assert_eq!(get(&odata(&sim, "NoTable"), Some(PW)).await.0, 404);
    let (status, body) = get(&odata(&sim, "$metadata"), Some(PW)).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("<EntitySet Name=\"ArInvoice\""));
}

#[tokio::test]
async fn page_cap_is_5000() {
    let sim = SysproSim::start(SimOptions {
        counts: sim_syspro::CompanyCounts {
            customers: 50,
            invoices: 5200,
            payments: 0,
            suppliers: 0,
            ap_invoices: 0,
            purchase_orders: 0,
        },
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let (_, body) = get(
        &odata(&sim, "ArInvoice?$select=Invoice&$top=9000"),
        Some(PW),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 5000);
    assert!(v["@odata.nextLink"].is_string());
}

#[tokio::test]
async fn fault_switches() {
    let sim = start().await;
    let url = odata(&sim, "ArCustomer?$top=3");
    sim.fail_next(1);
    assert_eq!(get(&url, Some(PW)).await.0, 503);
    assert_eq!(get(&url, Some(PW)).await.0, 200);
    sim.truncate_next(1);
    let (status, body) = get(&url, Some(PW)).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    sim.error_body_next("General failure");
    let (status, body) = get(&url, Some(PW)).await;
    assert_eq!((status, body), (200, b"ERROR: General failure".to_vec()));
    sim.set_delay(Duration::from_millis(150));
    let t = Instant::now();
    get(&url, Some(PW)).await;
    assert!(t.elapsed() >= Duration::from_millis(150));
    sim.set_delay(Duration::ZERO);
    // A page that changes between two page reads.
    sim.after_next_page(|c| {
        c.delete("ArCustomer", &["0000010"]).unwrap();
    });
    get(&url, Some(PW)).await;
    assert!(!sim.snapshot()["ArCustomer"]
        .iter()
        .any(|r| r["Customer"] == "0000010"));
    // Session eviction every n-th query.
    let token = logon(&sim, PW).await;
    sim.evict_every(Some(2));
    let mut invalid = 0;
    for _ in 0..4 {
        let (_, body) = comfnd(&sim, token.trim(), XML).await;
        if String::from_utf8_lossy(&body).contains("UserID is invalid") {
            invalid += 1;
        }
    }
    assert!(invalid >= 2);
    sim.clear_faults();
    // Chaos: a seeded rate of transient faults.
    sim.set_fault_rate(0.5, 42);
    let mut bad = 0;
    for _ in 0..40 {
        let (status, body) = get(&url, Some(PW)).await;
        if status != 200 || serde_json::from_slice::<serde_json::Value>(&body).is_err() {
            bad += 1;
        }
    }
    assert!(bad > 3 && bad < 37, "{bad}");
    let c = sim.counters();
    assert!(
        c["odata"] > 40 && c["fault_5xx"] > 0 && c["fault_truncated"] > 0,
        "{c:?}"
    );
    let (status, body) = get(&format!("{}/_sim/counters", sim.base_url()), None).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("odata"));
}
