use std::borrow::Cow;

use http::StatusCode;
use serde::Deserialize;

use crate::{
    error::{ApiError, ErrorCode, FieldError},
    media::{self, MediaType},
};

/// Validation code: a required field is missing.
const REQUIRED: &str = "required";
/// Validation code: the value has the wrong JSON type (a string where a number was expected).
const INVALID_TYPE: &str = "invalid_type";
/// Validation code: the value has the right type but is not accepted (out of range, not a
/// known variant, wrong length, not parseable, refused by the type's own checks).
const INVALID_VALUE: &str = "invalid_value";
/// Validation code: a field the target type does not know.
const UNKNOWN_FIELD: &str = "unknown_field";
/// Validation code: the same field given twice.
const DUPLICATE_FIELD: &str = "duplicate_field";

/// The longest echoed value; longer values are described without being quoted.
const MAX_ECHOED_VALUE: usize = 64;

/// The contract error for an error response produced below the layer, from its status,
/// `Content-Type` and (the first bytes of) its body.
///
/// Pure and total: any input gives an error, never a panic. See the [module docs](super) for
/// what is understood; everything else gets the status's code ([`ErrorCode::from_status`]).
/// The status is always kept as produced.
///
/// ```
/// use http::StatusCode;
/// use tower_api_errors::{normalize::parse_rejection, ErrorCode};
///
/// let error = parse_rejection(
///     StatusCode::UNPROCESSABLE_ENTITY,
///     Some("text/plain; charset=utf-8"),
///     b"Failed to deserialize the JSON body into the target type: \
///       [1]: missing field `email` at line 1 column 30",
/// );
/// assert_eq!(error.code(), &ErrorCode::ValidationErrors);
/// assert_eq!(error.status(), 422);
/// assert_eq!(error.index(), Some(1));
/// assert_eq!(error.validation_errors()[0].field(), "email");
/// assert_eq!(error.validation_errors()[0].error(), "required");
///
/// let error = parse_rejection(StatusCode::METHOD_NOT_ALLOWED, None, b"");
/// assert_eq!(error.code(), &ErrorCode::MethodNotAllowed);
/// ```
pub fn parse_rejection(status: StatusCode, content_type: Option<&str>, body: &[u8]) -> ApiError {
    parse_rejection_with_query(status, content_type, body, None)
}

/// [`parse_rejection`], with the request's query string: a query value that was refused is
/// quoted in the field error's message, as in
/// `page_size: The value 'X' is not valid for 'page_size'.`
///
/// ```
/// use http::StatusCode;
/// use tower_api_errors::normalize::parse_rejection_with_query;
///
/// let error = parse_rejection_with_query(
///     StatusCode::BAD_REQUEST,
///     Some("text/plain; charset=utf-8"),
///     b"Failed to deserialize query string: page_size: invalid digit found in string",
///     Some("page=1&page_size=X"),
/// );
/// let field = &error.validation_errors()[0];
/// assert_eq!((field.field(), field.error()), ("page_size", "invalid_value"));
/// assert_eq!(field.message(), Some("page_size: The value 'X' is not valid for 'page_size'."));
/// ```
pub fn parse_rejection_with_query(
    status: StatusCode,
    content_type: Option<&str>,
    body: &[u8],
    query: Option<&str>,
) -> ApiError {
    let understood = match content_type.map(str::as_bytes) {
        Some(value) if MediaType::parse(value) == MediaType::Json => contract_body(status, body),
        Some(value) if !media::essence_is(value, "text/plain") => None,
        // Server errors are never explained: their text may describe internals.
        _ if !status.is_client_error() => None,
        _ => std::str::from_utf8(body)
            .ok()
            .and_then(|text| framework_text(status, text.trim(), query)),
    };
    understood.unwrap_or_else(|| ApiError::from_status(status))
}

