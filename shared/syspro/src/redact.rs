//! Redaction: e.net URLs carry the operator and company passwords in the query string, so no
//! URL leaves this crate (log line or error) with its query.

/// The URL without its query string (`?…` marks that one was there).
pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

/// A transport error described without the URL it carries.
pub fn describe_reqwest(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body could not be read"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut msg = format!("{kind}: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&redact_text(&s.to_string()));
        src = s.source();
    }
    msg
}

/// Removes query strings from any URL quoted in a message.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if word.contains("://") && word.contains('?') {
            out.push_str(&redact_url(word));
        } else {
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_removed() {
        let u = "http://h:90/SYSPROWCFService/Rest/Logon?Operator=A&OperatorPassword=hunter2";
        assert!(!redact_url(u).contains("hunter2"));
        assert!(!redact_text(&format!("error sending request for url ({u})")).contains("hunter2"));
    }
}
