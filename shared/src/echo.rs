//! Quoting a client's input back in an error message, bounded.
//!
//! An error names what was wrong with the input, quoting at most its first
//! [`MAX_QUOTED_CHARS`] characters: an 8 KB value never comes back whole, so an
//! answer (and the log line that records it) stays small, and whatever a client sends
//! is not reflected back at length. Messages this crate writes quote through
//! [`quote`]; messages libraries write (serde's `invalid type: string "…"`,
//! `unknown field `…``) pass through [`shorten_quoted`], which every
//! [`crate::http::ApiError`] applies to its message as the backstop.

/// The most characters of a client's input an error message repeats.
pub const MAX_QUOTED_CHARS: usize = 32;

/// The ellipsis that marks a cut quote.
const CUT: char = '…';

/// `text` quoted and escaped as `{:?}` does, cut after [`MAX_QUOTED_CHARS`]
/// characters: `"0000000000…"…` (the ellipsis outside the quotes says it was cut).
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}{CUT}", &text[..cut]),
    }
}

/// `message` with every quoted run — between `"` (with `\` escapes) or between
/// backticks — cut to [`MAX_QUOTED_CHARS`] characters, as [`quote`] cuts. Text outside
/// quotes is kept as it is.
pub fn shorten_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(256));
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' && c != '`' {
            continue;
        }
        let (close, mut kept, mut cut) = (c, 0, false);
        loop {
            let Some(next) = chars.next() else {
                // An unterminated quote: say it was cut, if it was.
                if cut {
                    out.push(CUT);
                }
                return out;
            };
            if next == close {
                out.push(close);
                if cut {
                    out.push(CUT);
                }
                break;
            }
            // An escape and what it escapes count as one character of the quote.
            let escaped = (close == '"' && next == '\\').then(|| chars.next()).flatten();
            if kept < MAX_QUOTED_CHARS {
                out.push(next);
                out.extend(escaped);
                kept += 1;
            } else {
                cut = true;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_input_is_quoted_whole_and_a_long_one_by_its_first_32_characters() {
        assert_eq!(quote("007"), r#""007""#);
        assert_eq!(quote(&"x".repeat(8192)), format!("\"{}\"…", "x".repeat(32)));
        assert_eq!(quote(&"é".repeat(40)), format!("\"{}\"…", "é".repeat(32)), "characters, not bytes");
        assert_eq!(quote("a\"b"), r#""a\"b""#);
    }

    #[test]
    fn quoted_runs_in_a_library_message_are_cut_and_the_rest_is_kept() {
        let long = "y".repeat(8192);
        let serde = format!(r#"invalid type: string "{long}", expected u64"#);
        assert_eq!(shorten_quoted(&serde), format!(r#"invalid type: string "{}"…, expected u64"#, "y".repeat(32)));
        let unknown = format!("unknown field `{long}`, expected `amount`");
        assert_eq!(shorten_quoted(&unknown), format!("unknown field `{}`…, expected `amount`", "y".repeat(32)));
        let escaped = format!(r#"string "{}""#, r#"\""#.repeat(100));
        assert_eq!(shorten_quoted(&escaped), format!(r#"string "{}"…"#, r#"\""#.repeat(32)));
        assert_eq!(shorten_quoted(r#"must be "1000.00", not `x`"#), r#"must be "1000.00", not `x`"#);
        assert_eq!(shorten_quoted(&format!("open \"{long}")), format!("open \"{}…", "y".repeat(32)));
    }
}
