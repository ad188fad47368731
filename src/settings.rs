//! Reading named settings, whether they come from environment variables or from an object of
//! a JSON/YAML config file: a [`Field`] names a setting once for both, and a [`Source`] turns
//! what it finds into typed values.
//!
//! Error messages name the variable or the key (with its path, e.g. `redis.port`) and never
//! quote the value, since it may be a secret. This module is a leaf: it knows nothing of the
//! settings it reads.

use serde_json::{Map, Value};
use std::ops::RangeInclusive;
use std::time::Duration;

/// One setting as the official SDKs spell it: its environment variables and its config-file
/// keys, each list in order of precedence (the first one present wins).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    /// Environment variable names, e.g. `["REDIS_PORT"]`.
    pub(crate) env: &'a [&'a str],
    /// Config-file keys within their object, e.g. `["key_prefix", "keyPrefix"]`.
    pub(crate) keys: &'a [&'a str],
}

/// A setting that only config files have: these keys, no environment variable.
impl<'a> From<&'a [&'a str]> for Field<'a> {
    fn from(keys: &'a [&'a str]) -> Self {
        Field { env: &[], keys }
    }
}

/// As for a slice of keys.
impl<'a, const N: usize> From<&'a [&'a str; N]> for Field<'a> {
    fn from(keys: &'a [&'a str; N]) -> Self {
        Field { env: &[], keys }
    }
}

/// A value as a source holds it, before it is typed.
#[derive(Debug)]
enum Raw<'s> {
    /// An environment variable's value, not blank, not trimmed.
    Text(String),
    /// A config-file value, not null.
    Json(&'s Value),
}

/// One setting a source has: the name it was found under, for messages, and its value.
#[derive(Debug)]
pub(crate) struct Setting<'s> {
    name: String,
    raw: Raw<'s>,
}

impl Setting<'_> {
    /// The variable or the key (with its path) the value was found under.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The value as text, surrounding blanks removed from an environment variable.
    pub(crate) fn string(self) -> Result<String, String> {
        match self.raw {
            Raw::Text(text) => Ok(text.trim().to_owned()),
            Raw::Json(_) => self.json_string(),
        }
    }

    /// The value as text, kept byte for byte: a password may legitimately end in a space.
    pub(crate) fn secret(self) -> Result<String, String> {
        match self.raw {
            Raw::Text(text) => Ok(text),
            Raw::Json(_) => self.json_string(),
        }
    }

    fn json_string(&self) -> Result<String, String> {
        match self.raw {
            Raw::Json(Value::String(text)) => Ok(text.clone()),
            _ => Err(format!("{} must be a string", self.name)),
        }
    }

    /// The value as a whole number within `range`, converted to `T`; the error says it must
    /// be `what` (e.g. "a port number (1-65535)").
    pub(crate) fn integer<T: TryFrom<u64>>(
        self,
        range: RangeInclusive<u64>,
        what: &str,
    ) -> Result<T, String> {
        let number = match &self.raw {
            Raw::Text(text) => text.trim().parse::<u64>().ok(),
            Raw::Json(value) => value.as_u64(),
        };
        number
            .filter(|number| range.contains(number))
            .and_then(|number| T::try_from(number).ok())
            .ok_or_else(|| format!("{} must be {what}", self.name))
    }

    /// The value as a list: an environment variable's comma-separated items, or a config
    /// file's array of strings (or one comma-separated string). Items are trimmed; an empty
    /// item is an error.
    pub(crate) fn list(self) -> Result<Vec<String>, String> {
        let name = self.name.clone();
        let items: Vec<String> = match self.raw {
            Raw::Json(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("{name} must be a list of strings"))?,
            _ => self.string()?.split(',').map(str::to_owned).collect(),
        };
        let items: Vec<String> = items.iter().map(|item| item.trim().to_owned()).collect();
        if items.is_empty() || items.iter().any(String::is_empty) {
            return Err(format!("{name} has an empty item"));
        }
        Ok(items)
    }

    /// The value as a yes/no: `true`/`false`, `1`/`0` or `yes`/`no` (any case) in the
    /// environment, a boolean in a config file.
    pub(crate) fn boolean(self) -> Result<bool, String> {
        let answer = match &self.raw {
            Raw::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => None,
            },
            Raw::Json(value) => value.as_bool(),
        };
        answer.ok_or_else(|| format!("{} must be true or false", self.name))
    }

    /// The value as a number of seconds, fractions allowed.
    pub(crate) fn seconds(self) -> Result<Duration, String> {
        let secs = match &self.raw {
            Raw::Text(text) => text.trim().parse::<f64>().ok(),
            Raw::Json(value) => value.as_f64(),
        };
        secs.and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or_else(|| format!("{} must be a number of seconds (0 or more)", self.name))
    }
}

