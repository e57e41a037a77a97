//! Trino's session statements, recognised before the SQL reaches the engine: `USE`,
//! `SET/RESET SESSION`, `PREPARE … FROM`, `EXECUTE [IMMEDIATE] … USING`, `DEALLOCATE PREPARE`,
//! `DESCRIBE INPUT/OUTPUT`, transactions and the `SHOW` forms whose answer is Trino-specific.
//! Their effect lives in the client (response headers), which is why they belong to the
//! protocol and not to the engine. Everything else goes to the engine unchanged.

use sqe_core::error::{Result, SqeError};

#[derive(Debug, Clone, PartialEq)]
pub enum SessionStatement {
    Use {
        catalog: Option<String>,
        schema: String,
    },
    SetSession {
        name: String,
        value: String,
    },
    ResetSession {
        name: String,
    },
    Prepare {
        name: String,
        sql: String,
    },
    Execute {
        name: String,
        /// The text after `USING`: comma-separated expressions.
        using: Option<String>,
    },
    ExecuteImmediate {
        sql: String,
        using: Option<String>,
    },
    Deallocate {
        name: String,
    },
    DescribeInput {
        name: String,
    },
    DescribeOutput {
        name: String,
    },
    StartTransaction,
    Commit,
    Rollback,
    ShowSession,
    ShowCatalogs {
        like: Option<String>,
    },
    ShowColumns {
        table: Vec<String>,
    },
    ShowCreateTable {
        table: Vec<String>,
    },
    ShowFunctions {
        like: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Str(String),
    Number(String),
    Punct(char),
}

struct Lexed {
    tokens: Vec<(Token, usize)>,
}

fn lex(sql: &str) -> Result<Lexed> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if sql[i..].starts_with("--") {
            i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
        } else if sql[i..].starts_with("/*") {
            i = sql[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |n| i + 2 + n + 2);
        } else if c == b'\'' || c == b'"' {
            let start = i;
            let quote = c;
            let mut text = String::new();
            i += 1;
            loop {
                match sql[i..].find(quote as char) {
                    None => {
                        return Err(SqeError::syntax(format!(
                            "unterminated {} starting at offset {start}",
                            if quote == b'\'' {
                                "string"
                            } else {
                                "quoted identifier"
                            }
                        )));
                    }
                    Some(n) => {
                        text.push_str(&sql[i..i + n]);
                        i += n + 1;
                        if bytes.get(i) == Some(&quote) {
                            text.push(quote as char);
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            let token = if quote == b'\'' {
                Token::Str(text)
            } else {
                Token::Quoted(text)
            };
            tokens.push((token, start));
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || bytes[i] == b'_'
                    || bytes[i] == b'$'
                    || bytes[i] >= 0x80)
            {
                i += 1;
            }
            tokens.push((Token::Word(sql[start..i].to_string()), start));
        } else if c.is_ascii_digit()
            || (c == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            tokens.push((Token::Number(sql[start..i].to_string()), start));
        } else {
            let ch = sql[i..].chars().next().unwrap_or(' ');
            tokens.push((Token::Punct(ch), i));
            i += ch.len_utf8();
        }
    }
    Ok(Lexed { tokens })
}

impl Lexed {
    fn word(&self, i: usize) -> Option<String> {
        match self.tokens.get(i) {
            Some((Token::Word(w), _)) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn is(&self, i: usize, keyword: &str) -> bool {
        self.word(i).is_some_and(|w| w == keyword)
    }

    fn len(&self) -> usize {
        let trailing_semicolon =
            matches!(self.tokens.last(), Some((Token::Punct(';'), _))) as usize;
        self.tokens.len() - trailing_semicolon
    }

    /// An identifier: unquoted ones fold to lower case, as Trino does.
    fn ident(&self, i: usize) -> Option<String> {
        match self.tokens.get(i) {
            Some((Token::Word(w), _)) => Some(w.to_lowercase()),
            Some((Token::Quoted(q), _)) => Some(q.clone()),
            _ => None,
        }
    }

    /// A dotted name starting at `i`; returns the parts and the index after it.
    fn name(&self, mut i: usize) -> Option<(Vec<String>, usize)> {
        let mut parts = vec![self.ident(i)?];
        i += 1;
        while matches!(self.tokens.get(i), Some((Token::Punct('.'), _))) {
            parts.push(self.ident(i + 1)?);
            i += 2;
        }
        Some((parts, i))
    }

    fn offset(&self, i: usize) -> Option<usize> {
        self.tokens.get(i).map(|(_, o)| *o)
    }

    fn like(&self, i: usize) -> Result<Option<String>> {
        if i >= self.len() {
            return Ok(None);
        }
        if self.is(i, "LIKE")
            && let Some((Token::Str(p), _)) = self.tokens.get(i + 1)
        {
            return Ok(Some(p.clone()));
        }
        Err(SqeError::syntax("expected LIKE 'pattern'"))
    }
}

/// The SQL after the token at `i`, without a trailing `;`.
fn rest(sql: &str, lexed: &Lexed, i: usize) -> String {
    let text = lexed.offset(i).map_or("", |o| &sql[o..]);
    text.trim().trim_end_matches(';').trim().to_string()
}

fn expect_end(lexed: &Lexed, i: usize, what: &str) -> Result<()> {
    if i < lexed.len() {
        return Err(SqeError::syntax(format!(
            "unexpected text after {what} at offset {}",
            lexed.offset(i).unwrap_or(0)
        )));
    }
    Ok(())
}

/// Recognises a session statement; `None` means the engine should run the SQL.
pub fn parse(sql: &str) -> Result<Option<SessionStatement>> {
    let Ok(lexed) = lex(sql) else {
        // let the engine's parser report the syntax error with its position
        return Ok(None);
    };
    let w = |i| lexed.word(i);
    let Some(first) = w(0) else {
        return Ok(None);
    };
    let statement = match first.as_str() {
        "USE" => {
            let Some((parts, end)) = lexed.name(1) else {
                return Ok(None);
            };
            expect_end(&lexed, end, "USE")?;
            match parts.as_slice() {
                [schema] => SessionStatement::Use {
                    catalog: None,
                    schema: schema.clone(),
                },
                [catalog, schema] => SessionStatement::Use {
                    catalog: Some(catalog.clone()),
                    schema: schema.clone(),
                },
                _ => {
                    return Err(SqeError::syntax("USE takes a schema or catalog.schema"));
                }
            }
        }
        "SET" if lexed.is(1, "SESSION") => {
            if lexed.is(2, "AUTHORIZATION") {
                return Err(SqeError::not_supported("SET SESSION AUTHORIZATION"));
            }
            let (parts, end) = lexed
                .name(2)
                .ok_or_else(|| SqeError::syntax("SET SESSION needs a property name"))?;
            if !matches!(lexed.tokens.get(end), Some((Token::Punct('='), _))) {
                return Err(SqeError::syntax("expected SET SESSION name = value"));
            }
            let value = match lexed.tokens.get(end + 1) {
                Some((Token::Str(s), _)) => s.clone(),
                Some((Token::Number(n), _)) => n.clone(),
                Some((Token::Word(word), _)) => word.to_lowercase(),
                _ => return Err(SqeError::syntax("SET SESSION needs a value")),
            };
            expect_end(&lexed, end + 2, "SET SESSION")?;
            SessionStatement::SetSession {
                name: parts.join("."),
                value,
            }
        }
        "RESET" if lexed.is(1, "SESSION") => {
            let (parts, end) = lexed
                .name(2)
                .ok_or_else(|| SqeError::syntax("RESET SESSION needs a property name"))?;
            expect_end(&lexed, end, "RESET SESSION")?;
            SessionStatement::ResetSession {
                name: parts.join("."),
            }
        }
        "PREPARE" if lexed.is(2, "FROM") => SessionStatement::Prepare {
            name: lexed
                .ident(1)
                .ok_or_else(|| SqeError::syntax("PREPARE needs a name"))?,
            sql: rest(sql, &lexed, 3),
        },
        "EXECUTE" if lexed.is(1, "IMMEDIATE") => {
            let Some((Token::Str(text), _)) = lexed.tokens.get(2) else {
                return Err(SqeError::syntax("EXECUTE IMMEDIATE needs a string literal"));
            };
            let using = if lexed.is(3, "USING") {
                Some(rest(sql, &lexed, 4))
            } else {
                expect_end(&lexed, 3, "EXECUTE IMMEDIATE")?;
                None
            };
            SessionStatement::ExecuteImmediate {
                sql: text.clone(),
                using,
            }
        }
        "EXECUTE" => {
            let Some(name) = lexed.ident(1) else {
                return Ok(None);
            };
            let using = if lexed.is(2, "USING") {
                Some(rest(sql, &lexed, 3))
            } else if lexed.len() > 2 {
                // DataFusion's EXECUTE name(args) form
                return Ok(None);
            } else {
                None
            };
            SessionStatement::Execute { name, using }
        }
        "DEALLOCATE" => {
            let at = if lexed.is(1, "PREPARE") { 2 } else { 1 };
            let name = lexed
                .ident(at)
                .ok_or_else(|| SqeError::syntax("DEALLOCATE PREPARE needs a name"))?;
            expect_end(&lexed, at + 1, "DEALLOCATE PREPARE")?;
            SessionStatement::Deallocate { name }
        }
        "DESCRIBE" if lexed.is(1, "INPUT") || lexed.is(1, "OUTPUT") => {
            let name = lexed
                .ident(2)
                .ok_or_else(|| SqeError::syntax("DESCRIBE INPUT/OUTPUT needs a name"))?;
            expect_end(&lexed, 3, "DESCRIBE")?;
            if lexed.is(1, "INPUT") {
                SessionStatement::DescribeInput { name }
            } else {
                SessionStatement::DescribeOutput { name }
            }
        }
        "DESCRIBE" | "DESC" => {
            let Some((table, end)) = lexed.name(1) else {
                return Ok(None);
            };
            expect_end(&lexed, end, "DESCRIBE")?;
            SessionStatement::ShowColumns { table }
        }
        "START" if lexed.is(1, "TRANSACTION") => SessionStatement::StartTransaction,
        "BEGIN" if lexed.len() == 1 || lexed.is(1, "TRANSACTION") || lexed.is(1, "WORK") => {
            SessionStatement::StartTransaction
        }
        "COMMIT" if lexed.len() == 1 || lexed.is(1, "WORK") => SessionStatement::Commit,
        "ROLLBACK" if lexed.len() == 1 || lexed.is(1, "WORK") => SessionStatement::Rollback,
        "SHOW" => match w(1).as_deref() {
            Some("SESSION") => {
                expect_end(&lexed, 2, "SHOW SESSION")?;
                SessionStatement::ShowSession
            }
            Some("CATALOGS") => SessionStatement::ShowCatalogs {
                like: lexed.like(2)?,
            },
            Some("FUNCTIONS") => SessionStatement::ShowFunctions {
                like: lexed.like(2)?,
            },
            Some("COLUMNS") if lexed.is(2, "FROM") || lexed.is(2, "IN") => {
                let (table, end) = lexed
                    .name(3)
                    .ok_or_else(|| SqeError::syntax("SHOW COLUMNS FROM needs a table"))?;
                expect_end(&lexed, end, "SHOW COLUMNS")?;
                SessionStatement::ShowColumns { table }
            }
            Some("CREATE") if lexed.is(2, "TABLE") => {
                let (table, end) = lexed
                    .name(3)
                    .ok_or_else(|| SqeError::syntax("SHOW CREATE TABLE needs a table"))?;
                expect_end(&lexed, end, "SHOW CREATE TABLE")?;
                SessionStatement::ShowCreateTable { table }
            }
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(statement))
}

/// Splits the expressions after `USING` at top-level commas.
pub fn split_arguments(text: &str) -> Result<Vec<String>> {
    let lexed = lex(text)?;
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (token, offset) in &lexed.tokens {
        match token {
            Token::Punct('(' | '[') => depth += 1,
            Token::Punct(')' | ']') => depth -= 1,
            Token::Punct(',') if depth == 0 => {
                out.push(text[start..*offset].trim().to_string());
                start = offset + 1;
            }
            _ => {}
        }
    }
    let last = text[start..].trim().trim_end_matches(';').trim();
    if !last.is_empty() {
        out.push(last.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionStatement as S;

    fn p(sql: &str) -> Option<SessionStatement> {
        parse(sql).unwrap()
    }

    #[test]
    fn session_statements_are_recognised() {
        let cases = [
            (
                "USE tpch",
                Some(S::Use {
                    catalog: None,
                    schema: "tpch".into(),
                }),
            ),
            (
                "use SQE.\"Mixed\";",
                Some(S::Use {
                    catalog: Some("sqe".into()),
                    schema: "Mixed".into(),
                }),
            ),
            (
                "SET SESSION datafusion.execution.batch_size = 1024",
                Some(S::SetSession {
                    name: "datafusion.execution.batch_size".into(),
                    value: "1024".into(),
                }),
            ),
            (
                "SET SESSION query_max_run_time = '10m'",
                Some(S::SetSession {
                    name: "query_max_run_time".into(),
                    value: "10m".into(),
                }),
            ),
            (
                "RESET SESSION a.b",
                Some(S::ResetSession { name: "a.b".into() }),
            ),
            (
                "PREPARE st1 FROM SELECT * FROM t WHERE a = ?",
                Some(S::Prepare {
                    name: "st1".into(),
                    sql: "SELECT * FROM t WHERE a = ?".into(),
                }),
            ),
            (
                "EXECUTE st1 USING 1, 'a,b'",
                Some(S::Execute {
                    name: "st1".into(),
                    using: Some("1, 'a,b'".into()),
                }),
            ),
            (
                "EXECUTE st1",
                Some(S::Execute {
                    name: "st1".into(),
                    using: None,
                }),
            ),
            ("EXECUTE st1(1, 2)", None),
            (
                "EXECUTE IMMEDIATE 'SELECT ''x'', ?' USING 5",
                Some(S::ExecuteImmediate {
                    sql: "SELECT 'x', ?".into(),
                    using: Some("5".into()),
                }),
            ),
            (
                "DEALLOCATE PREPARE st1",
                Some(S::Deallocate { name: "st1".into() }),
            ),
            (
                "DESCRIBE OUTPUT st1",
                Some(S::DescribeOutput { name: "st1".into() }),
            ),
            (
                "DESCRIBE INPUT st1",
                Some(S::DescribeInput { name: "st1".into() }),
            ),
            (
                "DESCRIBE tpch.nation",
                Some(S::ShowColumns {
                    table: vec!["tpch".into(), "nation".into()],
                }),
            ),
            (
                "SHOW COLUMNS FROM nation",
                Some(S::ShowColumns {
                    table: vec!["nation".into()],
                }),
            ),
            (
                "SHOW CREATE TABLE nation",
                Some(S::ShowCreateTable {
                    table: vec!["nation".into()],
                }),
            ),
            (
                "SHOW CATALOGS LIKE 's%'",
                Some(S::ShowCatalogs {
                    like: Some("s%".into()),
                }),
            ),
            ("SHOW SESSION", Some(S::ShowSession)),
            ("START TRANSACTION", Some(S::StartTransaction)),
            ("COMMIT", Some(S::Commit)),
            ("ROLLBACK WORK", Some(S::Rollback)),
            ("SHOW TABLES", None),
            ("SELECT 1", None),
            ("-- comment\nSELECT 'use x'", None),
        ];
        for (sql, expected) in cases {
            assert_eq!(p(sql), expected, "{sql}");
        }
    }

    #[test]
    fn malformed_session_statements_are_syntax_errors() {
        for sql in [
            "SET SESSION x",
            "SET SESSION x =",
            "USE a.b.c",
            "RESET SESSION",
            "SHOW CATALOGS x",
            "DEALLOCATE PREPARE",
        ] {
            assert!(parse(sql).is_err(), "{sql}");
        }
    }

    #[test]
    fn using_arguments_split_at_top_level_commas() {
        assert_eq!(
            split_arguments("1, 'a,b', ARRAY[1, 2], ROW(1, 'x'), DATE '2020-01-01'").unwrap(),
            [
                "1",
                "'a,b'",
                "ARRAY[1, 2]",
                "ROW(1, 'x')",
                "DATE '2020-01-01'"
            ]
        );
        assert_eq!(split_arguments("").unwrap(), Vec::<String>::new());
    }
}
