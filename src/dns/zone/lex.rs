//! The RFC 1035 §5.1 master-file lexer: splits a zone file into entries (one logical line each,
//! parentheses joining physical lines) of tokens, each with its line and column so that every
//! later error points at the file's own position.

/// One token of an entry. `text` is raw: escapes are kept (`\.` stays two characters) so that
/// names and character-strings can each decode them by their own rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub text: String,
    pub quoted: bool,
    pub line: u32,
    pub col: u32,
}

/// One logical line. `blank_owner` is set when the line began with white space, meaning "same
/// owner as the previous record".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub blank_owner: bool,
    pub tokens: Vec<Token>,
}

/// A lexing error: position and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

pub(crate) fn lex(text: &str) -> Result<Vec<Entry>, LexError> {
    let mut entries = Vec::new();
    let mut cur = Entry { blank_owner: false, tokens: Vec::new() };
    let mut depth = 0u32;
    let mut open_paren = (0, 0);
    let (mut line, mut col) = (1u32, 0u32);
    let mut at_line_start = true;
    let mut chars = text.chars().peekable();
    let mut word: Option<Token> = None;

    fn finish_word(word: &mut Option<Token>, cur: &mut Entry) {
        if let Some(t) = word.take() {
            cur.tokens.push(t);
        }
    }

    while let Some(c) = chars.next() {
        col += 1;
        let line_start = at_line_start;
        at_line_start = false;
        match c {
            '\n' => {
                finish_word(&mut word, &mut cur);
                if depth == 0 && !cur.tokens.is_empty() {
                    entries.push(std::mem::replace(
                        &mut cur,
                        Entry { blank_owner: false, tokens: Vec::new() },
                    ));
                }
                line += 1;
                col = 0;
                at_line_start = true;
            }
            ' ' | '\t' | '\r' => {
                finish_word(&mut word, &mut cur);
                if line_start && depth == 0 && cur.tokens.is_empty() && c != '\r' {
                    cur.blank_owner = true;
                }
            }
            ';' => {
                finish_word(&mut word, &mut cur);
                // A comment runs to the end of the line; the newline itself is handled above.
                while let Some(&n) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            '(' => {
                finish_word(&mut word, &mut cur);
                depth += 1;
                open_paren = (line, col);
            }
            ')' => {
                finish_word(&mut word, &mut cur);
                if depth == 0 {
                    return Err(LexError { line, col, message: "unbalanced ')'".into() });
                }
                depth -= 1;
            }
            '"' => {
                finish_word(&mut word, &mut cur);
                let (start_line, start_col) = (line, col);
                let mut s = String::new();
                let mut closed = false;
                while let Some(q) = chars.next() {
                    col += 1;
                    match q {
                        '\\' => {
                            s.push('\\');
                            if let Some(e) = chars.next() {
                                col += 1;
                                if e == '\n' {
                                    line += 1;
                                    col = 0;
                                }
                                s.push(e);
                            }
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\n' => {
                            return Err(LexError {
                                line: start_line,
                                col: start_col,
                                message: "unterminated quoted string".into(),
                            });
                        }
                        _ => s.push(q),
                    }
                }
                if !closed {
                    return Err(LexError {
                        line: start_line,
                        col: start_col,
                        message: "unterminated quoted string".into(),
                    });
                }
                cur.tokens.push(Token { text: s, quoted: true, line: start_line, col: start_col });
            }
            _ => {
                let w = word.get_or_insert_with(|| Token {
                    text: String::new(),
                    quoted: false,
                    line,
                    col,
                });
                if c == '\\' {
                    // Keep the escape and the escaped character together, so an escaped
                    // space, semicolon or parenthesis stays inside the token.
                    w.text.push('\\');
                    if let Some(e) = chars.next() {
                        col += 1;
                        w.text.push(e);
                    }
                } else {
                    w.text.push(c);
                }
            }
        }
    }
    finish_word(&mut word, &mut cur);
    if depth > 0 {
        return Err(LexError {
            line: open_paren.0,
            col: open_paren.1,
            message: "'(' is never closed".into(),
        });
    }
    if !cur.tokens.is_empty() {
        entries.push(cur);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(e: &Entry) -> Vec<&str> {
        e.tokens.iter().map(|t| t.text.as_str()).collect()
    }

    #[test]
    fn joins_parentheses_and_drops_comments() {
        let src = "@ IN SOA ns1 host ( 1 ; serial\n  2 3\n 4 5 )\nwww A 192.0.2.1 ; c\n";
        let e = lex(src).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(texts(&e[0]), ["@", "IN", "SOA", "ns1", "host", "1", "2", "3", "4", "5"]);
        assert_eq!(texts(&e[1]), ["www", "A", "192.0.2.1"]);
        assert_eq!((e[1].tokens[0].line, e[1].tokens[0].col), (4, 1));
    }

    #[test]
    fn blank_owner_quotes_and_escapes() {
        let src = "a TXT \"x; y\" b\\ c\n\tA 192.0.2.1\n";
        let e = lex(src).unwrap();
        assert_eq!(texts(&e[0]), ["a", "TXT", "x; y", "b\\ c"]);
        assert!(e[0].tokens[2].quoted);
        assert!(e[1].blank_owner);
        assert_eq!(e[1].tokens[0].col, 2);
    }

    #[test]
    fn errors_carry_positions() {
        let err = lex("a TXT \"open\n").unwrap_err();
        assert_eq!((err.line, err.col), (1, 7));
        let err = lex("\n\n@ SOA ( 1 2\n").unwrap_err();
        assert_eq!((err.line, err.col, err.message.as_str()), (3, 7, "'(' is never closed"));
    }
}
