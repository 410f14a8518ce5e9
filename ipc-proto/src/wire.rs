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

            #[derive(Deserialize)]
            #[serde(tag = "type")]
            enum JsonOwned { $( #[serde(rename = $tag)] $variant($inner), )+ }

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
                        Ok(match JsonOwned::deserialize(d)? { $( JsonOwned::$variant(v) => $name::$variant(v), )+ })
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
