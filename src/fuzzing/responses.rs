//! The `controller_responses` target: every controller answer decoder and the error-body
//! parser.

use super::unique_keys;
use crate::ErrorBody;
use crate::controller::decode::{
    IssuedToken, MAX_EXCERPT_CHARS, TOKENISH_RUN, decode_client_token, decode_list, decode_logout,
    decode_user, decode_validation, parse_error_body,
};
use crate::models::UserInfo;
use serde_json::{Map, Value};

/// Every controller answer decoder (and the error-body parser) on the same bytes.
///
/// All decoders see every input, rather than a selector byte choosing one, so seed files
/// stay verbatim controller bodies and one interesting body exercises every decoder.
pub fn responses(data: &[u8]) {
    // The independent reading, when `Value` can read the body (see the module doc of
    // `fuzzing`); without it only the checks that need none run.
    let value: Option<Value> = serde_json::from_slice(data).ok();
    let oracle = value.as_ref().map(|value| Oracle {
        value,
        data: value.get("data"),
        unique: unique_keys(data),
    });

    check_client_token(data, oracle.as_ref());
    check_validation(data, oracle.as_ref());
    check_user_answer(data, oracle.as_ref());
    check_list(oracle.as_ref(), "roles", decode_list(data, "roles"));
    check_list(
        oracle.as_ref(),
        "permissions",
        decode_list(data, "permissions"),
    );
    assert_eq!(decode_logout(data), Ok(()), "a 2xx logout is always fine");
    check_error_body(data, value.as_ref());
}

/// The same answer read as `serde_json::Value`.
struct Oracle<'a> {
    value: &'a Value,
    /// `data`, where the API answers nest their payload.
    data: Option<&'a Value>,
    /// No object repeats a key (derived decoders refuse repeats; `Value` keeps the last).
    unique: bool,
}

fn check_decode_error(decoder: &str, reason: &str) {
    assert_token_free(&format!("{decoder} error"), reason);
    assert!(
        reason.chars().count() <= MAX_EXCERPT_CHARS,
        "{decoder} error is long: {reason}"
    );
}

fn check_client_token(data: &[u8], oracle: Option<&Oracle<'_>>) {
    let decoded = decode_client_token(data);
    match &decoded {
        Ok(issued) => assert!(!issued.token.is_empty(), "accepted an empty client token"),
        Err(reason) => check_decode_error("client token", reason),
    }
    let Some(oracle) = oracle else { return };
    let source = client_token_source(oracle);
    let expected = source.and_then(|s| s.get("token")).and_then(Value::as_str);
    match decoded {
        Ok(issued) => {
            assert_eq!(
                Some(issued.token.as_str()),
                expected,
                "client token is not the answer's data.token or token"
            );
            check_expires_in(&issued, source.and_then(|s| s.get("expiresIn")));
        }
        Err(reason) => {
            // Leniency: whatever else the answer carries, a token in it is used.
            assert!(
                !(oracle.unique && expected.is_some_and(|t| !t.is_empty())),
                "an answer with a client token was refused: {reason}"
            );
        }
    }
}

/// Where the contract puts the client token: nested `data.token` when `data` holds a string
/// token, else flat `token` in the answer object.
fn client_token_source<'a>(oracle: &Oracle<'a>) -> Option<&'a Value> {
    let nested = oracle
        .data
        .filter(|d| d.get("token").is_some_and(Value::is_string));
    nested.or(Some(oracle.value).filter(|v| v.is_object()))
}

/// `expiresIn` is used when it is a positive number of seconds, and only then.
fn check_expires_in(issued: &IssuedToken, wire: Option<&Value>) {
    let seconds = wire.and_then(Value::as_f64);
    match issued.expires_in {
        Some(d) => {
            let s = seconds.expect("expires_in without a numeric expiresIn");
            assert!(s > 0.0 && (d.as_secs_f64() - s).abs() <= 1e-6 * s.max(1.0));
        }
        None => assert!(
            !seconds.is_some_and(|s| s > 0.0 && s < 1e15),
            "a usable expiresIn was dropped"
        ),
    }
}

fn check_validation(data: &[u8], oracle: Option<&Oracle<'_>>) {
    let decoded = decode_validation(data);
    if let Err(reason) = &decoded {
        check_decode_error("validation", reason);
    }
    let (Ok(answer), Some(oracle)) = (decoded, oracle) else {
        return;
    };
    let data_field = data_object(oracle, "validation");
    let authenticated = data_field.get("authenticated");
    match answer {
        None => assert_eq!(authenticated, Some(&Value::Bool(false))),
        Some(user) => {
            assert_eq!(authenticated, Some(&Value::Bool(true)));
            let wire = data_field.get("user");
            match user {
                Some(user) => check_user(&user, wire),
                None => assert!(wire.is_none_or(Value::is_null), "user dropped"),
            }
        }
    }
}

fn check_user_answer(data: &[u8], oracle: Option<&Oracle<'_>>) {
    let decoded = decode_user(data);
    if let Err(reason) = &decoded {
        check_decode_error("user", reason);
    }
    let (Ok(answer), Some(oracle)) = (decoded, oracle) else {
        return;
    };
    let data_field = data_object(oracle, "user");
    let authenticated = data_field.get("authenticated");
    match answer {
        None => assert_eq!(authenticated, Some(&Value::Bool(false))),
        Some(user) => {
            assert_ne!(authenticated, Some(&Value::Bool(false)));
            check_user(&user, data_field.get("user"));
        }
    }
}