/// A JSON body already written in one of the contract's dialects (by a handler that does not
/// use the crate's renderer): its code, `_idx` and field errors are kept, so it can be written
/// again in the dialect the request asked for.
fn contract_body(status: StatusCode, body: &[u8]) -> Option<ApiError> {
    #[derive(Deserialize)]
    struct Field<'a> {
        #[serde(borrow)]
        field: Cow<'a, str>,
        #[serde(borrow)]
        error: Cow<'a, str>,
    }

    #[derive(Deserialize)]
    struct Shape<'a> {
        // The bulk dialect's code.
        #[serde(borrow, default)]
        error: Option<Cow<'a, str>>,
        // Problem details' `code` member (a name) or the coded dialect's number.
        #[serde(default)]
        code: Option<serde_json::Value>,
        #[serde(rename = "_idx", default)]
        index: Option<usize>,
        #[serde(borrow, default)]
        validation_errors: Vec<Field<'a>>,
        #[serde(borrow, default)]
        message: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        errors: Vec<Cow<'a, str>>,
    }

    let shape: Shape<'_> = serde_json::from_slice(body).ok()?;
    let mut details = Vec::new();
    let code = match (&shape.error, &shape.code) {
        (Some(name), _) if is_code_name(name) => code_from_name(name, status),
        (_, Some(serde_json::Value::String(name))) if is_code_name(name) => {
            code_from_name(name, status)
        }
        (None, Some(serde_json::Value::Number(number))) if shape.message.is_some() => {
            let code = number
                .as_u64()
                .and_then(|number| ErrorCode::from_coded_number(u8::try_from(number).ok()?))?;
            details = shape
                .errors
                .iter()
                .map(|detail| detail.to_string())
                .collect();
            code
        }
        _ => return None,
    };
    let mut error = ApiError::new(code).with_status(status);
    if let Some(index) = shape.index {
        error = error.with_index(index);
    }
    for field in shape.validation_errors {
        error = error.with_field_error(FieldError::new(
            field.field.into_owned(),
            field.error.into_owned(),
        ));
    }
    for detail in details {
        error = error.with_detail(detail);
    }
    Some(error)
}

/// snake_case, as every contract code is; anything else is not a code.
fn is_code_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn code_from_name(name: &str, status: StatusCode) -> ErrorCode {
    ErrorCode::from_name(name).unwrap_or_else(|| ErrorCode::custom(name.to_owned(), status))
}

/// The texts of axum 0.8's extractor rejections (`axum::extract::rejection`).
fn framework_text(status: StatusCode, text: &str, query: Option<&str>) -> Option<ApiError> {
    const JSON_CONTENT_TYPE: &str = "Expected request with `Content-Type: application/json`";
    const FORM_CONTENT_TYPE: &str =
        "Form requests must have `Content-Type: application/x-www-form-urlencoded`";

    if text == JSON_CONTENT_TYPE {
        return Some(unsupported(status, "application/json"));
    }
    if text == FORM_CONTENT_TYPE {
        return Some(unsupported(status, "application/x-www-form-urlencoded"));
    }
    if let Some(rest) = text.strip_prefix("Failed to parse the request body as JSON") {
        return Some(syntax_error(status, rest.trim_start_matches(": ")));
    }
    let data = [
        (
            "Failed to deserialize the JSON body into the target type: ",
            None,
        ),
        ("Failed to deserialize query string: ", query),
        // `Form` reads the query string of GET and HEAD requests…
        ("Failed to deserialize form: ", query),
        // …and the body of the others, which is not at hand.
        ("Failed to deserialize form body: ", None),
    ];
    for (prefix, query) in data {
        if let Some(rest) = text.strip_prefix(prefix) {
            return Some(data_error(status, rest, query));
        }
    }
    text.strip_prefix("Invalid URL: ")
        .map(|rest| path_error(status, rest))
}

fn unsupported(status: StatusCode, media_type: &str) -> ApiError {
    ApiError::new(ErrorCode::UnsupportedMediaType)
        .with_status(status)
        .with_detail(format!("Expected `Content-Type: {media_type}`."))
}

/// serde_json's syntax and end-of-input messages (`serde_json::error::ErrorCode`): a closed
/// set, so a detail built from them never carries anything but the position in the client's
/// own body.
const SYNTAX_MESSAGES: [&str; 23] = [
    "EOF while parsing a list",
    "EOF while parsing an object",
    "EOF while parsing a string",
    "EOF while parsing a value",
    "expected `:`",
    "expected `,` or `]`",
    "expected `,` or `}`",
    "expected ident",
    "expected value",
    "expected `\"`",
    "invalid escape",
    "invalid number",
    "number out of range",
    "invalid unicode code point",
    "control character (\\u0000-\\u001F) found while parsing a string",
    "key must be a string",
    "invalid value: expected key to be a number in quotes",
    "float key must be finite (got NaN or +/-inf)",
    "lone leading surrogate in hex escape",
    "trailing comma",
    "trailing characters",
    "unexpected end of hex escape",
    "recursion limit exceeded",
];

/// The starts of serde's data-error messages (`serde::de::Error`'s provided methods).
const DATA_PREFIXES: [&str; 7] = [
    "missing field `",
    "duplicate field `",
    "unknown field `",
    "invalid type: ",
    "invalid value: ",
    "invalid length ",
    "unknown variant `",
];

