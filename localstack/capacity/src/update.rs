//! What an `UpdateExpression` leaves behind: the item after an `UpdateItem`, computed
//! from the item before, so that the model can size the write and see which index keys
//! it moves before it forwards it.
//!
//! Understood: `SET` (a value, a path, `if_not_exists`, `list_append`, `a + b`,
//! `a - b`), `REMOVE`, `ADD` (numbers and sets) and `DELETE` (sets), on nested paths.
//! Every right-hand side reads the item as it was, as DynamoDB evaluates them. Anything
//! else gives `None`, and the caller falls back to an estimate
//! ([`crate::plan`]).

use std::str::FromStr as _;

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use crate::expression::{path, tokens, Step, Token};
use crate::size::Item;

#[derive(Debug, Clone)]
enum Operand {
    Path(Vec<Step>),
    Value(Value),
    IfNotExists(Vec<Step>, Box<Operand>),
    ListAppend(Box<Operand>, Box<Operand>),
    Plus(Box<Operand>, Box<Operand>),
    Minus(Box<Operand>, Box<Operand>),
}

#[derive(Debug, Clone)]
enum Action {
    Set(Vec<Step>, Operand),
    Remove(Vec<Step>),
    Add(Vec<Step>, Value),
    Delete(Vec<Step>, Value),
}

/// The item `expression` makes of `item` (the key alone when there was no item), or
/// `None` when the expression is beyond what this module understands.
pub fn apply(item: &Item, expression: &str, names: &Map<String, Value>, values: &Map<String, Value>) -> Option<Item> {
    let actions = parse(expression, names, values)?;
    // Every right-hand side reads the item as it was.
    let mut resolved = Vec::with_capacity(actions.len());
    for action in actions {
        resolved.push(match action {
            Action::Set(target, operand) => (target, Change::Set(evaluate(&operand, item)?)),
            Action::Remove(target) => (target, Change::Remove),
            Action::Add(target, value) => (target, Change::Add(value)),
            Action::Delete(target, value) => (target, Change::Delete(value)),
        });
    }
    let mut after = item.clone();
    for (target, change) in resolved {
        match change {
            Change::Set(value) => set(&mut after, &target, value),
            Change::Remove => remove(&mut after, &target),
            Change::Add(value) => {
                let added = match get(&after, &target) {
                    None => value,
                    Some(old) => add(old, &value)?,
                };
                set(&mut after, &target, added);
            }
            Change::Delete(value) => {
                if let Some(old) = get(&after, &target) {
                    match subtract_set(old, &value)? {
                        Some(left) => set(&mut after, &target, left),
                        None => remove(&mut after, &target),
                    }
                }
            }
        }
    }
    Some(after)
}

enum Change {
    Set(Value),
    Remove,
    Add(Value),
    Delete(Value),
}

fn parse(expression: &str, names: &Map<String, Value>, values: &Map<String, Value>) -> Option<Vec<Action>> {
    let tokens = tokens(expression)?;
    let mut at = 0;
    let mut actions = Vec::new();
    while at < tokens.len() {
        let Token::Word(keyword) = &tokens[at] else { return None };
        let keyword = keyword.to_ascii_uppercase();
        at += 1;
        loop {
            let target = path(&tokens, &mut at, names)?;
            let action = match keyword.as_str() {
                "SET" => {
                    expect(&tokens, &mut at, '=')?;
                    Action::Set(target, set_value(&tokens, &mut at, names, values)?)
                }
                "REMOVE" => Action::Remove(target),
                "ADD" => Action::Add(target, placeholder(&tokens, &mut at, values)?),
                "DELETE" => Action::Delete(target, placeholder(&tokens, &mut at, values)?),
                _ => return None,
            };
            actions.push(action);
            if tokens.get(at) == Some(&Token::Symbol(',')) {
                at += 1;
            } else {
                break;
            }
        }
    }
    Some(actions)
}

fn expect(tokens: &[Token], at: &mut usize, symbol: char) -> Option<()> {
    (tokens.get(*at) == Some(&Token::Symbol(symbol))).then(|| *at += 1)
}

fn placeholder(tokens: &[Token], at: &mut usize, values: &Map<String, Value>) -> Option<Value> {
    let Some(Token::Value(name)) = tokens.get(*at) else { return None };
    *at += 1;
    values.get(name).cloned()
}

fn set_value(
    tokens: &[Token],
    at: &mut usize,
    names: &Map<String, Value>,
    values: &Map<String, Value>,
) -> Option<Operand> {
    let left = operand(tokens, at, names, values)?;
    match tokens.get(*at) {
        Some(Token::Symbol('+')) => {
            *at += 1;
            Some(Operand::Plus(Box::new(left), Box::new(operand(tokens, at, names, values)?)))
        }
        Some(Token::Symbol('-')) => {
            *at += 1;
            Some(Operand::Minus(Box::new(left), Box::new(operand(tokens, at, names, values)?)))
        }
        _ => Some(left),
    }
}