/// Somewhere named settings are read from. `find` is the only difference between sources;
/// the typed reads are shared, so a setting means the same wherever it comes from. Each typed
/// read is `Ok(None)` when the setting is absent, and an error naming it when it is present
/// but not of its type.
pub(crate) trait Source {
    /// The first of the field's names that this source has a value for.
    fn find<'f>(&self, field: impl Into<Field<'f>>) -> Option<Setting<'_>>;

    /// See [`Setting::string`].
    fn string<'f>(&self, field: impl Into<Field<'f>>) -> Result<Option<String>, String> {
        self.find(field).map(Setting::string).transpose()
    }

    /// See [`Setting::secret`].
    fn secret<'f>(&self, field: impl Into<Field<'f>>) -> Result<Option<String>, String> {
        self.find(field).map(Setting::secret).transpose()
    }

    /// See [`Setting::integer`].
    fn integer<'f, T: TryFrom<u64>>(
        &self,
        field: impl Into<Field<'f>>,
        range: RangeInclusive<u64>,
        what: &str,
    ) -> Result<Option<T>, String> {
        let found = self.find(field);
        found
            .map(|setting| setting.integer(range, what))
            .transpose()
    }

    /// See [`Setting::boolean`].
    fn boolean<'f>(&self, field: impl Into<Field<'f>>) -> Result<Option<bool>, String> {
        self.find(field).map(Setting::boolean).transpose()
    }

    /// See [`Setting::seconds`].
    fn seconds<'f>(&self, field: impl Into<Field<'f>>) -> Result<Option<Duration>, String> {
        self.find(field).map(Setting::seconds).transpose()
    }
}

/// Environment variables, through a lookup (the process environment, or a map in tests).
/// Empty and blank values count as unset.
pub(crate) struct Env<F>(pub(crate) F);

impl<F: Fn(&str) -> Option<String>> Source for Env<F> {
    fn find<'f>(&self, field: impl Into<Field<'f>>) -> Option<Setting<'_>> {
        field.into().env.iter().find_map(|name| {
            let value = (self.0)(name).filter(|value| !value.trim().is_empty())?;
            Some(Setting {
                name: (*name).to_owned(),
                raw: Raw::Text(value),
            })
        })
    }
}

/// One object of a config document, with its path for messages (`""` at the top, `redis.`
/// inside the `redis` object). `null` counts as absent.
pub(crate) struct Section<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Section<'a> {
    /// The object `map`, whose keys are named `{path}{key}` in messages.
    pub(crate) fn new(map: &'a Map<String, Value>, path: impl Into<String>) -> Self {
        Self {
            map,
            path: path.into(),
        }
    }

    /// The object under `key`, if present.
    pub(crate) fn section(&self, key: &str) -> Result<Option<Section<'a>>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Section::new(map, format!("{}{key}.", self.path)))),
            Some(_) => Err(format!("{}{key} must be an object", self.path)),
        }
    }

    /// The value under `key`, unless it is absent or null.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }
}

