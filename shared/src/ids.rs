//! Identifier newtypes. Numeric ids are positive integers as in the baseline API;
//! orders, payments and ledger entries have ULIDs (time-ordered, unique without
//! coordination).
//!
//! Every id has one spelling, so no two texts reach the same record: a numeric id is
//! plain digits without a sign, spaces or leading zeros (`7`, never `007` or `+7`); a
//! ULID is read case-insensitively, as its spec says, and always written (and keyed)
//! in its canonical upper case.

use std::fmt;
use std::str::FromStr;

/// Why an id in a path, query or body is not acceptable: what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be {0}")]
pub struct IdError(&'static str);

const NUMERIC: IdError = IdError("a positive integer");
const LEADING_ZERO: IdError = IdError("a positive integer without leading zeros");

/// Deserialises a numeric id from a JSON integer or a string of digits.
struct NumericIdVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: FromStr + TryFrom<u64>> serde::de::Visitor<'de> for NumericIdVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a positive integer")
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<T, E> {
        T::try_from(value).map_err(|_| E::custom(format!("{NUMERIC}, not {value}")))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<T, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(E::custom(format!("{NUMERIC}, not {value}"))),
        }
    }

    /// `7.0` is the number 7 (JSON has one number type, and JSON Schema reads a whole
    /// number as an integer); `7.5` is no id.
    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<T, E> {
        match whole_number(value) {
            Some(whole) => self.visit_u64(whole),
            None => Err(E::custom(format!("{NUMERIC}, not {value}"))),
        }
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(|_| E::custom(format!("{}, not {}", numeric_error(text), crate::echo::quote(text))))
    }
}

/// The whole number a JSON number stands for, if it is one that a `u64` holds
/// exactly: `3`, `3.0` and `3e0` are all the number 3.
pub fn whole_number(value: f64) -> Option<u64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: past it, not every integer is a float
    (value.is_finite() && value.fract() == 0.0 && (0.0..=EXACT).contains(&value)).then_some(value as u64)
}

/// Deserialises a count in a request body (a quantity, a stock, a total) from a JSON
/// whole number, whichever way it is written: `#[serde(deserialize_with = "count")]`.
pub fn count<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Count;
    impl serde::de::Visitor<'_> for Count {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number")
        }

        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }

        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value).map_err(|_| E::custom(format!("must be a whole number, not {value}")))
        }

        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<u64, E> {
            whole_number(value).ok_or_else(|| E::custom(format!("must be a whole number, not {value}")))
        }
    }
    deserializer.deserialize_any(Count)
}

/// Why `text` is not a numeric id's one spelling (digits, no leading zeros).
fn numeric_error(text: &str) -> IdError {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if digits && text.len() > 1 && text.starts_with('0') {
        LEADING_ZERO
    } else {
        NUMERIC
    }
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u64);

        impl $name {
            /// Ids are capped at 10^15, below both JSON's exact-integer range and i64.
            pub const MAX: u64 = 1_000_000_000_000_000;

            pub fn new(value: u64) -> Result<Self, IdError> {
                if value == 0 || value > Self::MAX {
                    return Err(NUMERIC);
                }
                Ok(Self(value))
            }

            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            /// Digits only: no sign, spaces, exponent or leading zeros, so `7` is the
            /// one text of user 7.
            fn from_str(text: &str) -> Result<Self, IdError> {
                if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(NUMERIC);
                }
                if text.len() > 1 && text.starts_with('0') {
                    return Err(LEADING_ZERO);
                }
                Self::new(text.parse().map_err(|_| NUMERIC)?)
            }
        }

        impl TryFrom<u64> for $name {
            type Error = IdError;
            fn try_from(value: u64) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_u64(self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            /// A JSON integer or a string of digits.
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(NumericIdVisitor(std::marker::PhantomData))
            }
        }
    };
}

numeric_id!(
    /// A customer.
    UserId
);
numeric_id!(
    /// A catalogue product.
    ProductId
);
numeric_id!(
    /// A first-come coupon.
    CouponId
);

/// A ULID's text: 26 characters of Crockford's base32 in either case (the ULID spec
/// makes it case-insensitive), the first at most `7`. A larger first character would
/// need 131 bits: the decoder drops the extra bits without a word, so `8…` would name
/// the same id as `0…`. The value is the number; its text is always written in upper
/// case, so whatever keys on an id keys on its one spelling.
fn parse_ulid(text: &str) -> Option<ulid::Ulid> {
    let bytes = text.as_bytes();
    if bytes.len() != ulid::ULID_LEN || !matches!(bytes[0], b'0'..=b'7') {
        return None;
    }
    ulid::Ulid::from_string(&text.to_ascii_uppercase()).ok()
}