fn operand(
    tokens: &[Token],
    at: &mut usize,
    names: &Map<String, Value>,
    values: &Map<String, Value>,
) -> Option<Operand> {
    match tokens.get(*at)? {
        Token::Value(_) => placeholder(tokens, at, values).map(Operand::Value),
        Token::Word(function) if tokens.get(*at + 1) == Some(&Token::Symbol('(')) => {
            let function = function.to_ascii_lowercase();
            *at += 2;
            let operand = match function.as_str() {
                "if_not_exists" => {
                    let target = path(tokens, at, names)?;
                    expect(tokens, at, ',')?;
                    Operand::IfNotExists(target, Box::new(set_value(tokens, at, names, values)?))
                }
                "list_append" => {
                    let first = set_value(tokens, at, names, values)?;
                    expect(tokens, at, ',')?;
                    Operand::ListAppend(Box::new(first), Box::new(set_value(tokens, at, names, values)?))
                }
                _ => return None,
            };
            expect(tokens, at, ')')?;
            Some(operand)
        }
        _ => path(tokens, at, names).map(Operand::Path),
    }
}

fn evaluate(operand: &Operand, item: &Item) -> Option<Value> {
    match operand {
        Operand::Value(value) => Some(value.clone()),
        Operand::Path(steps) => get(item, steps).cloned(),
        Operand::IfNotExists(steps, fallback) => match get(item, steps) {
            Some(value) => Some(value.clone()),
            None => evaluate(fallback, item),
        },
        Operand::ListAppend(first, second) => {
            let mut list = evaluate(first, item)?.get("L")?.as_array()?.clone();
            list.extend(evaluate(second, item)?.get("L")?.as_array()?.iter().cloned());
            Some(json!({ "L": list }))
        }
        Operand::Plus(left, right) => arithmetic(&evaluate(left, item)?, &evaluate(right, item)?, false),
        Operand::Minus(left, right) => arithmetic(&evaluate(left, item)?, &evaluate(right, item)?, true),
    }
}

/// `a + b` or `a - b` on two numbers. Past what a `Decimal` holds (28 digits), the
/// longer operand stands in for the result: the size is what matters here.
fn arithmetic(left: &Value, right: &Value, minus: bool) -> Option<Value> {
    let (a, b) = (left.get("N")?.as_str()?, right.get("N")?.as_str()?);
    let exact = decimal(a).zip(decimal(b)).and_then(|(a, b)| if minus { a.checked_sub(b) } else { a.checked_add(b) });
    let text = match exact {
        Some(result) => result.normalize().to_string(),
        None => if a.len() >= b.len() { a } else { b }.to_owned(),
    };
    Some(json!({ "N": text }))
}

fn decimal(text: &str) -> Option<Decimal> {
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str(text).ok()
    }
}

/// `ADD`: a number's sum, or a set's union.
fn add(old: &Value, value: &Value) -> Option<Value> {
    if old.get("N").is_some() {
        return arithmetic(old, value, false);
    }
    let (kind, elements) = set_of(old)?;
    let (added_kind, added) = set_of(value)?;
    if kind != added_kind {
        return None;
    }
    let mut union = elements.clone();
    union.extend(added.iter().filter(|element| !elements.contains(element)).cloned());
    Some(json!({ kind: union }))
}

/// `DELETE`: a set without the given elements; `None` inside when nothing is left.
fn subtract_set(old: &Value, value: &Value) -> Option<Option<Value>> {
    let (kind, elements) = set_of(old)?;
    let (_, removed) = set_of(value)?;
    let left: Vec<Value> = elements.iter().filter(|element| !removed.contains(element)).cloned().collect();
    Some((!left.is_empty()).then(|| json!({ kind: left })))
}

fn set_of(value: &Value) -> Option<(&str, &Vec<Value>)> {
    let (kind, elements) = value.as_object()?.iter().next()?;
    matches!(kind.as_str(), "SS" | "NS" | "BS").then_some(())?;
    Some((kind.as_str(), elements.as_array()?))
}

fn get<'a>(item: &'a Item, steps: &[Step]) -> Option<&'a Value> {
    let (Step::Name(first), rest) = steps.split_first()? else { return None };
    let mut value = item.get(first)?;
    for step in rest {
        value = match step {
            Step::Name(name) => value.get("M")?.get(name)?,
            Step::Index(index) => value.get("L")?.get(*index)?,
        };
    }
    Some(value)
}

/// Sets the value at `steps`; does nothing when its parent does not exist (DynamoDB
/// would refuse the update, which then writes nothing).
fn set(item: &mut Item, steps: &[Step], new: Value) {
    let Some((Step::Name(first), rest)) = steps.split_first() else { return };
    if rest.is_empty() {
        item.insert(first.clone(), new);
        return;
    }
    match parent(item, first, rest) {
        Some((value, Step::Name(name))) => {
            if let Some(map) = value.get_mut("M").and_then(Value::as_object_mut) {
                map.insert(name.clone(), new);
            }
        }
        Some((value, Step::Index(index))) => {
            if let Some(list) = value.get_mut("L").and_then(Value::as_array_mut) {
                // Past the end, DynamoDB appends.
                match list.get_mut(*index) {
                    Some(slot) => *slot = new,
                    None => list.push(new),
                }
            }
        }
        None => {}
    }
}