impl Source for Section<'_> {
    fn find<'f>(&self, field: impl Into<Field<'f>>) -> Option<Setting<'_>> {
        let keys = field.into().keys;
        keys.iter().find_map(|key| {
            Some(Setting {
                raw: Raw::Json(self.get(key)?),
                name: format!("{}{key}", self.path),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PORT: Field<'static> = Field {
        env: &["PORT", "OTHER_PORT"],
        keys: &["port", "otherPort"],
    };

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env(move |name: &str| {
            let found = pairs.iter().find(|(key, _)| *key == name);
            found.map(|(_, value)| (*value).to_owned())
        })
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn env_blank_is_unset_the_first_name_wins_and_secrets_keep_their_bytes() {
        let vars = env(&[("PORT", " "), ("OTHER_PORT", " 7 "), ("PW", " p w ")]);
        assert_eq!(vars.integer::<u16>(PORT, 1..=65535, "a port"), Ok(Some(7)));
        assert_eq!(vars.string(PORT), Ok(Some("7".to_owned())));
        let pw = Field {
            env: &["PW"],
            keys: &[],
        };
        assert_eq!(vars.secret(pw), Ok(Some(" p w ".to_owned())));
        assert_eq!(vars.string(pw), Ok(Some("p w".to_owned())));
        assert_eq!(
            vars.string(&["port"]),
            Ok(None),
            "keys only: not in the env"
        );
    }

    #[test]
    fn json_null_is_absent_and_the_first_key_wins() {
        let map = object(json!({"port": null, "otherPort": 8, "s": "x"}));
        let section = Section::new(&map, "redis.");
        assert_eq!(
            section.integer::<u16>(PORT, 1..=65535, "a port"),
            Ok(Some(8))
        );
        let map = object(json!({"port": 9, "otherPort": 8}));
        let section = Section::new(&map, "");
        assert_eq!(
            section.integer::<u16>(PORT, 1..=65535, "a port"),
            Ok(Some(9))
        );
        assert_eq!(section.string(&["missing"]), Ok(None));
    }

    #[test]
    fn errors_name_the_setting_and_never_the_value() {
        let map = object(json!({"port": "hunter2", "s": ["hunter2"], "t": -1, "o": "hunter2"}));
        let section = Section::new(&map, "redis.");
        let port = section.integer::<u16>(PORT, 1..=65535, "a port number");
        assert_eq!(port, Err("redis.port must be a port number".to_owned()));
        assert_eq!(
            section.string(&["s"]),
            Err("redis.s must be a string".into())
        );
        let ttl = section.seconds(&["t"]).unwrap_err();
        assert_eq!(ttl, "redis.t must be a number of seconds (0 or more)");
        let error = section.section("o").err().unwrap();
        assert_eq!(error, "redis.o must be an object");

        let vars = env(&[("PORT", "hunter2"), ("OTHER_PORT", "0")]);
        let error = vars.integer::<u16>(PORT, 1..=65535, "a port").unwrap_err();
        assert_eq!(error, "PORT must be a port");
        let zero = env(&[("PORT", "0")]);
        assert!(zero.integer::<u16>(PORT, 1..=65535, "a port").is_err());
        let huge = env(&[("PORT", "70000")]);
        assert!(huge.integer::<u16>(PORT, 0..=u64::MAX, "a port").is_err());
    }

    #[test]
    fn seconds_take_fractions_from_both_sources() {
        let field = Field {
            env: &["TTL"],
            keys: &["ttl"],
        };
        let vars = env(&[("TTL", "0.5")]);
        assert_eq!(vars.seconds(field), Ok(Some(Duration::from_millis(500))));
        let map = object(json!({"ttl": 2}));
        let section = Section::new(&map, "");
        assert_eq!(section.seconds(field), Ok(Some(Duration::from_secs(2))));
        let nan = env(&[("TTL", "NaN")]);
        assert!(nan.seconds(field).is_err());
    }

    #[test]
    fn lists_and_booleans_from_both_sources() {
        let field = Field {
            env: &["NODES"],
            keys: &["nodes"],
        };
        let vars = env(&[("NODES", " a:1, b "), ("YES", "True"), ("BAD", "a,,b")]);
        assert_eq!(
            vars.find(field).unwrap().list(),
            Ok(vec!["a:1".into(), "b".into()])
        );
        let yes = Field {
            env: &["YES"],
            keys: &["yes"],
        };
        assert_eq!(vars.boolean(yes), Ok(Some(true)));
        let bad = Field {
            env: &["BAD"],
            keys: &[],
        };
        assert_eq!(
            vars.find(bad).unwrap().list(),
            Err("BAD has an empty item".into())
        );
        let map = object(json!({"nodes": ["a", "b:2"], "yes": false, "n": [1], "s": "x, y"}));
        let section = Section::new(&map, "redis.");
        let list = |field: Field<'_>| section.find(field).unwrap().list();
        assert_eq!(list(field), Ok(vec!["a".into(), "b:2".into()]));
        assert_eq!(list((&["s"]).into()), Ok(vec!["x".into(), "y".into()]));
        assert_eq!(section.boolean(yes), Ok(Some(false)));
        let error = list((&["n"]).into()).unwrap_err();
        assert_eq!(error, "redis.n must be a list of strings");
        assert!(section.boolean(&["s"]).is_err());
    }

    #[test]
    fn nested_sections_carry_their_path() {
        let map = object(json!({"redis": {"db": "x"}, "cache": null}));
        let top = Section::new(&map, "");
        assert!(top.section("cache").unwrap().is_none());
        let redis = top.section("redis").unwrap().unwrap();
        let error = redis.integer::<u32>(&["db"], 0..=u64::MAX, "a db");
        assert_eq!(error, Err("redis.db must be a db".to_owned()));
    }
}
