//! SQL text preprocessing, before DataFusion's parser sees a statement (pure functions).
//!
//! - `?` placeholders (what JDBC and ADBC send) become DataFusion's `$1, $2, …`.
//! - For Trino clients, unnamed result columns get Trino's positional names (`_col0`).
//! - A `PARTITIONED BY (day(ts), bucket(16, id))` clause of `CREATE TABLE` (Spark / Iceberg
//!   syntax, which sqlparser cannot parse) is cut out and returned as [`PartitionTerm`]s. The
//!   Trino form `WITH (partitioning = ARRAY['day(ts)', 'bucket(id, 16)'])` is read from the
//!   parsed statement and goes through the same term parser.

use datafusion::sql::sqlparser::ast::{Expr, Ident, SelectItem, SetExpr, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};

use crate::error::{Result, SqeError};

/// One partition field: a transform applied to a source column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTerm {
    pub column: String,
    pub transform: Transform,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Identity,
    Year,
    Month,
    Day,
    Hour,
    Bucket(u32),
    Truncate(u32),
    Void,
}

impl PartitionTerm {
    /// The partition field's name, as Spark and Trino name it (`ts_day`, `id_bucket`).
    pub fn field_name(&self) -> String {
        let suffix = match self.transform {
            Transform::Identity => return self.column.clone(),
            Transform::Year => "year",
            Transform::Month => "month",
            Transform::Day => "day",
            Transform::Hour => "hour",
            Transform::Bucket(_) => "bucket",
            Transform::Truncate(_) => "trunc",
            Transform::Void => "null",
        };
        format!("{}_{suffix}", self.column)
    }
}

fn tokenize(sql: &str) -> Result<Vec<Token>> {
    Tokenizer::new(&GenericDialect {}, sql)
        .with_unescape(false)
        .tokenize()
        .map_err(|e| SqeError::syntax(format!("SQL syntax error: {e}")))
}

fn render(tokens: &[Token]) -> String {
    tokens.iter().map(ToString::to_string).collect()
}

fn is_keyword(t: &Token, k: Keyword) -> bool {
    matches!(t, Token::Word(Word { keyword, quote_style: None, .. }) if *keyword == k)
}

fn significant(tokens: &[Token]) -> impl Iterator<Item = (usize, &Token)> {
    tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t, Token::Whitespace(_)))
}

/// Rewrites `?` placeholders to `$1, $2, …` in order of appearance, and Trino type names
/// DataFusion does not know (`VARBINARY`) to their DataFusion spelling.
pub fn number_placeholders(sql: &str) -> Result<String> {
    let has_varbinary = sql.to_ascii_lowercase().contains("varbinary");
    if !sql.contains('?') && !has_varbinary {
        return Ok(sql.to_string());
    }
    let mut tokens = tokenize(sql)?;
    let mut n = 0;
    for t in tokens.iter_mut() {
        match t {
            Token::Placeholder(p) if p == "?" => {
                n += 1;
                *t = Token::Placeholder(format!("${n}"));
            }
            Token::Word(w)
                if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("varbinary") =>
            {
                w.value = "BYTEA".into();
            }
            _ => {}
        }
    }
    Ok(render(&tokens))
}

