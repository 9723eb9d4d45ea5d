//! A resource's `count` as written, read without serde's untagged enums:
//! those answer "data did not match any variant", and a YAML value cannot
//! hold 2^64. Any number, string or mapping of scalars is taken, and
//! [`super::parse_count`] says what is wrong with it.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// One scalar, as written.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    /// A whole number (wide enough for any YAML integer serde reports).
    Int(i128),
    /// A number with a fraction or exponent.
    Float(f64),
    /// A string.
    Str(String),
    /// Anything else: what it is, for errors.
    Other(&'static str),
}

impl Scalar {
    /// The value for an error message.
    pub(super) fn describe(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Str(s) => format!("the string {s:?}"),
            Scalar::Other(what) => (*what).to_string(),
        }
    }
}

/// A `count`: a scalar, or a mapping of field names to scalars.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RawCount {
    /// `count: 4`
    Scalar(Scalar),
    /// `count: {min: 1, max: 4, operator: '+', operand: 1}`
    Map(Vec<(String, Scalar)>),
}

/// Visits one value; `maps` says whether a mapping is welcome (the count
/// itself) or only scalars (its fields).
struct CountVisitor {
    maps: bool,
}

impl<'de> Visitor<'de> for CountVisitor {
    type Value = RawCount;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or a mapping {min, max, operator, operand}")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawCount, E> {
        Ok(RawCount::Scalar(Scalar::Other("a boolean")))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawCount, E> {
        Ok(RawCount::Scalar(Scalar::Int(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawCount, E> {
        Ok(RawCount::Scalar(Scalar::Int(v.into())))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawCount, E> {
        Ok(RawCount::Scalar(Scalar::Int(v)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawCount, E> {
        Ok(RawCount::Scalar(match i128::try_from(v) {
            Ok(i) => Scalar::Int(i),
            Err(_) => Scalar::Other("a number above 2^127"),
        }))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawCount, E> {
        Ok(RawCount::Scalar(Scalar::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCount, E> {
        Ok(RawCount::Scalar(Scalar::Str(v.chars().take(40).collect())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawCount, E> {
        Ok(RawCount::Scalar(Scalar::Other("nothing")))
    }
    fn visit_none<E: de::Error>(self) -> Result<RawCount, E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawCount, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawCount, A::Error> {
        // Drained so the parser stays in step; the values are not kept.
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(RawCount::Scalar(Scalar::Other("a list")))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawCount, A::Error> {
        if !self.maps {
            while map
                .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                .is_some()
            {}
            return Ok(RawCount::Scalar(Scalar::Other("a mapping")));
        }
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = map.next_value::<FieldValue>()?;
            out.push((key, v.0));
        }
        Ok(RawCount::Map(out))
    }
}

impl<'de> Deserialize<'de> for RawCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CountVisitor { maps: true })
    }
}

/// A field of a count mapping: a scalar (a nested collection is reported
/// as what it is).
struct FieldValue(Scalar);

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(CountVisitor { maps: false })? {
            RawCount::Scalar(s) => Ok(FieldValue(s)),
            RawCount::Map(_) => Ok(FieldValue(Scalar::Other("a mapping"))),
        }
    }
}
