//! A small SOQL parser for the query shapes the connector sends:
//! `SELECT f, … FROM Obj [WHERE cond] [LIMIT n]`, where `cond` combines `field = 'lit'`,
//! `field != 'lit'` and `field IN ('a', 'b')` with `AND`, `OR` and parentheses.
//!
//! String literals follow the real escaping rules: `\\ \' \" \n \r \t \b \f` (and `\uXXXX`);
//! any other backslash sequence is a `MALFORMED_QUERY`, as Salesforce answers.

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Selected fields, as written.
    pub fields: Vec<String>,
    /// The sObject.
    pub object: String,
    /// The condition, if any.
    pub condition: Option<Cond>,
    /// `LIMIT`, if any.
    pub limit: Option<usize>,
}

/// A condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// `field = 'value'` (case-insensitive, like Salesforce text comparison).
    Eq(String, String),
    /// `field != 'value'`.
    Ne(String, String),
    /// `field IN ('a', …)`.
    In(String, Vec<String>),
    /// Both.
    And(Box<Cond>, Box<Cond>),
    /// Either.
    Or(Box<Cond>, Box<Cond>),
}

impl Cond {
    /// Evaluates against a field lookup.
    pub fn eval(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        let eq = |a: &Option<String>, b: &str| match a {
            Some(v) => v.to_lowercase() == b.to_lowercase(),
            None => b.is_empty(),
        };
        match self {
            Cond::Eq(f, v) => eq(&get(f), v),
            Cond::Ne(f, v) => !eq(&get(f), v),
            Cond::In(f, vs) => {
                let a = get(f);
                vs.iter().any(|v| eq(&a, v))
            }
            Cond::And(a, b) => a.eval(get) && b.eval(get),
            Cond::Or(a, b) => a.eval(get) || b.eval(get),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(usize),
    Comma,
    LParen,
    RParen,
    Eq,
    Ne,
}

fn tokenize(q: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            '=' => {
                out.push(Tok::Eq);
                i += 1
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Ne);
                i += 2
            }
            '\'' => {
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err("unterminated string literal".into());
                    };
                    i += 1;
                    match c {
                        '\'' => break,
                        '\\' => {
                            let Some(&e) = chars.get(i) else {
                                return Err("unterminated escape sequence".into());
                            };
                            i += 1;
                            match e {
                                '\\' => s.push('\\'),
                                '\'' => s.push('\''),
                                '"' => s.push('"'),
                                'n' => s.push('\n'),
                                'r' => s.push('\r'),
                                't' => s.push('\t'),
                                'b' => s.push('\u{8}'),
                                'f' => s.push('\u{c}'),
                                'u' => {
                                    let hex: String = chars.iter().skip(i).take(4).collect();
                                    let cp = u32::from_str_radix(&hex, 16)
                                        .ok()
                                        .filter(|_| hex.len() == 4)
                                        .and_then(char::from_u32)
                                        .ok_or_else(|| {
                                            format!("invalid unicode escape \\u{hex}")
                                        })?;
                                    s.push(cp);
                                    i += 4;
                                }
                                other => {
                                    return Err(format!(
                                        "Invalid string literal: invalid escape sequence \\{other}"
                                    ))
                                }
                            }
                        }
                        '\n' | '\r' => return Err("unescaped line break in string literal".into()),
                        c => s.push(c),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let n: String = chars[start..i].iter().collect();
                out.push(Tok::Num(n.parse().map_err(|_| "bad number")?));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected token: '{other}'")),
        }
    }
    Ok(out)
}

struct P {
    toks: Vec<Tok>,
    pos: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&mut self, kw: &str) -> bool {
        if let Some(Tok::Ident(s)) = self.peek() {
            if s.eq_ignore_ascii_case(kw) {
                self.pos += 1;
                return true;
            }
        }
        false
    }
    fn ident(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Tok::Ident(s)) => Ok(s),
            other => Err(format!("expected {what}, found {other:?}")),
        }
    }
    fn string(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            other => Err(format!("expected a string literal, found {other:?}")),
        }
    }
    fn expr(&mut self) -> Result<Cond, String> {
        let mut left = self.term()?;
        while self.keyword("OR") {
            let right = self.term()?;
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn term(&mut self) -> Result<Cond, String> {
        let mut left = self.factor()?;
        while self.keyword("AND") {
            let right = self.factor()?;
            left = Cond::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn factor(&mut self) -> Result<Cond, String> {
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.expr()?;
            if self.next() != Some(Tok::RParen) {
                return Err("expected ')'".into());
            }
            return Ok(e);
        }
        let field = self.ident("a field")?;
        if self.keyword("IN") {
            if self.next() != Some(Tok::LParen) {
                return Err("expected '(' after IN".into());
            }
            let mut vals = vec![self.string()?];
            loop {
                match self.next() {
                    Some(Tok::Comma) => vals.push(self.string()?),
                    Some(Tok::RParen) => break,
                    other => return Err(format!("expected ',' or ')', found {other:?}")),
                }
            }
            return Ok(Cond::In(field, vals));
        }
        match self.next() {
            Some(Tok::Eq) => Ok(Cond::Eq(field, self.string()?)),
            Some(Tok::Ne) => Ok(Cond::Ne(field, self.string()?)),
            other => Err(format!("expected '=', '!=' or IN, found {other:?}")),
        }
    }
}

/// Parses a query; the error is the `MALFORMED_QUERY` message.
pub fn parse(q: &str) -> Result<Query, String> {
    let mut p = P {
        toks: tokenize(q)?,
        pos: 0,
    };
    if !p.keyword("SELECT") {
        return Err("expected SELECT".into());
    }
    let mut fields = vec![p.ident("a field")?];
    while p.peek() == Some(&Tok::Comma) {
        p.pos += 1;
        fields.push(p.ident("a field")?);
    }
    if !p.keyword("FROM") {
        return Err("expected FROM".into());
    }
    let object = p.ident("an object")?;
    let condition = if p.keyword("WHERE") {
        Some(p.expr()?)
    } else {
        None
    };
    let limit = if p.keyword("LIMIT") {
        match p.next() {
            Some(Tok::Num(n)) => Some(n),
            other => return Err(format!("expected a number after LIMIT, found {other:?}")),
        }
    } else {
        None
    };
    if let Some(t) = p.peek() {
        return Err(format!("unexpected token after the query: {t:?}"));
    }
    Ok(Query {
        fields,
        object,
        condition,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escaped_literals() {
        let q = parse(r#"SELECT Id, Name FROM Account WHERE Name = 'O\'Brien \"Ltd\" \\ x' OR Name IN ('a', 'b')"#).unwrap();
        assert_eq!(q.object, "Account");
        match q.condition.unwrap() {
            Cond::Or(a, b) => {
                assert_eq!(*a, Cond::Eq("Name".into(), "O'Brien \"Ltd\" \\ x".into()));
                assert_eq!(*b, Cond::In("Name".into(), vec!["a".into(), "b".into()]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_escapes_and_injection() {
        assert!(parse(r"SELECT Id FROM Account WHERE Name = 'a\qb'").is_err());
        assert!(parse("SELECT Id FROM Account WHERE Name = 'O'Brien'").is_err());
        assert!(parse("SELECT Id FROM Account WHERE Name = 'x' OR Name != ''").is_ok());
    }
}