/// Cuts a top-level `PARTITIONED BY (…)` / `PARTITION BY (…)` clause out of a
/// `CREATE TABLE` statement. Returns the remaining SQL and the terms, if there was a clause.
pub fn extract_partitioning(sql: &str) -> Result<(String, Option<Vec<PartitionTerm>>)> {
    let upper = sql.trim_start().get(..6).map(str::to_ascii_uppercase);
    if upper.as_deref() != Some("CREATE") || !sql.to_ascii_uppercase().contains("PARTITION") {
        return Ok((sql.to_string(), None));
    }
    let tokens = tokenize(sql)?;
    let sig: Vec<(usize, &Token)> = significant(&tokens).collect();
    if !sig
        .iter()
        .take(4)
        .any(|(_, t)| is_keyword(t, Keyword::TABLE))
    {
        return Ok((sql.to_string(), None));
    }
    let mut depth = 0i32;
    for (pos, (idx, tok)) in sig.iter().enumerate() {
        match tok {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        if depth != 0
            || !(is_keyword(tok, Keyword::PARTITIONED) || is_keyword(tok, Keyword::PARTITION))
        {
            continue;
        }
        let (Some((_, by)), Some((_, open))) = (sig.get(pos + 1), sig.get(pos + 2)) else {
            continue;
        };
        if !is_keyword(by, Keyword::BY) || **open != Token::LParen {
            continue;
        }
        // find the matching close paren
        let mut d = 0;
        let mut close = None;
        for (j, (_, t)) in sig.iter().enumerate().skip(pos + 2) {
            match t {
                Token::LParen => d += 1,
                Token::RParen => {
                    d -= 1;
                    if d == 0 {
                        close = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let close = close.ok_or_else(|| {
            SqeError::syntax("SQL syntax error: PARTITIONED BY ( is never closed")
        })?;
        let inner: Vec<Token> = sig[pos + 3..close]
            .iter()
            .map(|(_, t)| (*t).clone())
            .collect();
        let terms = parse_terms(&inner)?;
        let start = *idx;
        let end = sig[close].0;
        let mut rest: Vec<Token> = tokens[..start].to_vec();
        rest.extend_from_slice(&tokens[end + 1..]);
        return Ok((render(&rest), Some(terms)));
    }
    Ok((sql.to_string(), None))
}

/// Parses one term given as text, e.g. `'bucket(id, 16)'` from Trino's `partitioning` property.
pub fn parse_term_text(text: &str) -> Result<PartitionTerm> {
    let tokens: Vec<Token> = significant(&tokenize(text)?)
        .map(|(_, t)| t.clone())
        .collect();
    let mut terms = parse_terms(&tokens)?;
    match (terms.pop(), terms.is_empty()) {
        (Some(t), true) => Ok(t),
        _ => Err(SqeError::semantic(format!(
            "`{text}` is not one partition term such as `day(ts)` or `bucket(16, id)`"
        ))),
    }
}

fn parse_terms(tokens: &[Token]) -> Result<Vec<PartitionTerm>> {
    let mut terms = Vec::new();
    // split on top-level commas
    let mut depth = 0;
    let mut current: Vec<Token> = Vec::new();
    let mut parts: Vec<Vec<Token>> = Vec::new();
    for t in tokens {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(t.clone());
    }
    parts.push(current);
    for part in parts {
        terms.push(parse_term(&part)?);
    }
    if terms.is_empty() {
        return Err(SqeError::semantic(
            "PARTITIONED BY needs at least one column or transform",
        ));
    }
    Ok(terms)
}

fn ident(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_some() => Some(w.value.clone()),
        Token::Word(w) => Some(w.value.to_ascii_lowercase()),
        _ => None,
    }
}

fn number(t: &Token) -> Option<u32> {
    match t {
        Token::Number(n, _) => n.parse().ok(),
        _ => None,
    }
}

fn parse_term(tokens: &[Token]) -> Result<PartitionTerm> {
    let text = render(tokens);
    let bad = || {
        SqeError::semantic(format!(
            "unsupported partition term `{}`: use a column, year(col), month(col), day(col), \
             hour(col), bucket(n, col), truncate(w, col) or void(col)",
            text.trim()
        ))
    };
    match tokens {
        [col] => Ok(PartitionTerm {
            column: ident(col).ok_or_else(bad)?,
            transform: Transform::Identity,
        }),
        [func, Token::LParen, arg, Token::RParen] => {
            let name = ident(func).ok_or_else(bad)?;
            let column = ident(arg).ok_or_else(bad)?;
            let transform = match name.as_str() {
                "year" | "years" => Transform::Year,
                "month" | "months" => Transform::Month,
                "day" | "days" | "date" => Transform::Day,
                "hour" | "hours" | "date_hour" => Transform::Hour,
                "void" => Transform::Void,
                "identity" => Transform::Identity,
                _ => return Err(bad()),
            };
            Ok(PartitionTerm { column, transform })
        }
        [func, Token::LParen, a, Token::Comma, b, Token::RParen] => {
            let name = ident(func).ok_or_else(bad)?;
            // Spark/Iceberg order is (n, col); Trino's is (col, n): accept both.
            let (n, column) = match (number(a), number(b)) {
                (Some(n), None) => (n, ident(b).ok_or_else(bad)?),
                (None, Some(n)) => (n, ident(a).ok_or_else(bad)?),
                _ => return Err(bad()),
            };
            if n == 0 {
                return Err(SqeError::semantic(format!(
                    "partition term `{}`: the width must be positive",
                    text.trim()
                )));
            }
            let transform = match name.as_str() {
                "bucket" => Transform::Bucket(n),
                "truncate" | "trunc" => Transform::Truncate(n),
                _ => return Err(bad()),
            };
            Ok(PartitionTerm { column, transform })
        }
        _ => Err(bad()),
    }
}

/// Points Trino clients' `[catalog.]information_schema.columns` at `system.metadata.columns`,
/// which has Trino's columns (`comment`) and type names (`varchar`, `decimal(15, 2)`), where
/// DataFusion's `information_schema.columns` has Arrow's (`Utf8`).
pub fn use_trino_information_schema(statement: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{ObjectNamePart, visit_relations_mut};
    let _ = visit_relations_mut(statement, |name| {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
            .collect();
        let tail: Vec<&str> = parts.iter().rev().take(2).map(String::as_str).collect();
        if parts.len() <= 3 && tail == ["columns", "information_schema"] {
            name.0 = ["system", "metadata", "columns"]
                .iter()
                .map(|p| ObjectNamePart::Identifier(Ident::new(*p)))
                .collect();
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// Gives unnamed expressions in the outermost `SELECT` list Trino's positional names
/// (`SELECT 1, a, b + 1` → `_col0`, `a`, `_col2`); column references keep their names.
pub fn name_columns_by_position(statement: &mut Statement) {
    fn body(set: &mut SetExpr) {
        match set {
            SetExpr::Select(select) => {
                for (i, item) in select.projection.iter_mut().enumerate() {
                    if let SelectItem::UnnamedExpr(expr) = item
                        && !matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                    {
                        *item = SelectItem::ExprWithAlias {
                            expr: expr.clone(),
                            alias: Ident::new(format!("_col{i}")),
                        };
                    }
                }
            }
            SetExpr::SetOperation { left, .. } => body(left),
            SetExpr::Query(q) => body(&mut q.body),
            _ => {}
        }
    }
    if let Statement::Query(q) = statement {
        body(&mut q.body);
    }
}

/// SQL `LIKE`: `%` matches any run, `_` one character, and `escape` (when given) makes the
/// next character literal.
pub fn like_match(pattern: &str, value: &str, escape: Option<char>) -> bool {
    #[derive(Clone, Copy)]
    enum P {
        Any,
        One,
        Char(char),
    }
    let mut parts = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        parts.push(match c {
            c if Some(c) == escape => P::Char(chars.next().unwrap_or(c)),
            '%' => P::Any,
            '_' => P::One,
            c => P::Char(c),
        });
    }
    let value: Vec<char> = value.chars().collect();
    // dynamic programming over (pattern position, value position)
    let mut reach = vec![false; value.len() + 1];
    reach[0] = true;
    for p in parts {
        let mut next = vec![false; value.len() + 1];
        for i in 0..=value.len() {
            if !reach[i] {
                continue;
            }
            match p {
                P::Any => {
                    for r in next.iter_mut().skip(i) {
                        *r = true;
                    }
                    break;
                }
                P::One if i < value.len() => next[i + 1] = true,
                P::Char(c) if i < value.len() && value[i] == c => next[i + 1] = true,
                _ => {}
            }
        }
        reach = next;
    }
    reach[value.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_strings() {
        let out = number_placeholders("SELECT '?' , a FROM t WHERE a = ? AND b > ?").unwrap();
        assert_eq!(out, "SELECT '?' , a FROM t WHERE a = $1 AND b > $2");
        let out = number_placeholders("CREATE TABLE t (b VARBINARY, \"varbinary\" INT)").unwrap();
        assert_eq!(out, "CREATE TABLE t (b BYTEA, \"varbinary\" INT)");
    }

    #[test]
    fn partitioned_by_is_extracted() {
        let (sql, terms) = extract_partitioning(
            "CREATE TABLE s.t (id BIGINT, ts TIMESTAMP, name VARCHAR) PARTITIONED BY (day(ts), bucket(4, id), name)",
        )
        .unwrap();
        assert_eq!(
            sql.trim_end(),
            "CREATE TABLE s.t (id BIGINT, ts TIMESTAMP, name VARCHAR)"
        );
        let terms = terms.unwrap();
        assert_eq!(terms.len(), 3);
        assert_eq!(terms[0].transform, Transform::Day);
        assert_eq!(terms[0].field_name(), "ts_day");
        assert_eq!(terms[1].transform, Transform::Bucket(4));
        assert_eq!(terms[1].column, "id");
        assert_eq!(terms[2].transform, Transform::Identity);
    }

    #[test]
    fn ctas_keeps_the_query() {
        let (sql, terms) = extract_partitioning(
            "create table t partitioned by (truncate(id, 10)) as select 1 as id",
        )
        .unwrap();
        assert_eq!(sql, "create table t  as select 1 as id");
        assert_eq!(terms.unwrap()[0].transform, Transform::Truncate(10));
    }

    #[test]
    fn partition_inside_a_query_is_left_alone() {
        let q = "CREATE TABLE t AS SELECT row_number() OVER (PARTITION BY a) FROM x";
        let (sql, terms) = extract_partitioning(q).unwrap();
        assert_eq!(sql, q);
        assert!(terms.is_none());
    }

    #[test]
    fn bad_terms_are_named() {
        let err = extract_partitioning("CREATE TABLE t (a INT) PARTITIONED BY (fortnight(a))")
            .unwrap_err();
        assert!(err.to_string().contains("fortnight(a)"), "{err}");
        assert!(parse_term_text("bucket(id, 0)").is_err());
        assert_eq!(
            parse_term_text("bucket(id, 16)").unwrap().transform,
            Transform::Bucket(16)
        );
    }

    #[test]
    fn like_matches_with_an_escape() {
        let cases = [
            ("tpch", "tpch", None, true),
            ("tp%", "tpch", None, true),
            ("t_ch", "tpch", None, true),
            ("t_ch", "tpcch", None, false),
            ("%", "", None, true),
            ("a\\_b", "a_b", Some('\\'), true),
            ("a\\_b", "axb", Some('\\'), false),
            ("a\\%", "a%", Some('\\'), true),
            ("a\\%", "ab", Some('\\'), false),
            ("%ch%", "tpch", None, true),
        ];
        for (pattern, value, escape, expected) in cases {
            assert_eq!(
                like_match(pattern, value, escape),
                expected,
                "{pattern} {value}"
            );
        }
    }

    #[test]
    fn unnamed_columns_get_positional_names() {
        use datafusion::sql::sqlparser::parser::Parser;
        let mut statement = Parser::parse_sql(
            &GenericDialect {},
            "SELECT 1, a, b + 1 AS c, t.d, count(*) FROM t",
        )
        .unwrap()
        .remove(0);
        name_columns_by_position(&mut statement);
        assert_eq!(
            statement.to_string(),
            "SELECT 1 AS _col0, a, b + 1 AS c, t.d, count(*) AS _col4 FROM t"
        );
    }
}