fn syntax_error(status: StatusCode, text: &str) -> ApiError {
    let (_, message) = split_location(text);
    let (message, position) = split_position(message);
    let detail = match (SYNTAX_MESSAGES.contains(&message), position) {
        (true, Some(position)) => format!("The body is not valid JSON: {message} at {position}."),
        (true, None) => format!("The body is not valid JSON: {message}."),
        (false, _) => "The body is not valid JSON.".to_owned(),
    };
    ApiError::new(ErrorCode::InvalidJson)
        .with_status(status)
        .with_detail(detail)
}

fn data_error(status: StatusCode, text: &str, query: Option<&str>) -> ApiError {
    let (location, message) = split_location(text);
    data_error_at(status, location, message, query)
}

/// The contract error for serde_json failing on a value, `location` being the path of the
/// failing value below it (serde_path_to_error's, `address.city`; empty at the value itself):
/// `invalid_json` for a syntax error, else `validation_errors` with one field error. The typed
/// path of the crate's extractors and of [`FieldError`]'s conversions, which know the path
/// without reading any framework's text.
pub(crate) fn deserialize_error(
    status: StatusCode,
    location: &str,
    error: &serde_json::Error,
    query: Option<&str>,
) -> ApiError {
    let text = error.to_string();
    if error.is_syntax() || error.is_eof() {
        return syntax_error(status, &text);
    }
    data_error_at(status, location, &text, query)
}

/// The contract error for a value a deserializer refused: `message` is the deserializer's own
/// (serde's wording, `missing field `email``), `location` the path of the value.
pub(crate) fn data_error_at(
    status: StatusCode,
    location: &str,
    message: &str,
    query: Option<&str>,
) -> ApiError {
    let (message, _) = split_position(message);
    let (code, name) = classify_message(message);
    let (index, path) = split_index(location);
    // `missing field` and `duplicate field` are reported at the enclosing object,
    // `unknown field` usually at the field itself.
    let named = name.filter(|name| match code {
        UNKNOWN_FIELD => !(path == *name || path.ends_with(&format!(".{name}"))),
        _ => true,
    });
    let (field, shown) = match named {
        Some(name) => (join(path, name), join(location, name)),
        None if path.is_empty() => ("object".to_owned(), location.to_owned()),
        None => (path.to_owned(), location.to_owned()),
    };
    let value = query
        .filter(|_| matches!(code, INVALID_VALUE | INVALID_TYPE))
        .filter(|_| is_plain_name(&field))
        .and_then(|query| query_value(query, &field));
    let sentence = sentence(code, &field, value.as_deref());
    let message = if shown.is_empty() {
        sentence
    } else {
        format!("{shown}: {sentence}")
    };
    let error = ApiError::new(ErrorCode::ValidationErrors)
        .with_status(status)
        .with_field_error(FieldError::new(field, code).with_message(message));
    match index {
        Some(index) => error.with_index(index),
        None => error,
    }
}

/// axum's `Path` rejections: `Cannot parse `id` with value `abc` to a `u32``, and the like.
fn path_error(status: StatusCode, text: &str) -> ApiError {
    let (field, value) = if let Some(rest) = text.strip_prefix("Cannot parse `") {
        match rest.split_once("` with value `") {
            Some((key, rest)) => (key.to_owned(), quoted_value(rest)),
            None => ("path".to_owned(), quoted_value(rest)),
        }
    } else if let Some(rest) = text.strip_prefix("Cannot parse value at index ") {
        let value = rest
            .split_once("with value `")
            .and_then(|(_, v)| quoted_value(v));
        ("path".to_owned(), value)
    } else if let Some(key) = text
        .strip_prefix("Invalid UTF-8 in `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        (key.to_owned(), None)
    } else {
        ("path".to_owned(), None)
    };
    let value = value.filter(|value| is_echoable(value));
    let message = format!(
        "{field}: {}",
        sentence(INVALID_VALUE, &field, value.as_deref())
    );
    ApiError::new(ErrorCode::ValidationErrors)
        .with_status(status)
        .with_field_error(FieldError::new(field, INVALID_VALUE).with_message(message))
}

/// The value in `` value` to a `u32` `` or `` value`: message ``.
fn quoted_value(rest: &str) -> Option<String> {
    let end = rest.rfind("` to a `").or_else(|| rest.find("`: "))?;
    Some(rest[..end].to_owned())
}

