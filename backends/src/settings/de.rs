//! The raw layer's deserializer: fills a raw section struct from a table of values, telling
//! each [`Raw`] field its setting's name, and reads a struct's field names for the hints.
//!
//! Written by hand because no crate does this: the `config` crate's own deserializer stops at
//! the first bad value and forgets which key a value had, and `serde_spanned` knows byte
//! spans of one TOML file, not settings merged from a file and the environment. A raw section
//! is all `Raw` fields, so deserializing one never fails on a value: every value is typed
//! later, in the second stage, where all problems are collected. [`Raw`] asks for itself as a
//! struct of a reserved name; only this deserializer answers that with the key and the value.

use super::{Raw, Table};
use config::{ConfigError, Value};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor,
};
use serde::Deserialize;
use std::fmt;

/// The struct name a [`Raw`] asks for; a key and a value answer it.
const RAW: &str = "$autoscalebot::settings::Raw";
const RAW_FIELDS: &[&str] = &["key", "value"];

/// Takes the fields of `T` out of `table`, each with its name under `prefix`.
pub(super) fn take<T: DeserializeOwned>(table: &mut Table, prefix: &str) -> T {
    T::deserialize(Section { table, prefix })
        .unwrap_or_else(|error| panic!("a raw section's fields are all Raw: {error}"))
}

/// The field names of the raw section `T`, in order: its keys.
pub fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut found: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut found));
    assert!(
        !found.is_empty(),
        "a raw section is a struct with named fields"
    );
    found
}

struct Section<'a> {
    table: &'a mut Table,
    prefix: &'a str,
}

impl<'de> Deserializer<'de> for Section<'_> {
    type Error = ConfigError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        visitor.visit_map(SectionFields {
            fields: fields.iter(),
            current: None,
            table: self.table,
            prefix: self.prefix,
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, ConfigError> {
        Err(de::Error::custom("a raw section is a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Every field of the struct, present or not: an absent one is a [`Raw`] with no value.
struct SectionFields<'a> {
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<&'static str>,
    table: &'a mut Table,
    prefix: &'a str,
}

impl<'de> MapAccess<'de> for SectionFields<'_> {
    type Error = ConfigError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ConfigError> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = Some(field);
        seed.deserialize(field.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ConfigError> {
        let field = self.current.take().expect("a key before its value");
        seed.deserialize(Field {
            key: format!("{}{field}", self.prefix),
            value: self.table.remove(field),
        })
    }
}

/// One field's value, which only a [`Raw`] can take.
struct Field {
    key: String,
    value: Option<Value>,
}

impl<'de> Deserializer<'de> for Field {
    type Error = ConfigError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        if name != RAW {
            return Err(de::Error::custom(format!(
                "{}: a raw section's field is a Raw or a SecretRaw",
                self.key
            )));
        }
        visitor.visit_map(RawParts {
            key: Some(self.key),
            value: Some(self.value),
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, ConfigError> {
        Err(de::Error::custom(format!(
            "{}: a raw section's field is a Raw or a SecretRaw",
            self.key
        )))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// A [`Raw`]'s two parts: its key, then its value (if any).
struct RawParts {
    key: Option<String>,
    value: Option<Option<Value>>,
}

impl<'de> MapAccess<'de> for RawParts {
    type Error = ConfigError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ConfigError> {
        let name = if self.key.is_some() {
            "key"
        } else if self.value.is_some() {
            "value"
        } else {
            return Ok(None);
        };
        seed.deserialize(name.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ConfigError> {
        if let Some(key) = self.key.take() {
            return seed.deserialize(key.into_deserializer());
        }
        let value = self.value.take().expect("the value after the key");
        seed.deserialize(OptionalValue(value))
    }
}

struct OptionalValue(Option<Value>);

impl<'de> Deserializer<'de> for OptionalValue {
    type Error = ConfigError;

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match self.0 {
            None => visitor.visit_none(),
            Some(value) => visitor.visit_some(value),
        }
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_option(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        deserializer.deserialize_struct(RAW, RAW_FIELDS, RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a setting's key and raw value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut raw = Raw::default();
        while let Some(part) = map.next_key::<Part>()? {
            match part {
                Part::Key => raw.key = map.next_value()?,
                Part::Value => raw.value = map.next_value::<Option<Value>>()?,
            }
        }
        Ok(raw)
    }
}

/// The names of a [`Raw`]'s parts, read without copying them.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Part {
    Key,
    Value,
}

/// Reads the field names a struct's `Deserialize` asks for, then stops it.
struct Fields<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for Fields<'_> {
    type Error = ConfigError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ConfigError> {
        *self.0 = fields;
        Err(de::Error::custom("only the field names were wanted"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, ConfigError> {
        Err(de::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}
