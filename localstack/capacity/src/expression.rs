//! The pieces of DynamoDB's expression language the model reads: tokens, document
//! paths (`a.#b[2]`) with their `#name` placeholders resolved, and the partition key a
//! `KeyConditionExpression` names.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A bare word: an attribute name, a keyword (`SET`, `AND`) or a function name.
    Word(String),
    /// `#name`: an attribute name placeholder.
    Name(String),
    /// `:value`: an attribute value placeholder.
    Value(String),
    /// A number inside `[ ]`.
    Index(usize),
    Symbol(char),
}

/// Splits an expression into tokens; `None` on a character no expression holds.
pub fn tokens(expression: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = expression.chars().peekable();
    let word = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        let mut text = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_alphanumeric() || c == '_' {
                text.push(c);
                chars.next();
            } else {
                break;
            }
        }
        text
    };
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' | ':' => {
                chars.next();
                let name = word(&mut chars);
                tokens.push(if c == '#' { Token::Name(format!("#{name}")) } else { Token::Value(format!(":{name}")) });
            }
            c if c.is_ascii_digit() => {
                let digits = word(&mut chars);
                tokens.push(Token::Index(digits.parse().ok()?));
            }
            c if c.is_alphanumeric() || c == '_' => tokens.push(Token::Word(word(&mut chars))),
            '=' | '+' | '-' | ',' | '(' | ')' | '.' | '[' | ']' | '<' | '>' => {
                chars.next();
                tokens.push(Token::Symbol(c));
            }
            _ => return None,
        }
    }
    Some(tokens)
}

/// One step of a document path.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Name(String),
    Index(usize),
}

/// Reads a document path at `tokens[*at]`, resolving `#name`s through `names`; moves
/// `at` past it.
pub fn path(tokens: &[Token], at: &mut usize, names: &Map<String, Value>) -> Option<Vec<Step>> {
    let mut steps = vec![Step::Name(attribute_name(tokens.get(*at)?, names)?)];
    *at += 1;
    loop {
        match tokens.get(*at) {
            Some(Token::Symbol('.')) => {
                steps.push(Step::Name(attribute_name(tokens.get(*at + 1)?, names)?));
                *at += 2;
            }
            Some(Token::Symbol('[')) => {
                let Some(Token::Index(index)) = tokens.get(*at + 1) else { return None };
                if tokens.get(*at + 2) != Some(&Token::Symbol(']')) {
                    return None;
                }
                steps.push(Step::Index(*index));
                *at += 3;
            }
            _ => return Some(steps),
        }
    }
}

/// The attribute name a word or a `#name` placeholder stands for.
pub fn attribute_name(token: &Token, names: &Map<String, Value>) -> Option<String> {
    match token {
        Token::Word(word) => Some(word.clone()),
        Token::Name(placeholder) => names.get(placeholder)?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The value a `KeyConditionExpression` gives the partition key `hash_key`
/// (`hash_key = :v`, either way round, anywhere in the expression).
pub fn key_condition_partition(
    expression: &str,
    hash_key: &str,
    names: &Map<String, Value>,
    values: &Map<String, Value>,
) -> Option<Value> {
    let tokens = tokens(expression)?;
    let is_key = |token: Option<&Token>| token.and_then(|t| attribute_name(t, names)).is_some_and(|n| n == hash_key);
    let value_of = |token: Option<&Token>| match token {
        Some(Token::Value(placeholder)) => values.get(placeholder).cloned(),
        _ => None,
    };
    for (at, token) in tokens.iter().enumerate() {
        if *token != Token::Symbol('=') || at == 0 {
            continue;
        }
        // `<=` and `>=` are two tokens; an equality has no `<`/`>` before its `=`.
        let before = tokens.get(at - 1);
        if matches!(before, Some(Token::Symbol('<' | '>'))) {
            continue;
        }
        let after = tokens.get(at + 1);
        if is_key(before) {
            if let Some(value) = value_of(after) {
                return Some(value);
            }
        }
        if is_key(after) {
            if let Some(value) = value_of(before) {
                return Some(value);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn paths_resolve_names_and_indexes() {
        let names = map(json!({"#slot": "3"}));
        let tokens = tokens("recentFailures.#slot[2].at = :v").expect("tokens");
        let mut at = 0;
        let steps = path(&tokens, &mut at, &names).expect("a path");
        assert_eq!(
            steps,
            vec![Step::Name("recentFailures".into()), Step::Name("3".into()), Step::Index(2), Step::Name("at".into())]
        );
        assert_eq!(tokens[at], Token::Symbol('='));
    }

    #[test]
    fn a_key_condition_names_its_partition_key_value() {
        let values = map(json!({":pk": {"S": "USER#1"}, ":from": {"S": "HIST#"}}));
        let names = map(json!({"#p": "pk"}));
        for expression in [
            "pk = :pk",
            ":pk = pk",
            "#p = :pk AND begins_with(sk, :from)",
            "(pk = :pk) and sk >= :from",
            "sk >= :from AND pk = :pk",
        ] {
            assert_eq!(
                key_condition_partition(expression, "pk", &names, &values),
                Some(json!({"S": "USER#1"})),
                "{expression}"
            );
        }
        assert_eq!(key_condition_partition("sk = :pk", "pk", &names, &values), None);
    }
}