/// `[1].email: missing field…` → (`[1].email`, `missing field…`). The location is
/// serde_path_to_error's path; it is absent when the error is at the root.
fn split_location(text: &str) -> (&str, &str) {
    let known = |message: &str| {
        DATA_PREFIXES
            .iter()
            .chain(SYNTAX_MESSAGES.iter())
            .any(|prefix| message.starts_with(prefix))
    };
    if known(text) {
        return ("", text);
    }
    // Object keys may hold `: `, so the message is found by how it starts.
    if let Some((at, _)) = text
        .match_indices(": ")
        .find(|(at, _)| known(&text[at + 2..]))
    {
        return (&text[..at], &text[at + 2..]);
    }
    // A message of the target type's own (`invalid digit found in string`): split at the first
    // `: ` when what precedes it can be a path.
    match text.split_once(": ") {
        Some((location, message))
            if !location.is_empty() && !location.contains(char::is_whitespace) =>
        {
            (location, message)
        }
        _ => ("", text),
    }
}

/// `expected value at line 1 column 5` → (`expected value`, `line 1 column 5`).
fn split_position(message: &str) -> (&str, Option<&str>) {
    if let Some(at) = message.rfind(" at line ") {
        let position = &message[at + " at ".len()..];
        let numbers = position["line ".len()..].split_once(" column ");
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if numbers.is_some_and(|(line, column)| all_digits(line) && all_digits(column)) {
            return (&message[..at], Some(position));
        }
    }
    (message, None)
}

/// The validation code for a serde message, and the field it names, if any.
fn classify_message(message: &str) -> (&'static str, Option<&str>) {
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name)
    };
    if let Some(name) = named("missing field `") {
        (REQUIRED, Some(name))
    } else if let Some(name) = named("duplicate field `") {
        (DUPLICATE_FIELD, Some(name))
    } else if let Some(name) = named("unknown field `") {
        (UNKNOWN_FIELD, Some(name))
    } else if message.starts_with("invalid type: ") {
        (INVALID_TYPE, None)
    } else {
        (INVALID_VALUE, None)
    }
}

/// `[1].email` → (1, `email`); `[1]` → (1, ``); `address.zip` → (none, `address.zip`).
fn split_index(location: &str) -> (Option<usize>, &str) {
    let parsed = location.strip_prefix('[').and_then(|rest| {
        let (digits, rest) = rest.split_once(']')?;
        let index = digits.parse::<usize>().ok()?;
        Some((index, rest.strip_prefix('.').unwrap_or(rest)))
    });
    match parsed {
        Some((index, rest)) => (Some(index), rest),
        None => (None, location),
    }
}

fn join(path: &str, name: &str) -> String {
    match (path.is_empty(), name.starts_with('[')) {
        (true, _) => name.to_owned(),
        (false, true) => format!("{path}{name}"),
        (false, false) => format!("{path}.{name}"),
    }
}

fn is_plain_name(field: &str) -> bool {
    field != "object" && !field.contains(['.', '['])
}

fn sentence(code: &str, field: &str, value: Option<&str>) -> String {
    let object = field == "object";
    match (code, value) {
        (REQUIRED, _) => format!("A value is required for '{field}'."),
        (DUPLICATE_FIELD, _) => format!("'{field}' is given more than once."),
        (UNKNOWN_FIELD, _) => format!("'{field}' is not a known field."),
        (_, Some(value)) => format!("The value '{value}' is not valid for '{field}'."),
        (INVALID_TYPE, None) if object => "The value has the wrong type.".to_owned(),
        (INVALID_TYPE, None) => format!("The value for '{field}' has the wrong type."),
        (_, None) if object => "The value is not valid.".to_owned(),
        (_, None) => format!("The value is not valid for '{field}'."),
    }
}

/// The first value of `name` in a query string, decoded, if it is short and printable.
fn query_value(query: &str, name: &str) -> Option<String> {
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(&part.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(Cow::into_owned)
    };
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| decode(key).is_some_and(|key| key == name))
        .and_then(|(_, value)| decode(value))
        .filter(|value| is_echoable(value))
}

fn is_echoable(value: &str) -> bool {
    value.chars().count() <= MAX_ECHOED_VALUE && !value.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_code_is_read_back_by_name_and_number() {
        for code in ErrorCode::ALL {
            let body = format!(r#"{{"error":"{code}"}}"#);
            let error = parse_rejection(code.status(), Some("application/json"), body.as_bytes());
            assert_eq!(error.code(), code, "{body}");
            assert!(!matches!(error.code(), ErrorCode::Custom(_)));

            let number = code.coded_number().unwrap();
            if number.is_own() {
                let body = format!(r#"{{"code":{},"message":"","errors":[]}}"#, number.number());
                let error =
                    parse_rejection(code.status(), Some("application/json"), body.as_bytes());
                assert_eq!(error.code(), code, "{body}");
            }
        }
    }
}
