//! Splitting SQL text into statements on `;`.
//!
//! A `;` ends a statement only outside single-quoted strings (including
//! `E'...'` strings with backslash escapes), double-quoted and backquoted
//! identifiers, `--` line comments and (nested) `/* */` block comments.
//! Comments before a statement are dropped, and statements that hold nothing
//! but whitespace and comments are skipped.

/// The result of scanning SQL text for statement terminators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Complete statements (each was terminated by `;`), without leading
    /// comments, trimmed, without the `;`.
    pub complete: Vec<String>,
    /// Byte offset just past the last terminating `;` (0 if there was none).
    pub consumed: usize,
    /// The unterminated text after the last `;`, without leading whitespace
    /// (and without leading comments once a statement has begun).
    /// `None` when it holds nothing but whitespace and finished comments, i.e.
    /// there is nothing left that needs more input.
    pub rest: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    /// Inside `'...'`; `backslash` is true for `E'...'` strings.
    SingleQuote {
        backslash: bool,
    },
    /// Inside `"..."` or `` `...` ``; holds the closing quote byte.
    QuotedIdent(u8),
    LineComment,
    /// Inside `/* ... */`, with the nesting depth.
    BlockComment(u32),
}

/// Splits `sql` into complete statements and the unterminated rest.
///
/// All delimiters are ASCII, and bytes of multi-byte UTF-8 characters are never
/// ASCII, so scanning bytes and slicing at delimiter positions is safe.
pub fn split_statements(sql: &str) -> Split {
    let bytes = sql.as_bytes();
    let mut complete = Vec::new();
    let mut state = State::Normal;
    let mut start = 0;
    // Where the current statement's first non-comment text is, if any yet.
    let mut content_start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match state {
            State::Normal => match b {
                b';' => {
                    if let Some(content) = content_start.take() {
                        complete.push(sql[content..i].trim_end().to_string());
                    }
                    start = i + 1;
                }
                b'-' if next == Some(b'-') => {
                    state = State::LineComment;
                    i += 1;
                }
                b'/' if next == Some(b'*') => {
                    state = State::BlockComment(1);
                    i += 1;
                }
                b'\'' => {
                    content_start.get_or_insert(i);
                    state = State::SingleQuote {
                        backslash: is_escape_string_prefix(bytes, i),
                    };
                }
                b'"' | b'`' => {
                    content_start.get_or_insert(i);
                    state = State::QuotedIdent(b);
                }
                _ if b.is_ascii_whitespace() => {}
                _ => {
                    content_start.get_or_insert(i);
                }
            },
            State::SingleQuote { backslash } => match b {
                b'\\' if backslash => i += 1,
                // A doubled quote is an escaped quote inside the string.
                b'\'' if next == Some(b'\'') => i += 1,
                b'\'' => state = State::Normal,
                _ => {}
            },
            State::QuotedIdent(quote) => {
                if b == quote {
                    if next == Some(quote) {
                        i += 1;
                    } else {
                        state = State::Normal;
                    }
                }
            }
            State::LineComment => {
                if b == b'\n' {
                    state = State::Normal;
                }
            }
            State::BlockComment(depth) => {
                if b == b'*' && next == Some(b'/') {
                    i += 1;
                    state = if depth <= 1 {
                        State::Normal
                    } else {
                        State::BlockComment(depth - 1)
                    };
                } else if b == b'/' && next == Some(b'*') {
                    i += 1;
                    state = State::BlockComment(depth + 1);
                }
            }
        }
        i += 1;
    }

    let open = matches!(
        state,
        State::SingleQuote { .. } | State::QuotedIdent(_) | State::BlockComment(_)
    );
    let rest = match content_start {
        Some(content) => Some(sql[content..].to_string()),
        None if open => Some(sql[start..].trim_start().to_string()),
        None => None,
    };
    Split {
        complete,
        consumed: start,
        rest,
    }
}

/// Splits a whole script (from `-e`, `-f` or piped stdin) into statements;
/// a final statement without a terminating `;` is included.
pub fn script_statements(sql: &str) -> Vec<String> {
    let split = split_statements(sql);
    let mut statements = split.complete;
    if let Some(rest) = split.rest {
        let rest = rest.trim_end();
        if !rest.is_empty() {
            statements.push(rest.to_string());
        }
    }
    statements
}