/// The `data` object of an answer something was decoded from; panics if there is none.
fn data_object<'a>(oracle: &Oracle<'a>, decoded: &str) -> &'a Map<String, Value> {
    let data = oracle.value.as_object().and(oracle.data);
    data.and_then(Value::as_object).unwrap_or_else(|| {
        panic!("{decoded} decoded from an answer without a data object: {data:?}")
    })
}

/// A decoded user is exactly the `user` object of the answer.
fn check_user(user: &UserInfo, wire: Option<&Value>) {
    let Some(Value::Object(wire)) = wire else {
        panic!("a user was decoded from something that is not an object: {wire:?}");
    };
    assert!(!user.id.is_empty(), "decoded a user with an empty id");
    let id = match wire.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    assert_eq!(
        Some(&user.id),
        id.as_ref(),
        "user id is not the answer's id"
    );
    let text = |name: &str| wire.get(name).and_then(Value::as_str);
    assert_eq!(user.username.as_deref(), text("username"));
    assert_eq!(user.email.as_deref(), text("email"));
    assert_eq!(user.first_name.as_deref(), text("firstName"));
    assert_eq!(user.last_name.as_deref(), text("lastName"));
    assert_eq!(user.roles, strings(wire.get("roles")).flatten());
}

/// Roles or permissions: exactly the strings of `data.<field>`; missing or `null` is none.
fn check_list(oracle: Option<&Oracle<'_>>, field: &str, decoded: Result<Vec<String>, String>) {
    if let Err(reason) = &decoded {
        check_decode_error(field, reason);
    }
    let Some(oracle) = oracle else { return };
    match decoded {
        Ok(list) => {
            let expected = strings(data_object(oracle, field).get(field)).unwrap_or_else(|| {
                panic!("{field} decoded from a data.{field} that is not a list of strings")
            });
            assert_eq!(list, expected.unwrap_or_default(), "{field} differ");
        }
        Err(reason) => {
            // Leniency: an object answer whose data object holds a list of strings (or
            // nothing) under the field is read, whatever else it carries.
            let well_formed = oracle.value.is_object()
                && oracle
                    .data
                    .and_then(Value::as_object)
                    .is_some_and(|d| strings(d.get(field)).is_some());
            assert!(
                !(oracle.unique && well_formed),
                "a well-formed {field} answer was refused: {reason}"
            );
        }
    }
}

/// `Some(None)` for absent or `null`, `Some(Some(list))` for an array of strings only,
/// `None` for anything else.
fn strings(value: Option<&Value>) -> Option<Option<Vec<String>>> {
    match value {
        None | Some(Value::Null) => Some(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some),
        Some(_) => None,
    }
}

fn check_error_body(data: &[u8], value: Option<&Value>) {
    let body = parse_error_body(data);
    check_redacted(&body);
    assert_eq!(
        body.message().is_some(),
        !data.is_empty(),
        "a non-empty error body must give a message, an empty one none"
    );
    if body.excerpt.is_some() {
        assert!(
            body.errors.is_empty() && body.title.is_none() && body.detail.is_none(),
            "an excerpt next to a parsed message"
        );
    }
    check_auth_method(&body, value);
}

/// The identity that failed must come from the body's own authMethod, wrapped or not: it
/// decides whether the client token is thrown away.
fn check_auth_method(body: &ErrorBody, value: Option<&Value>) {
    let map = value
        .and_then(Value::as_object)
        .map(|outer| match outer.get("error") {
            Some(Value::Object(inner)) => inner,
            _ => outer,
        });
    let auth_method = map
        .and_then(|m| m.get("authMethod"))
        .and_then(Value::as_str);
    assert_eq!(
        body.auth_method.as_deref(),
        auth_method,
        "authMethod misread"
    );
}

/// Every field of an error body that quotes the controller is short and token-free.
fn check_redacted(body: &ErrorBody) {
    let redacted = body
        .errors
        .iter()
        .map(|s| ("errors[]", s.as_str()))
        .chain(body.title.iter().map(|s| ("title", s.as_str())))
        .chain(body.detail.iter().map(|s| ("detail", s.as_str())))
        .chain(body.excerpt.iter().map(|s| ("excerpt", s.as_str())))
        .chain(body.message().map(|s| ("message", s)));
    for (name, text) in redacted {
        assert!(
            text.chars().count() <= MAX_EXCERPT_CHARS,
            "error body {name} longer than {MAX_EXCERPT_CHARS} characters"
        );
        assert_token_free(&format!("error body {name}"), text);
    }
}

/// No run of [`TOKENISH_RUN`] characters of the base64/JWT alphabet: what `redact` promises.
fn assert_token_free(what: &str, text: &str) {
    let mut run = 0;
    for c in text.chars() {
        let tokenish = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '/' | '=');
        run = if tokenish { run + 1 } else { 0 };
        assert!(run < TOKENISH_RUN, "{what} holds a token-like run: {text}");
    }
}
