//! Endpoint URLs: `https://` everywhere, plain `http://` only for loopback (tests, simulators).

use std::net::IpAddr;

use url::{Host, Url};

/// Parses and checks an endpoint URL. `https` is required unless the host is loopback
/// (127.0.0.0/8, `::1`, `localhost`). URLs carrying credentials are refused: credentials are
/// secret references. Messages never repeat the URL (it may carry a password).
pub fn check_endpoint(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url.trim()).map_err(|e| format!("not a valid URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials do not belong in URLs: use the secret reference keys".to_string());
    }
    let host = parsed
        .host()
        .ok_or_else(|| "the URL has no host".to_string())?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&host) => Ok(parsed),
        "http" => Err(
            "plain http:// is only allowed for loopback hosts (127.0.0.0/8, ::1, localhost): use https://"
                .to_string(),
        ),
        other => Err(format!("scheme {other:?} is not supported: use https://")),
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_everywhere_http_on_loopback() {
        assert!(check_endpoint("https://erp.example.com:40001").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8080").is_ok());
        assert!(check_endpoint("http://127.5.6.7").is_ok());
        assert!(check_endpoint("http://[::1]:9000/v2").is_ok());
        assert!(check_endpoint("http://localhost:3000").is_ok());
        let e = check_endpoint("http://erp.example.com").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        assert!(check_endpoint("http://10.0.0.5").is_err());
        assert!(check_endpoint("http://localhost.evil.com").is_err());
        assert!(check_endpoint("ftp://example.com").is_err());
        assert!(check_endpoint("erp.example.com").is_err());
        let e = check_endpoint("https://op:hunter2@erp.example.com").unwrap_err();
        assert!(!e.contains("hunter2"));
    }
}
