//! An item's size as DynamoDB counts it for capacity, from the item in DynamoDB's JSON
//! (`{"name": {"S": "…"}}`).
//!
//! The rules, per attribute: the UTF-8 bytes of its name plus the size of its value.
//!
//! | value | size |
//! |---|---|
//! | `S` | its UTF-8 bytes |
//! | `N` | 1 byte, plus 1 per two significant digits counted separately before and after the decimal point (leading and trailing zeros dropped), plus 1 if negative |
//! | `B` | its bytes (the base64 text decoded) |
//! | `BOOL`, `NULL` | 1 byte |
//! | `SS`, `NS`, `BS` | the sum of its elements' sizes |
//! | `L` | 3 bytes, plus 1 per element, plus the elements' sizes |
//! | `M` | 3 bytes, plus 1 per entry, plus each entry's name (UTF-8 bytes) and value size |
//!
//! AWS documents a number as "approximately 1 byte per two significant digits, plus
//! 1 byte"; counting the digits on each side of the decimal point apart, and a byte for
//! the sign, is how DynamoDB's base-100 encoding comes out (and the figure dynoxide
//! reports, which its authors captured against AWS).

use serde_json::{Map, Value};

/// An item, or a key, in DynamoDB's JSON: attribute name → `{"S": …}` and the like.
pub type Item = Map<String, Value>;

/// The bytes DynamoDB counts for `item`.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

/// The bytes DynamoDB counts for one attribute value (without its name). Anything
/// that is not an attribute value counts 0.
pub fn value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|typed| typed.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(text)) => text.len(),
        ("N", Value::String(number)) => number_size(number),
        ("B", Value::String(base64)) => binary_size(base64),
        ("BOOL" | "NULL", _) => 1,
        ("SS", Value::Array(texts)) => texts.iter().filter_map(Value::as_str).map(str::len).sum(),
        ("NS", Value::Array(numbers)) => numbers.iter().filter_map(Value::as_str).map(number_size).sum(),
        ("BS", Value::Array(binaries)) => binaries.iter().filter_map(Value::as_str).map(binary_size).sum(),
        ("L", Value::Array(elements)) => 3 + elements.iter().map(|element| 1 + value_size(element)).sum::<usize>(),
        ("M", Value::Object(entries)) => {
            3 + entries.iter().map(|(name, element)| name.len() + 1 + value_size(element)).sum::<usize>()
        }
        _ => 0,
    }
}

/// The bytes of a number written as DynamoDB's JSON writes it (`"-12.50"`, `"1E+3"`).
pub fn number_size(number: &str) -> usize {
    let text = number.trim();
    let negative = text.starts_with('-');
    let text = text.trim_start_matches(['-', '+']);
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().unwrap_or(0)),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).filter(u8::is_ascii_digit).collect();
    // Where the decimal point falls within `digits`.
    let mut point = whole.len() as i64 + exponent;
    let leading = digits.iter().take_while(|digit| **digit == b'0').count();
    point -= leading as i64;
    let significant = &digits[leading..];
    let trailing = significant.iter().rev().take_while(|digit| **digit == b'0').count();
    let significant = significant.len() - trailing;
    if significant == 0 {
        // Zero: its one byte, never negative.
        return 1;
    }
    let before = point.clamp(0, significant as i64) as usize;
    let after = significant - before;
    before.div_ceil(2) + after.div_ceil(2) + 1 + usize::from(negative)
}

/// The decoded length of base64 text, without decoding it.
fn binary_size(base64: &str) -> usize {
    let text = base64.trim_end_matches('=');
    text.len() * 3 / 4
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(value: Value) -> Item {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn a_string_counts_its_name_and_its_utf8_bytes() {
        assert_eq!(item_size(&item(json!({"pk": {"S": "USER#1"}}))), 2 + 6);
        // "é" is two bytes in UTF-8, "€" three.
        assert_eq!(item_size(&item(json!({"né": {"S": "€"}}))), 3 + 3);
    }

    #[test]
    fn a_number_counts_a_byte_per_two_significant_digits_on_each_side_of_the_point_plus_one() {
        for (number, size) in [
            ("0", 1),
            ("-0", 1),
            ("1", 2),
            ("42", 2),
            ("-42", 3),
            ("100", 2),
            ("1000", 2),
            ("12345", 4),
            ("123.456", 5),
            ("0.05", 2),
            ("1000.5", 4),
            ("1000000.00", 2),
            ("1E+3", 2),
            ("12345678901234567890", 11),
        ] {
            assert_eq!(number_size(number), size, "{number}");
        }
    }

    #[test]
    fn binary_booleans_and_nulls() {
        // "AAEC" is three bytes.
        assert_eq!(value_size(&json!({"B": "AAEC"})), 3);
        assert_eq!(value_size(&json!({"B": "AA=="})), 1);
        assert_eq!(value_size(&json!({"BOOL": true})), 1);
        assert_eq!(value_size(&json!({"NULL": true})), 1);
    }

    #[test]
    fn sets_count_their_elements() {
        assert_eq!(value_size(&json!({"SS": ["ab", "cde"]})), 5);
        assert_eq!(value_size(&json!({"NS": ["1", "-42"]})), 2 + 3);
        assert_eq!(value_size(&json!({"BS": ["AAEC", "AA=="]})), 4);
    }

    #[test]
    fn lists_and_maps_count_three_bytes_plus_one_per_element_plus_the_elements() {
        // 3 + (1 + 1) + (1 + 2)
        assert_eq!(value_size(&json!({"L": [{"S": "a"}, {"N": "42"}]})), 8);
        // 3 + (1 + "a" + 1) + (1 + "bb" + 3 + 1 + "c" + 2)
        let nested = json!({"M": {"a": {"S": "x"}, "bb": {"M": {"c": {"S": "yz"}}}}});
        assert_eq!(value_size(&nested), 3 + (1 + 1 + 1) + (1 + 2 + (3 + 1 + 1 + 2)));
        assert_eq!(value_size(&json!({"L": []})), 3);
        assert_eq!(value_size(&json!({"M": {}})), 3);
    }

    #[test]
    fn an_item_is_the_sum_of_its_attributes() {
        let product = item(json!({
            "pk": {"S": "PRODUCT#1"},
            "sk": {"S": "PRODUCT"},
            "stock": {"N": "1000"},
            "open": {"BOOL": true},
        }));
        assert_eq!(item_size(&product), (2 + 9) + (2 + 7) + (5 + 2) + (4 + 1));
    }
}