/// A JSON value that is not a string, shown without repeating much of it.
fn json_kind(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Array(_) => "an array".to_owned(),
        serde_json::Value::Object(_) => "an object".to_owned(),
        // Numbers, booleans and null are short.
        other => other.to_string(),
    }
}

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(ulid::Ulid);

        impl $name {
            pub fn generate() -> $name {
                $name(ulid::Ulid::generate())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            /// A 26-character ULID, as this API issues them, in either case.
            fn from_str(text: &str) -> Result<Self, IdError> {
                parse_ulid(text).map($name).ok_or(IdError($what))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            /// A JSON string holding the id.
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                use serde::de::Error as _;
                let value = serde_json::Value::deserialize(deserializer)?;
                match &value {
                    serde_json::Value::String(text) => text
                        .parse()
                        .map_err(|e: IdError| D::Error::custom(format!("{e}, not {}", crate::echo::quote(text)))),
                    other => Err(D::Error::custom(format!("must be {}, not {}", $what, json_kind(other)))),
                }
            }
        }
    };
}

ulid_id!(
    /// An order (opaque to clients).
    OrderId,
    "an order id this API issued"
);
ulid_id!(
    /// One payment attempt of an order (opaque to clients).
    PaymentId,
    "a payment id this API issued"
);

/// How many of one product an order line asks for: 1 to [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Quantity(u32);

impl Quantity {
    pub const MAX: u32 = 1000;

