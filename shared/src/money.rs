//! Money: exact decimal amounts with at most two fractional digits.
//!
//! Two types, both built only by parsing so an invalid value never exists:
//! - [`Money`]: any balance-sized value, `0 ≤ m ≤ MAX_BALANCE`.
//! - [`Amount`]: what a request asks to move, `0 < a ≤ MAX_AMOUNT`.
//!
//! Text is parsed with a strict grammar (`digits[.d[d]]`): no sign, no exponent, no
//! whitespace, no `NaN`, so `"1e3"` or `" 5"` are errors rather than surprises. JSON
//! numbers are parsed from their literal text, never through `f64`.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// The largest amount one request may charge, use or pay: 10,000,000.00.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 2);
/// The largest balance a user may hold: 1,000,000,000.00. A charge that would pass it
/// is refused, which keeps every sum far inside DynamoDB's 38 digits.
pub const MAX_BALANCE: Decimal = Decimal::from_parts(1_215_752_192, 23, 0, false, 2);

/// Why a text is not a valid amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a plain decimal such as \"1000.00\" (no exponent, sign, spaces, leading zeros or NaN)")]
    NotADecimal,
    #[error("must not be negative")]
    Negative,
    #[error("must be greater than zero")]
    Zero,
    #[error("must have at most 2 fractional digits")]
    TooManyDecimals,
    #[error("must not exceed {0}")]
    TooLarge(&'static str),
}

/// A non-negative amount of money, at most [`MAX_BALANCE`], with scale ≤ 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

/// A strictly positive amount a request moves, at most [`MAX_AMOUNT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(Money);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Parses request text with the strict grammar.
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let value = parse_strict(text)?;
        Money::from_decimal(value)
    }

    /// Accepts a decimal from trusted storage (DynamoDB normalises `1000.50` to
    /// `1000.5`, so only the bounds and scale are checked).
    pub fn from_decimal(value: Decimal) -> Result<Money, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative);
        }
        if value.normalize().scale() > 2 {
            return Err(MoneyError::TooManyDecimals);
        }
        if value > MAX_BALANCE {
            return Err(MoneyError::TooLarge("1000000000.00"));
        }
        Ok(Money(value.normalize()))
    }

    pub fn as_decimal(self) -> Decimal {
        self.0
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        let sum = self.0.checked_add(other.0).ok_or(MoneyError::TooLarge("1000000000.00"))?;
        Money::from_decimal(sum)
    }

    /// `self × count`, within the balance bounds.
    pub fn checked_mul(self, count: u32) -> Result<Money, MoneyError> {
        let product = self.0.checked_mul(count.into()).ok_or(MoneyError::TooLarge("1000000000.00"))?;
        Money::from_decimal(product)
    }

    /// `self − other`, or zero when `other` is larger (a discount never makes a total
    /// negative).
    pub fn saturating_sub(self, other: Money) -> Money {
        if other >= self {
            Money::ZERO
        } else {
            Money(self.0 - other.0)
        }
    }

    /// `self − other`; an error rather than a negative result.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        let difference = self.0.checked_sub(other.0).ok_or(MoneyError::Negative)?;
        Money::from_decimal(difference)
    }
}

impl Amount {
    /// Parses request text: strict grammar, positive, at most [`MAX_AMOUNT`].
    pub fn parse(text: &str) -> Result<Amount, MoneyError> {
        Amount::from_decimal(parse_strict(text)?)
    }

    pub fn from_decimal(value: Decimal) -> Result<Amount, MoneyError> {
        if value.is_zero() {
            return Err(MoneyError::Zero);
        }
        if value > MAX_AMOUNT {
            return Err(MoneyError::TooLarge("10000000.00"));
        }
        Money::from_decimal(value).map(Amount)
    }

    pub fn money(self) -> Money {
        self.0
    }

    pub fn as_decimal(self) -> Decimal {
        self.0 .0
    }
}

/// `digits[.d[d]]`, with a leading `-` recognised only to give a precise error.
fn parse_strict(text: &str) -> Result<Decimal, MoneyError> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // One spelling per amount: no leading zeros ("007.5").
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) || (whole.len() > 1 && whole.starts_with('0')) {
        return Err(MoneyError::NotADecimal);
    }
    let value = if whole.len() > 20 {
        // Far past any cap; don't let the decimal type overflow on it.
        return Err(if negative { MoneyError::Negative } else { MoneyError::TooLarge("the cap") });
    } else {
        Decimal::from_str_exact(unsigned).map_err(|_| MoneyError::NotADecimal)?
    };
    if negative {
        // "-0" too: no signs at all.
        return Err(MoneyError::Negative);
    }
    if fraction.is_some_and(|f| f.len() > 2) {
        return Err(MoneyError::TooManyDecimals);
    }
    Ok(value.normalize())
}

impl fmt::Display for Money {
    /// Always two fractional digits: `1000.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut value = self.0;
        value.rescale(2);
        write!(f, "{value}")
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse(s)
    }
}

