//! Identifier newtypes. Numeric ids are positive integers as in the baseline API;
//! ledger entry ids are ULIDs (time-ordered, unique without coordination).

use std::fmt;
use std::str::FromStr;

/// Why an id in a path, query or body is not acceptable: what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be {0}")]
pub struct IdError(&'static str);

const NUMERIC: IdError = IdError("a positive integer");

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

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<T, E> {
        Err(E::custom(format!("{NUMERIC}, not {value}")))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        let shown: String = text.chars().take(32).collect();
        text.parse().map_err(|_| E::custom(format!("{NUMERIC}, not {shown:?}")))
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
            /// Digits only: no sign, spaces or exponent.
            fn from_str(text: &str) -> Result<Self, IdError> {
                if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(NUMERIC);
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

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(ulid::Ulid);

        impl $name {
            pub fn generate() -> $name {
                $name(ulid::Ulid::new())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            /// A 26-character ULID, as this API issues them.
            fn from_str(text: &str) -> Result<Self, IdError> {
                ulid::Ulid::from_string(text).map($name).map_err(|_| IdError($what))
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
                let shown = || value.to_string().chars().take(40).collect::<String>();
                match &value {
                    serde_json::Value::String(text) => {
                        text.parse().map_err(|e: IdError| D::Error::custom(format!("{e}, not {}", shown())))
                    }
                    _ => Err(D::Error::custom(format!("must be {}, not {}", $what, shown()))),
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
        EntryId(ulid::Ulid::new())
    }
}

impl FromStr for EntryId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, IdError> {
        ulid::Ulid::from_string(text).map(EntryId).map_err(|_| IdError("a ledger entry id"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_positive_integers_written_as_plain_digits() {
        assert_eq!("42".parse::<UserId>().unwrap().get(), 42);
        for bad in ["0", "-1", "+1", "abc", "1.5", "1e3", "", " 1", "99999999999999999999"] {
            assert!(bad.parse::<UserId>().is_err(), "{bad:?}");
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
}