    pub fn new(value: u64) -> Option<Quantity> {
        (1..=u64::from(Self::MAX)).contains(&value).then_some(Quantity(value as u32))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// One balance-ledger entry (a charge, a use, a payment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId(ulid::Ulid);

impl EntryId {
    pub fn generate() -> EntryId {
        EntryId(ulid::Ulid::generate())
    }
}

impl FromStr for EntryId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, IdError> {
        parse_ulid(text).map(EntryId).ok_or(IdError("a ledger entry id"))
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl serde::Serialize for EntryId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A client's `Idempotency-Key`: 1–128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to 128 printable ASCII characters")]
pub struct IdempotencyKeyError;

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<IdempotencyKey, IdempotencyKeyError> {
        let ok = !text.is_empty() && text.len() <= 128 && text.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(IdempotencyKey(text.to_owned()))
        } else {
            Err(IdempotencyKeyError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whose idempotency keys a key is among: one user's, or the operators' (shared by
/// every operator, so two operators must not send one key for different requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    User(UserId),
    Operators,
}

impl From<UserId> for KeyScope {
    fn from(user: UserId) -> KeyScope {
        KeyScope::User(user)
    }
}

impl std::fmt::Display for KeyScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyScope::User(user) => write!(f, "user {user}"),
            KeyScope::Operators => f.write_str("the operators"),
        }
    }
}

/// What the change an idempotency key guards made: a retry under the key answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTarget {
    Entry(EntryId),
    Order(OrderId),
    Payment(PaymentId),
    Product(ProductId),
    Coupon(CouponId),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_positive_integers_written_as_plain_digits() {
        assert_eq!("42".parse::<UserId>().unwrap().get(), 42);
        assert_eq!("10".parse::<UserId>().unwrap().get(), 10);
        for bad in ["0", "-1", "+1", "abc", "1.5", "1e3", "", " 1", "1 ", "\t7", "7\n", "99999999999999999999"] {
            assert!(bad.parse::<UserId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_numeric_id_has_one_spelling_so_leading_zeros_are_refused() {
        for bad in ["007", "07", "00", "0000000000000001"] {
            assert!(bad.parse::<UserId>().is_err(), "{bad:?}");
            assert!(bad.parse::<ProductId>().is_err(), "{bad:?}");
            assert!(bad.parse::<CouponId>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "007".parse::<CouponId>().unwrap_err().to_string(),
            "must be a positive integer without leading zeros"
        );
        let err = serde_json::from_str::<ProductId>("\"007\"").unwrap_err().to_string();
        assert!(err.starts_with("must be a positive integer without leading zeros, not \"007\""), "{err}");
        assert!(serde_json::from_str::<ProductId>("007").is_err(), "JSON itself has no leading zeros");
    }

    #[test]
    fn an_id_error_quotes_only_the_start_of_a_long_input() {
        let long = format!("\"{}\"", "9".repeat(8192));
        let err = serde_json::from_str::<UserId>(&long).unwrap_err().to_string();
        assert!(err.len() < 120, "{err}");
        let err = serde_json::from_str::<OrderId>(&format!("\"{}\"", "x".repeat(8192))).unwrap_err().to_string();
        assert!(err.len() < 120, "{err}");
        let err = serde_json::from_str::<OrderId>(&format!("[{}]", "1,".repeat(4000) + "1")).unwrap_err().to_string();
        assert!(err.starts_with("must be an order id this API issued, not an array"), "{err}");
    }

    #[test]
    fn a_ulid_reads_in_either_case_and_is_written_in_upper_case() {
        let id = OrderId::generate();
        let upper = id.to_string();
        assert_eq!(upper, upper.to_ascii_uppercase());
        assert_eq!(upper.to_ascii_lowercase().parse::<OrderId>(), Ok(id));
        assert_eq!(upper.to_ascii_lowercase().parse::<OrderId>().unwrap().to_string(), upper);
        let payment = PaymentId::generate();
        assert_eq!(payment.to_string().to_ascii_lowercase().parse::<PaymentId>(), Ok(payment));
        let entry = EntryId::generate();
        assert_eq!(entry.to_string().to_ascii_lowercase().parse::<EntryId>(), Ok(entry));
    }

    /// An id already stored (the ULID spec's example) keeps its value, its instant and
    /// its text whatever version of the ulid crate reads it: the 128-bit number below
    /// is its Crockford base-32 decoded by hand, the top 48 bits the milliseconds.
    #[test]
    fn an_id_issued_earlier_reads_back_as_the_same_id() {
        let stored = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        let id: OrderId = stored.parse().unwrap();
        assert_eq!(id.0.timestamp_ms(), 1_469_922_850_259);
        assert_eq!(id.0.to_bytes(), 0x0156_3E3A_B5D3_D676_4C61_EFB9_9302_BD5B_u128.to_be_bytes());
        assert_eq!(id.to_string(), stored);
        assert_eq!(stored.to_ascii_lowercase().parse::<EntryId>().map(|e| e.to_string()).as_deref(), Ok(stored));
    }

    #[test]
    fn a_ulid_whose_first_character_overflows_128_bits_is_refused() {
        let id = "01J0000000000000000000000A";
        assert!(id.parse::<OrderId>().is_ok());
        assert!("7ZZZZZZZZZZZZZZZZZZZZZZZZZ".parse::<OrderId>().is_ok(), "the largest ULID");
        for first in ['8', '9', 'A', 'Z', 'z'] {
            let overflowing = format!("{first}{}", &id[1..]);
            assert!(overflowing.parse::<OrderId>().is_err(), "{overflowing}");
            assert!(overflowing.parse::<PaymentId>().is_err(), "{overflowing}");
            assert!(overflowing.parse::<EntryId>().is_err(), "{overflowing}");
        }
        for bad in [
            "01J000000000000000000000AI",
            "01J000000000000000000000A",
            "01J0000000000000000000000AA",
            " 1J0000000000000000000000A",
            "01J00000000000000000000é",
        ] {
            assert!(bad.parse::<OrderId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_deserialise_from_integers_and_digit_strings_only() {
        let user = |json: &str| {
            let parsed = serde_json::from_str::<UserId>(json).map(UserId::get);
            // serde_json appends the position; the message is what the field's error says.
            parsed.map_err(|e| e.to_string().split(" at line").next().unwrap_or_default().to_owned())
        };
        assert_eq!(user("42"), Ok(42));
        assert_eq!(user("\"42\""), Ok(42));
        assert_eq!(user("0").unwrap_err(), "must be a positive integer, not 0");
        assert_eq!(user("-3").unwrap_err(), "must be a positive integer, not -3");
        assert_eq!(user("1.5").unwrap_err(), "must be a positive integer, not 1.5");
        assert_eq!(user("\"x\"").unwrap_err(), "must be a positive integer, not \"x\"");
        assert!(user("true").is_err());
    }

    #[test]
    fn order_ids_are_the_ulids_this_api_issues() {
        let id = OrderId::generate();
        assert_eq!(serde_json::from_str::<OrderId>(&format!("\"{id}\"")).unwrap(), id);
        let err = serde_json::from_str::<OrderId>("5").unwrap_err().to_string();
        assert!(err.starts_with("must be an order id this API issued, not 5"), "{err}");
        assert_eq!("xyz".parse::<OrderId>().unwrap_err().to_string(), "must be an order id this API issued");
    }

    #[test]
    fn idempotency_keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::parse("order-7f3a").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
    }

    #[test]
    fn a_whole_number_is_one_however_json_writes_it() {
        let user = |json: &str| serde_json::from_str::<UserId>(json).map(UserId::get).map_err(|e| e.to_string());
        assert_eq!(user("7"), Ok(7));
        assert_eq!(user("7.0"), Ok(7));
        assert_eq!(user("7e0"), Ok(7));
        assert!(user("7.5").is_err());
        assert!(user("0.0").is_err());
        assert!(user("1e300").is_err());
        #[derive(serde::Deserialize)]
        struct Line {
            #[serde(deserialize_with = "count")]
            quantity: u64,
        }
        let quantity = |json: &str| serde_json::from_str::<Line>(json).map(|l| l.quantity).map_err(|e| e.to_string());
        assert_eq!(quantity(r#"{"quantity": 3.0}"#), Ok(3));
        assert_eq!(quantity(r#"{"quantity": 3}"#), Ok(3));
        for refused in [r#"{"quantity": 2.5}"#, r#"{"quantity": -1}"#, r#"{"quantity": "3"}"#, r#"{"quantity": 1e20}"#]
        {
            assert!(quantity(refused).is_err(), "{refused}");
        }
    }
}
