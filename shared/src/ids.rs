//! Identifier newtypes. Numeric ids are positive integers as in the baseline API;
//! ledger entry ids are ULIDs (time-ordered, unique without coordination).

use std::fmt;
use std::str::FromStr;

/// Why an id in a path, query or body is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a positive integer")]
pub struct IdError;

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
                    return Err(IdError);
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
                    return Err(IdError);
                }
                Self::new(text.parse().map_err(|_| IdError)?)
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
    ($(#[$doc:meta])* $name:ident) => {
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
                ulid::Ulid::from_string(text).map($name).map_err(|_| IdError)
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
    };
}

ulid_id!(
    /// An order (opaque to clients).
    OrderId
);
ulid_id!(
    /// One payment attempt of an order (opaque to clients).
    PaymentId
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
        ulid::Ulid::from_string(text).map(EntryId).map_err(|_| IdError)
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
    fn idempotency_keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::parse("order-7f3a").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
    }
}
