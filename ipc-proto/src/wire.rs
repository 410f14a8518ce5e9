//! `wire_enum!`: one enum, two encodings.
//!
//! JSON wants `{"type":"emit", ...fields}` (serde's internally tagged form);
//! bincode cannot decode that form because it is not self-describing. The
//! macro defines the public enum and private mirrors of it, and picks one by
//! asking the (de)serializer whether it is human-readable. The mirrors hold
//! references when serializing, so no message is cloned to be encoded.

macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($inner:ty) = $tag:literal, )+
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
            use serde::{Deserialize, Deserializer, Serialize, Serializer};

            #[derive(Serialize)]
            #[serde(tag = "type")]
            enum JsonRef<'a> { $( #[serde(rename = $tag)] $variant(&'a $inner), )+ }

            #[derive(Deserialize)]
            #[serde(tag = "type")]
            enum JsonOwned { $( #[serde(rename = $tag)] $variant($inner), )+ }

            #[derive(Serialize)]
            enum BinRef<'a> { $( $variant(&'a $inner), )+ }

            #[derive(Deserialize)]
            enum BinOwned { $( $variant($inner), )+ }

            impl Serialize for $name {
                fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    if s.is_human_readable() {
                        match self { $( $name::$variant(v) => JsonRef::$variant(v), )+ }.serialize(s)
                    } else {
                        match self { $( $name::$variant(v) => BinRef::$variant(v), )+ }.serialize(s)
                    }
                }
            }

            impl<'de> Deserialize<'de> for $name {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    if d.is_human_readable() {
                        Ok(match JsonOwned::deserialize(d)? { $( JsonOwned::$variant(v) => $name::$variant(v), )+ })
                    } else {
                        Ok(match BinOwned::deserialize(d)? { $( BinOwned::$variant(v) => $name::$variant(v), )+ })
                    }
                }
            }
        };
    };
}

pub(crate) use wire_enum;