impl FromStr for Amount {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Amount::parse(s)
    }
}

impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The text of a JSON money value: a string's content, or a number's literal digits
/// (read raw, so `250.5` is never rounded through `f64`).
fn json_money_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    use serde::de::Error as _;
    let raw: Box<serde_json::value::RawValue> = serde::Deserialize::deserialize(deserializer)?;
    let raw = raw.get();
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(raw).map_err(D::Error::custom),
        Some(b'-' | b'0'..=b'9') => Ok(raw.to_owned()),
        // Not money at all: say what it is without repeating it (it may be long).
        first => Err(D::Error::custom(format!(
            "must be a decimal string such as \"1000.00\" or a JSON number, not {}",
            match first {
                Some(b'{') => "an object",
                Some(b'[') => "an array",
                _ => raw,
            }
        ))),
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    /// From JSON only (a string or a number, exactly).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = json_money_text(deserializer)?;
        Amount::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl<'de> serde::Deserialize<'de> for Money {
    /// From JSON only (a string or a number, exactly).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = json_money_text(deserializer)?;
        Money::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decimals_parse_exactly() {
        assert_eq!(Amount::parse("1000.00").unwrap().to_string(), "1000.00");
        assert_eq!(Amount::parse("0.01").unwrap().to_string(), "0.01");
        assert_eq!(Amount::parse("12.5").unwrap().to_string(), "12.50");
        assert_eq!(Amount::parse("7").unwrap().to_string(), "7.00");
        assert_eq!(Amount::parse("10000000.00").unwrap().to_string(), "10000000.00");
    }

    #[test]
    fn three_fractional_digits_are_rejected_even_when_zero() {
        assert_eq!(Amount::parse("1.500"), Err(MoneyError::TooManyDecimals));
    }

    #[test]
    fn every_malformed_or_out_of_range_text_is_rejected() {
        let cases = [
            ("-1.00", MoneyError::Negative),
            ("0", MoneyError::Zero),
            ("0.00", MoneyError::Zero),
            ("1.001", MoneyError::TooManyDecimals),
            ("abc", MoneyError::NotADecimal),
            ("NaN", MoneyError::NotADecimal),
            ("1e3", MoneyError::NotADecimal),
            ("1E3", MoneyError::NotADecimal),
            ("+5", MoneyError::NotADecimal),
            (" 5", MoneyError::NotADecimal),
            ("5 ", MoneyError::NotADecimal),
            ("", MoneyError::NotADecimal),
            (".5", MoneyError::NotADecimal),
            ("5.", MoneyError::NotADecimal),
            ("1,000", MoneyError::NotADecimal),
            ("Infinity", MoneyError::NotADecimal),
            ("10000000.01", MoneyError::TooLarge("10000000.00")),
            ("007.50", MoneyError::NotADecimal),
            ("00.5", MoneyError::NotADecimal),
        ];
        for (text, expected) in cases {
            assert_eq!(Amount::parse(text), Err(expected.clone()), "{text:?}");
        }
        assert!(matches!(Amount::parse("999999999999999999999999999999"), Err(MoneyError::TooLarge(_))));
        // One spelling per amount: a zero is "0", never "-0" or "00".
        assert_eq!(Money::parse("0.50").map(|m| m.to_string()), Ok("0.50".to_owned()));
        assert_eq!(Money::parse("-0"), Err(MoneyError::Negative));
        assert_eq!(Money::parse("00"), Err(MoneyError::NotADecimal));
    }

    #[test]
    fn json_numbers_and_strings_parse_exactly_and_nothing_else_does() {
        let amount =
            |json: &str| serde_json::from_str::<Amount>(json).map(|a| a.to_string()).map_err(|e| e.to_string());
        assert_eq!(amount("250.5").unwrap(), "250.50");
        assert_eq!(amount("\"0.10\"").unwrap(), "0.10");
        assert_eq!(amount("1000000.0000000000000001").unwrap_err(), "must have at most 2 fractional digits");
        assert_eq!(amount("1e3").unwrap_err(), MoneyError::NotADecimal.to_string());
        assert!(amount("true").unwrap_err().starts_with("must be a decimal string"));
        assert_eq!(amount("-5").unwrap_err(), "must not be negative");
    }

    #[test]
    fn balances_stay_within_zero_and_the_maximum() {
        let max = Money::from_decimal(MAX_BALANCE).unwrap();
        assert_eq!(max.to_string(), "1000000000.00");
        assert!(max.checked_add(Amount::parse("0.01").unwrap().money()).is_err());
        assert_eq!(Money::ZERO.checked_sub(Amount::parse("0.01").unwrap().money()), Err(MoneyError::Negative));
        let a = Money::parse("10.10").unwrap();
        assert_eq!(a.checked_sub(Money::parse("0.10").unwrap()).unwrap().to_string(), "10.00");
    }
}