/// True when the quote at `quote_pos` opens an `E'...'` string: it follows a
/// lone `e`/`E` that is not the end of a longer identifier.
fn is_escape_string_prefix(bytes: &[u8], quote_pos: usize) -> bool {
    if quote_pos == 0 || !matches!(bytes[quote_pos - 1], b'e' | b'E') {
        return false;
    }
    match quote_pos.checked_sub(2).map(|p| bytes[p]) {
        None => true,
        Some(before) => !(before.is_ascii_alphanumeric() || before == b'_' || before >= 0x80),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(sql: &str) -> Vec<String> {
        split_statements(sql).complete
    }

    #[test]
    fn splits_simple_statements() {
        assert_eq!(
            complete("select 1; select 2;"),
            vec!["select 1", "select 2"]
        );
        assert_eq!(
            script_statements("select 1; select 2"),
            vec!["select 1", "select 2"]
        );
    }

    #[test]
    fn skips_empty_statements() {
        assert_eq!(script_statements(" ;; select 1 ;\n ; "), vec!["select 1"]);
        assert!(script_statements("").is_empty());
        assert!(script_statements("  \n\t ").is_empty());
        assert!(script_statements("-- only a comment\n; /* and another */ ;").is_empty());
    }

    #[test]
    fn ignores_semicolons_in_quotes() {
        assert_eq!(
            script_statements("select 'a;b', \"c;d\", `e;f`; select 2"),
            vec!["select 'a;b', \"c;d\", `e;f`", "select 2"]
        );
    }

    #[test]
    fn handles_doubled_quotes() {
        assert_eq!(
            script_statements("select 'it''s;ok'; select \"a\"\";b\"; select 3"),
            vec!["select 'it''s;ok'", "select \"a\"\";b\"", "select 3"]
        );
    }

    #[test]
    fn handles_backslash_escapes_only_in_e_strings() {
        assert_eq!(
            script_statements(r"select E'a\';b'; select 2"),
            vec![r"select E'a\';b'", "select 2"]
        );
        // Without the E prefix a backslash is an ordinary character.
        assert_eq!(
            script_statements(r"select 'a\'; select 2"),
            vec![r"select 'a\'", "select 2"]
        );
        // `type'...'` is not an escape string: the e ends a longer word.
        assert_eq!(
            script_statements(r"select type'a\'; select 2"),
            vec![r"select type'a\'", "select 2"]
        );
    }

    #[test]
    fn ignores_semicolons_in_comments() {
        assert_eq!(
            script_statements("select 1 -- not; here\n, 2; /* nor; here */ select 3"),
            vec!["select 1 -- not; here\n, 2", "select 3"]
        );
    }

    #[test]
    fn handles_nested_block_comments() {
        assert_eq!(
            script_statements("/* a /* b; */ c; */ select 1; select 2"),
            vec!["select 1", "select 2"]
        );
    }

    #[test]
    fn drops_leading_comments() {
        assert_eq!(
            script_statements("-- first\nselect 1; /* second */\n  select 2 -- trailing\n"),
            vec!["select 1", "select 2 -- trailing"]
        );
        let split = split_statements("select 1;\n-- about the next one\nselect");
        assert_eq!(split.rest.as_deref(), Some("select"));
    }

    #[test]
    fn dash_and_slash_alone_are_content() {
        assert_eq!(
            script_statements("select 4-2; select 4/2"),
            vec!["select 4-2", "select 4/2"]
        );
    }

    #[test]
    fn keeps_non_ascii_text_intact() {
        assert_eq!(
            script_statements("select 'héllo; wörld', ñ; select '日本'"),
            vec!["select 'héllo; wörld', ñ", "select '日本'"]
        );
    }

    #[test]
    fn reports_unterminated_rest() {
        let split = split_statements("select 1; select\n  2");
        assert_eq!(split.complete, vec!["select 1"]);
        assert_eq!(split.consumed, "select 1;".len());
        assert_eq!(split.rest.as_deref(), Some("select\n  2"));
    }

    #[test]
    fn comment_only_rest_needs_no_more_input() {
        assert_eq!(split_statements("select 1; -- done").rest, None);
        assert_eq!(split_statements("/* done */  ").rest, None);
        assert_eq!(split_statements("").rest, None);
    }

    #[test]
    fn open_quotes_and_comments_need_more_input() {
        assert_eq!(
            split_statements("select 'abc;").rest.as_deref(),
            Some("select 'abc;")
        );
        assert_eq!(
            split_statements("select \"abc;").rest.as_deref(),
            Some("select \"abc;")
        );
        assert_eq!(
            split_statements("/* open; ").rest.as_deref(),
            Some("/* open; ")
        );
        assert!(split_statements("select 'abc;").complete.is_empty());
    }
}
