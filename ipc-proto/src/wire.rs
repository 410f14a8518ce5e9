//! `wire_enum!`: one enum, two encodings.
//!
//! JSON wants `{"type":"emit", ...fields}` (serde's internally tagged form);
//! bincode cannot decode that form because it is not self-describing. The
//! macro defines the public enum, a private JSON mirror of it, and a bincode
//! encoding by explicit variant index, and picks one by asking the
//! (de)serializer whether it is human-readable. The mirrors hold references
//! when serializing, so no message is cloned to be encoded.
//!
//! # Growing a message without breaking protocol 1
//!
//! A variant written `Emit(Emit) = "emit" @ 1 | 7` has two frame forms: index
//! 1 carries the message as protocol 1 first defined it (its
//! [`Extended::V1`] form, without the fields added since), and index 7
//! carries every field. The encoder uses index 1 whenever the added fields
//! are empty ([`Extended::extended`] is false), so a message that does not
//! use them is byte for byte what a protocol 1 child expects; the decoder
//! takes both. In JSON the added fields are optional and simply absent.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A message type whose frame form grew fields after protocol 1.
pub(crate) trait Extended: Sized {
    /// The protocol 1 frame form, borrowing from the message.
    type V1Ref<'a>: Serialize
    where
        Self: 'a;
    /// The protocol 1 frame form, owned, as decoded.
    type V1: DeserializeOwned;
    /// Whether any field protocol 1 does not have is in use.
    fn extended(&self) -> bool;
    /// The protocol 1 form (only called when [`Self::extended`] is false).
    fn v1(&self) -> Self::V1Ref<'_>;
    /// A protocol 1 message, with the added fields empty.
    fn from_v1(v: Self::V1) -> Self;
}

macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($inner:ty) = $tag:literal @ $idx:literal $(| $ext:literal)?, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($inner), )+
        }

        impl $name {
            /// The `"type"` tag this message carries in its JSON form.
            pub fn tag(&self) -> &'static str {
                match self { $( $name::$variant(_) => $tag, )+ }
            }
        }

        $(
            impl From<$inner> for $name {
                fn from(v: $inner) -> Self { $name::$variant(v) }
            }
        )+

        const _: () = {
            use serde::de::{self, EnumAccess, VariantAccess, Visitor};
            use serde::{Deserialize, Deserializer, Serialize, Serializer};

            #[derive(Serialize)]
            #[serde(tag = "type")]
            enum JsonRef<'a> { $( #[serde(rename = $tag)] $variant(&'a $inner), )+ }

            /// The `"type"` of a JSON message.
            enum Tag { $( $variant, )+ }

            const TAGS: &[&str] = &[$($tag),+];

            impl Tag {
                fn of<E: de::Error>(tag: &str) -> Result<Tag, E> {
                    match tag {
                        $( $tag => Ok(Tag::$variant), )+
                        other => Err(E::unknown_variant(other, TAGS)),
                    }
                }

                /// The message of this type whose other fields `fields` holds.
                fn message<'de, M: de::MapAccess<'de>>(self, fields: M) -> Result<$name, M::Error> {
                    let fields = de::value::MapAccessDeserializer::new(fields);
                    match self { $( Tag::$variant => <$inner>::deserialize(fields).map($name::$variant), )+ }
                }
            }

            impl<'de> Deserialize<'de> for Tag {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    struct TagVisitor;
                    impl<'de> Visitor<'de> for TagVisitor {
                        type Value = Tag;
                        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                            f.write_str("a message type")
                        }
                        fn visit_str<E: de::Error>(self, v: &str) -> Result<Tag, E> {
                            Tag::of(v)
                        }
                    }
                    d.deserialize_str(TagVisitor)
                }
            }

            /// JSON: `{"type": ..., fields}`. With `type` first (as every
            /// encoder here writes it) the fields are decoded straight into
            /// the message; otherwise the object is gathered first.
            struct JsonVisitor;

            impl<'de> Visitor<'de> for JsonVisitor {
                type Value = $name;

                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    write!(f, "a {NAME} message (a JSON object with a \"type\")")
                }

                fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                    let Some(first) = map.next_key::<$crate::wire::Key>()? else {
                        return Err(de::Error::missing_field("type"));
                    };
                    let first = match first {
                        $crate::wire::Key::Type => return map.next_value::<Tag>()?.message(map),
                        $crate::wire::Key::Other(key) => key,
                    };
                    let mut fields = serde_json::Map::new();
                    fields.insert(first, map.next_value()?);
                    while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                        fields.insert(key, value);
                    }
                    let tag = match fields.remove("type") {
                        Some(serde_json::Value::String(tag)) => Tag::of::<A::Error>(&tag)?,
                        Some(other) => {
                            return Err(de::Error::invalid_type(
                                $crate::wire::unexpected(&other),
                                &"a string",
                            ));
                        }
                        None => return Err(de::Error::missing_field("type")),
                    };
                    tag.message(de::value::MapDeserializer::<_, serde_json::Error>::new(fields.into_iter()))
                        .map_err(de::Error::custom)
                }
            }

            const NAME: &str = stringify!($name);

            impl Serialize for $name {
                fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    if s.is_human_readable() {
                        return match self { $( $name::$variant(v) => JsonRef::$variant(v), )+ }.serialize(s);
                    }
                    match self {
                        $( $name::$variant(v) => $crate::wire::wire_enum!(@ser s, v, $idx, $tag $(, $ext)?), )+
                    }
                }
            }

            struct BinVisitor;

            impl<'de> Visitor<'de> for BinVisitor {
                type Value = $name;

                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    write!(f, "a {NAME} message")
                }

                fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<$name, A::Error> {
                    let (index, body): (u32, _) = data.variant()?;
                    $(
                        if index == $idx {
                            return $crate::wire::wire_enum!(@de body, $name::$variant, $inner $(, $ext)?);
                        }
                        $(
                            if index == $ext {
                                return body.newtype_variant::<$inner>().map($name::$variant);
                            }
                        )?
                    )+
                    Err(de::Error::custom(format_args!("unknown {NAME} variant index {index}")))
                }
            }

            impl<'de> Deserialize<'de> for $name {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    if d.is_human_readable() {
                        d.deserialize_map(JsonVisitor)
                    } else {
                        d.deserialize_enum(NAME, &[$($tag),+], BinVisitor)
                    }
                }
            }
        };
    };

    // A variant with one frame form: the type as it is.
    (@ser $s:ident, $v:ident, $idx:literal, $tag:literal) => {
        $s.serialize_newtype_variant(NAME, $idx, $tag, $v)
    };
    // A grown variant: its protocol 1 form unless the added fields are in use.
    (@ser $s:ident, $v:ident, $idx:literal, $tag:literal, $ext:literal) => {
        if $crate::wire::Extended::extended($v) {
            $s.serialize_newtype_variant(NAME, $ext, $tag, $v)
        } else {
            $s.serialize_newtype_variant(NAME, $idx, $tag, &$crate::wire::Extended::v1($v))
        }
    };
    (@de $body:ident, $ctor:path, $inner:ty) => {
        $body.newtype_variant::<$inner>().map($ctor)
    };
    (@de $body:ident, $ctor:path, $inner:ty, $ext:literal) => {
        $body
            .newtype_variant::<<$inner as $crate::wire::Extended>::V1>()
            .map(|v| $ctor(<$inner as $crate::wire::Extended>::from_v1(v)))
    };
}

pub(crate) use wire_enum;

/// A JSON message's key: its `"type"`, or another one (kept).
pub(crate) enum Key {
    Type,
    Other(String),
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "type" => Key::Type,
                    other => Key::Other(other.to_owned()),
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// What a JSON value is, for an error message.
pub(crate) fn unexpected(v: &serde_json::Value) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match v {
        serde_json::Value::Null => Unexpected::Unit,
        serde_json::Value::Bool(b) => Unexpected::Bool(*b),
        serde_json::Value::Number(_) => Unexpected::Other("a number"),
        serde_json::Value::String(s) => Unexpected::Str(s),
        serde_json::Value::Array(_) => Unexpected::Seq,
        serde_json::Value::Object(_) => Unexpected::Map,
    }
}