fn remove(item: &mut Item, steps: &[Step]) {
    let Some((Step::Name(first), rest)) = steps.split_first() else { return };
    if rest.is_empty() {
        item.remove(first);
        return;
    }
    match parent(item, first, rest) {
        Some((value, Step::Name(name))) => {
            if let Some(map) = value.get_mut("M").and_then(Value::as_object_mut) {
                map.remove(name);
            }
        }
        Some((value, Step::Index(index))) => {
            if let Some(list) = value.get_mut("L").and_then(Value::as_array_mut) {
                if *index < list.len() {
                    list.remove(*index);
                }
            }
        }
        None => {}
    }
}

/// The value that holds the last of `rest` (a path below the attribute `first`), with
/// that last step; `None` when a value on the way does not exist.
fn parent<'a, 's>(item: &'a mut Item, first: &str, rest: &'s [Step]) -> Option<(&'a mut Value, &'s Step)> {
    let (last, middle) = rest.split_last()?;
    let mut value = item.get_mut(first)?;
    for step in middle {
        value = match step {
            Step::Name(name) => value.get_mut("M").and_then(|map| map.get_mut(name)),
            Step::Index(index) => value.get_mut("L").and_then(|list| list.get_mut(*index)),
        }?;
    }
    Some((value, last))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    fn update(item: Value, expression: &str, names: Value, values: Value) -> Value {
        Value::Object(apply(&map(item), expression, &map(names), &map(values)).expect("understood"))
    }

    #[test]
    fn set_arithmetic_reads_the_item_as_it_was() {
        let after = update(
            json!({"pk": {"S": "U"}, "balance": {"N": "100.50"}, "seq": {"N": "7"}}),
            "SET balance = balance - :amount, seq = :next",
            json!({}),
            json!({":amount": {"N": "0.50"}, ":next": {"N": "8"}}),
        );
        assert_eq!(after, json!({"pk": {"S": "U"}, "balance": {"N": "100"}, "seq": {"N": "8"}}));
    }

    #[test]
    fn remove_add_and_delete() {
        let after = update(
            json!({"pk": {"S": "E"}, "gsi1pk": {"S": "PENDING"}, "gsi1sk": {"S": "x"}, "n": {"N": "1"},
                   "tags": {"SS": ["a", "b"]}}),
            "SET publishedAt = :at REMOVE gsi1pk, gsi1sk ADD n :one, tags :more DELETE tags :gone",
            json!({}),
            json!({":at": {"S": "t"}, ":one": {"N": "1"}, ":more": {"SS": ["c"]}, ":gone": {"SS": ["a"]}}),
        );
        assert_eq!(
            after,
            json!({"pk": {"S": "E"}, "publishedAt": {"S": "t"}, "n": {"N": "2"}, "tags": {"SS": ["b", "c"]}})
        );
    }

    #[test]
    fn add_creates_what_is_missing_and_a_set_emptied_by_delete_goes() {
        let after = update(
            json!({"pk": {"S": "C"}, "tags": {"SS": ["a"]}}),
            "ADD #next :one DELETE tags :a",
            json!({"#next": "next"}),
            json!({":one": {"N": "1"}, ":a": {"SS": ["a"]}}),
        );
        assert_eq!(after, json!({"pk": {"S": "C"}, "next": {"N": "1"}}));
    }

    #[test]
    fn nested_paths_functions_and_placeholders() {
        let after = update(
            json!({"pk": {"S": "O"}, "recentFailures": {"M": {}}, "log": {"L": [{"S": "a"}]}}),
            "SET recentFailures.#slot = :failure, log = list_append(log, :more), firstAt = if_not_exists(firstAt, :at)",
            json!({"#slot": "0"}),
            json!({":failure": {"S": "NO_FUNDS"}, ":more": {"L": [{"S": "b"}]}, ":at": {"S": "t"}}),
        );
        assert_eq!(
            after,
            json!({"pk": {"S": "O"}, "recentFailures": {"M": {"0": {"S": "NO_FUNDS"}}},
                   "log": {"L": [{"S": "a"}, {"S": "b"}]}, "firstAt": {"S": "t"}})
        );
    }

    #[test]
    fn what_is_not_understood_is_none() {
        let item = map(json!({"pk": {"S": "X"}}));
        assert_eq!(apply(&item, "SET a = size(b)", &Map::new(), &Map::new()), None);
        assert_eq!(apply(&item, "UPSERT a = :b", &Map::new(), &map(json!({":b": {"S": "c"}}))), None);
        assert_eq!(apply(&item, "SET a = :missing", &Map::new(), &Map::new()), None);
    }
}
