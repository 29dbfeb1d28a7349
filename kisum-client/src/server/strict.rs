//! Strict request bodies all the way down: a JSON value read into a type the way serde would, except that
//! a struct is read only from a JSON object. serde's derive also reads a struct from an array of its
//! fields (`["leo", "encore"]` for `{"user":"leo","company":"encore"}`), which no client means and which
//! would let a body slip past `deny_unknown_fields`; this deserializer refuses it at any depth, naming
//! the place (`/to`, `/checks/3`).
//!
//! It wraps a parsed [`serde_json::Value`] (bodies are at most 64 KiB) and follows serde's data model:
//! objects, arrays, options and newtypes are walked here, so that the rule reaches every nested struct;
//! scalars and enums are handed to `serde_json`'s own deserializer.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// A problem met while reading a body: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictError {
    /// A JSON pointer to the place (`""` for the whole body).
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for StrictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StrictError {}

impl de::Error for StrictError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        StrictError { path: String::new(), message: msg.to_string() }
    }
}

/// Reads `value` into `T`, refusing a struct given as an array anywhere in it.
pub fn from_value<T: de::DeserializeOwned>(value: Value) -> Result<T, StrictError> {
    T::deserialize(Strict { value, path: String::new() })
}

/// A value and where it is in the body.
struct Strict {
    value: Value,
    path: String,
}

impl Strict {
    /// An error here, unless a deeper one already named its place.
    fn at(&self, e: StrictError) -> StrictError {
        if e.path.is_empty() { StrictError { path: self.path.clone(), ..e } } else { e }
    }
}

fn json_error(e: serde_json::Error) -> StrictError {
    <StrictError as de::Error>::custom(e)
}

impl<'de> de::Deserializer<'de> for Strict {
    type Error = StrictError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        let path = self.path.clone();
        let at = |e: StrictError| if e.path.is_empty() { StrictError { path: path.clone(), ..e } } else { e };
        match self.value {
            Value::Array(items) => {
                let len = items.len();
                visitor.visit_seq(Seq { items: items.into_iter(), index: 0, len, path: self.path }).map_err(at)
            }
            Value::Object(map) => visitor.visit_map(Fields::new(map, self.path)).map_err(at),
            scalar => scalar.deserialize_any(visitor).map_err(json_error).map_err(at),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        match &self.value {
            Value::Object(_) => self.deserialize_any(visitor),
            _ => Err(self.at(<StrictError as de::Error>::custom(format!(
                "expected a JSON object, found {}",
                kind(&self.value)
            )))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        let at = |e: StrictError| StrictError { path: self.path.clone(), ..e };
        self.value.clone().deserialize_enum(name, variants, visitor).map_err(json_error).map_err(at)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        seq tuple tuple_struct map identifier ignored_any
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The members of an array, each with its index in the path.
struct Seq {
    items: std::vec::IntoIter<Value>,
    index: usize,
    len: usize,
    path: String,
}

impl<'de> de::SeqAccess<'de> for Seq {
    type Error = StrictError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, StrictError> {
        let Some(value) = self.items.next() else { return Ok(None) };
        let path = format!("{}/{}", self.path, self.index);
        self.index += 1;
        seed.deserialize(Strict { value, path }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len.saturating_sub(self.index))
    }
}

/// The members of an object, each value with its key in the path.
struct Fields {
    entries: serde_json::map::IntoIter,
    pending: Option<(String, Value)>,
    path: String,
}

impl Fields {
    fn new(map: Map<String, Value>, path: String) -> Fields {
        Fields { entries: map.into_iter(), pending: None, path }
    }
}

impl<'de> de::MapAccess<'de> for Fields {
    type Error = StrictError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, StrictError> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        let path = format!("{}/{}", self.path, key.replace('~', "~0").replace('/', "~1"));
        let read =
            seed.deserialize(key.into_deserializer()).map_err(|e: StrictError| StrictError { path: path.clone(), ..e });
        self.pending = Some((path, value));
        read.map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, StrictError> {
        match self.pending.take() {
            Some((path, value)) => seed.deserialize(Strict { value, path }),
            None => Err(<StrictError as de::Error>::custom("a value was asked for before its key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        id: String,
        n: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        inner: Inner,
        list: Vec<Inner>,
        maybe: Option<Inner>,
        tag: Tag,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Tag {
        User(String),
        Agent(String),
    }

    #[test]
    fn objects_read_as_serde_reads_them() {
        let value = json!({"inner": {"id": "a"}, "list": [{"id": "b", "n": 2}], "maybe": null, "tag": {"agent": "x"}});
        let read: Outer = from_value(value).unwrap();
        assert_eq!(read.inner, Inner { id: "a".into(), n: None });
        assert_eq!(read.list, vec![Inner { id: "b".into(), n: Some(2) }]);
        assert_eq!(read.tag, Tag::Agent("x".into()));
    }

    #[test]
    fn a_struct_given_as_an_array_is_refused_where_it_is() {
        let cases = [
            (json!(["a", null]), ""),
            (json!({"inner": ["a", 1], "list": [], "maybe": null, "tag": {"user": "u"}}), "/inner"),
            (
                json!({"inner": {"id": "a"}, "list": [{"id": "b"}, ["c"]], "maybe": null, "tag": {"user": "u"}}),
                "/list/1",
            ),
            (json!({"inner": {"id": "a"}, "list": [], "maybe": ["d"], "tag": {"user": "u"}}), "/maybe"),
        ];
        for (value, path) in cases {
            let e = from_value::<Outer>(value.clone()).unwrap_err();
            assert_eq!(e.path, path, "{value}: {e}");
            assert!(e.message.contains("expected a JSON object"), "{e}");
        }
    }

    #[test]
    fn other_problems_name_their_place() {
        let unknown = json!({"inner": {"id": "a", "x": 1}, "list": [], "maybe": null, "tag": {"user": "u"}});
        let e = from_value::<Outer>(unknown).unwrap_err();
        assert_eq!(e.path, "/inner/x");
        let wrong = json!({"inner": {"id": 7}, "list": [], "maybe": null, "tag": {"user": "u"}});
        assert_eq!(from_value::<Outer>(wrong).unwrap_err().path, "/inner/id");
        let tag = json!({"inner": {"id": "a"}, "list": [], "maybe": null, "tag": {"robot": "u"}});
        assert_eq!(from_value::<Outer>(tag).unwrap_err().path, "/tag");
    }
}
