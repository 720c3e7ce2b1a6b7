//! Cursor pagination shared by every list: `limit` plus an opaque `cursor`.
//!
//! A cursor is base64url text the server wrote; clients pass it back untouched. Its
//! content belongs to the adapter that issued it (for the ledger, the last `seq` seen).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("limit must be an integer from 1 to 100")]
    BadLimit,
    #[error("cursor is not one this API issued")]
    BadCursor,
}

/// An opaque position in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    pub fn encode(position: &str) -> Cursor {
        Cursor(URL_SAFE_NO_PAD.encode(position))
    }

    pub fn parse(text: &str) -> Result<Cursor, PageError> {
        if text.is_empty() || text.len() > 512 {
            return Err(PageError::BadCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| PageError::BadCursor)?;
        String::from_utf8(bytes).map(|_| Cursor(text.to_owned())).map_err(|_| PageError::BadCursor)
    }

    /// The position the cursor was encoded from.
    pub fn position(&self) -> String {
        URL_SAFE_NO_PAD.decode(&self.0).ok().and_then(|bytes| String::from_utf8(bytes).ok()).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

impl PageRequest {
    pub fn first(limit: u32) -> PageRequest {
        PageRequest { limit, cursor: None }
    }

    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<PageRequest, PageError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) && text.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(PageError::BadLimit),
            },
        };
        let cursor = cursor.map(Cursor::parse).transpose()?;
        Ok(PageRequest { limit, cursor })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` items read in list order: the extra one only says
    /// that another page follows, which then starts after the page's last item.
    pub fn from_lookahead(mut items: Vec<T>, limit: u32, cursor_after: impl Fn(&T) -> Cursor) -> Page<T> {
        let has_more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next = items.last().filter(|_| has_more).map(cursor_after);
        Page { items, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_one_to_one_hundred_are_rejected() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(PageRequest::parse(Some("100"), None).unwrap().limit, 100);
        for bad in ["0", "101", "-1", "ten", ""] {
            assert_eq!(PageRequest::parse(Some(bad), None), Err(PageError::BadLimit), "{bad:?}");
        }
    }

    #[test]
    fn a_cursor_round_trips_and_garbage_is_rejected() {
        let cursor = Cursor::encode("h:42");
        assert_eq!(Cursor::parse(cursor.as_str()).unwrap().position(), "h:42");
        assert_eq!(Cursor::parse("!!!"), Err(PageError::BadCursor));
    }
}
