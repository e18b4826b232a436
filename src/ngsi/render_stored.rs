//! Renders an entity's stored document (the serde form of [`Entity`]) straight to the
//! JSON text of its normalized representation, without building the entity or a
//! `Value` tree: decoding and re-encoding were two thirds of the CPU of a query page.
//!
//! For the options it accepts ([`renders`]) the text is exactly what
//! `serde_json::to_string(&render_entity(..))` gives; the tests hold the two together.
//! Values are copied from the document as they were stored, never parsed.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::attribute;
use super::render::{compact_vocab, Format, RenderOptions};
use super::time;
use crate::error::{NgsiError, Result};
use crate::jsonld::ActiveContext;

/// Whether [`render_document`] handles these options (normalized, no language or
/// dataset selection, no linked entities); other representations go through `Entity`.
pub fn renders(opts: &RenderOptions) -> bool {
    opts.format == Format::Normalized
        && opts.lang.is_none()
        && opts.dataset_ids.is_none()
        && opts.linked.is_empty()
}

/// Appends the rendered entity to `out`, then `extra_member` (already JSON text such as
/// `"@context":[…]`) as its last member if given. `now` drops expired attribute
/// instances, as decoding the entity does.
pub fn render_document(
    doc: &str,
    ctx: &ActiveContext,
    opts: &RenderOptions,
    now: &DateTime<Utc>,
    extra_member: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let stored: StoredEntity = serde_json::from_str(doc)
        .map_err(|e| NgsiError::internal(format!("stored entity is not readable: {e}")))?;
    let mut obj = ObjectWriter::new(out);
    if opts.shows_member("id") {
        obj.key("id");
        write_str(obj.out, &stored.id.0);
    }
    if opts.shows_member("type") {
        obj.key("type");
        write_strings(obj.out, stored.types.iter().map(|t| ctx.compact(&t.0)));
    }
    if let Some(scope) = &stored.scope {
        if opts.shows_scope() {
            obj.key("scope");
            write_strings(obj.out, scope.iter().map(|s| s.0.to_string()));
        }
    }
    if let (Some(expires), true) = (&stored.expires_at, opts.sys_attrs) {
        obj.key("expiresAt");
        write_str(obj.out, &expires.0);
    }
    for (name, instances) in &stored.attrs.0 {
        if !opts.shows_attribute(&name.0) {
            continue;
        }
        let live: Vec<&Members> = instances.iter().filter(|i| !expired(i, now)).collect();
        if live.is_empty() {
            continue;
        }
        obj.key(&ctx.compact(&name.0));
        if live.len() > 1 {
            obj.out.push(b'[');
        }
        for (i, instance) in live.iter().enumerate() {
            if i > 0 {
                obj.out.push(b',');
            }
            write_attribute(instance, ctx, opts, obj.out)?;
        }
        if live.len() > 1 {
            obj.out.push(b']');
        }
    }
    if opts.sys_attrs {
        obj.key("createdAt");
        write_str(obj.out, &stored.created_at.0);
        obj.key("modifiedAt");
        write_str(obj.out, &stored.modified_at.0);
    }
    if let Some(member) = extra_member {
        obj.raw_member(member);
    }
    obj.close();
    Ok(())
}

/// As `render_attribute` for the normalized form: system members only with sysAttrs,
/// vocab and objectType compacted, sub-attributes rendered under compacted names.
fn write_attribute(
    attr: &Members,
    ctx: &ActiveContext,
    opts: &RenderOptions,
    out: &mut Vec<u8>,
) -> Result<()> {
    let mut obj = ObjectWriter::new(out);
    for (key, raw) in &attr.0 {
        let key = key.0.as_ref();
        match key {
            "createdAt" | "modifiedAt" | "expiresAt" if !opts.sys_attrs => {}
            "vocab" => {
                obj.key(key);
                let compacted = compact_vocab(&parse_value(raw)?, ctx);
                write_value(obj.out, &compacted)?;
            }
            "objectType" => {
                obj.key(key);
                let value = parse_value(raw)?;
                write_str(obj.out, &ctx.compact(value.as_str().unwrap_or_default()));
            }
            k if !attribute::is_reserved(k) => {
                obj.key(&ctx.compact(k));
                if raw.get().starts_with('{') {
                    let sub: Members = serde_json::from_str(raw.get()).map_err(unreadable)?;
                    write_attribute(&sub, ctx, opts, obj.out)?;
                } else {
                    obj.out.extend_from_slice(raw.get().as_bytes());
                }
            }
            _ => {
                obj.key(key);
                obj.out.extend_from_slice(raw.get().as_bytes());
            }
        }
    }
    obj.close();
    Ok(())
}

/// An instance whose `expiresAt` has passed is gone (clause 4.3.x transient attributes).
fn expired(instance: &Members, now: &DateTime<Utc>) -> bool {
    instance
        .0
        .iter()
        .find(|(k, _)| k.0 == "expiresAt")
        .and_then(|(_, raw)| serde_json::from_str::<Text>(raw.get()).ok())
        .and_then(|t| time::parse(&t.0).ok())
        .is_some_and(|t| t <= *now)
}

fn parse_value(raw: &RawValue) -> Result<Value> {
    serde_json::from_str(raw.get()).map_err(unreadable)
}

fn unreadable(e: serde_json::Error) -> NgsiError {
    NgsiError::internal(format!("stored entity is not readable: {e}"))
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_value(out: &mut Vec<u8>, v: &Value) -> Result<()> {
    serde_json::to_writer(out, v).map_err(NgsiError::internal)
}

/// One string, or an array when there are several (as `type` and `scope` are shown).
fn write_strings(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = String>) {
    let several = items.len() != 1;
    if several {
        out.push(b'[');
    }
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, &s);
    }
    if several {
        out.push(b']');
    }
}

/// Writes `{"k":v,…}` member by member.
struct ObjectWriter<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> ObjectWriter<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn separate(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// Starts a member: its key and the colon; the caller writes the value.
    fn key(&mut self, key: &str) {
        self.separate();
        write_str(self.out, key);
        self.out.push(b':');
    }

    fn raw_member(&mut self, member: &str) {
        self.separate();
        self.out.extend_from_slice(member.as_bytes());
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// The stored document, borrowing from its text wherever nothing was escaped.
#[derive(Deserialize)]
struct StoredEntity<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(rename = "type", borrow)]
    types: Vec<Text<'a>>,
    #[serde(default, borrow)]
    scope: Option<Vec<Text<'a>>>,
    #[serde(rename = "createdAt", borrow)]
    created_at: Text<'a>,
    #[serde(rename = "modifiedAt", borrow)]
    modified_at: Text<'a>,
    #[serde(rename = "expiresAt", default, borrow)]
    expires_at: Option<Text<'a>>,
    #[serde(default, borrow)]
    attrs: Attrs<'a>,
}

/// A string of the document: borrowed unless it had escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

/// An object's members in document order, each value read as `V`.
struct Ordered<'a, V>(Vec<(Text<'a>, V)>);

/// An attribute instance's members, values left as JSON text.
type Members<'a> = Ordered<'a, &'a RawValue>;

/// `attrs`: attribute name → its instances, in document order.
type Attrs<'a> = Ordered<'a, Vec<Members<'a>>>;

impl<V> Default for Ordered<'_, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de: 'a, 'a, V: Deserialize<'de>> Deserialize<'de> for Ordered<'a, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct OrderedVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<V> {
            type Value = Ordered<'de, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(
                self,
                mut map: M,
            ) -> std::result::Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(entry) = map.next_entry::<Text<'de>, V>()? {
                    members.push(entry);
                }
                Ok(Ordered(members))
            }
        }
        d.deserialize_map(OrderedVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::{json, Value};

    use super::*;
    use crate::ngsi::render::render_entity;
    use crate::ngsi::Entity;

    const V: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

    fn ctx() -> ActiveContext {
        ActiveContext::new(
            vec![
                (
                    "Sensor".to_string(),
                    "https://ex.org/Sensor".to_string(),
                    false,
                ),
                (
                    "temperature".to_string(),
                    "https://ex.org/temp".to_string(),
                    false,
                ),
                ("ex".to_string(), "https://ex.org/".to_string(), true),
            ],
            Some(V.to_string()),
            json!("https://ex.org/context.jsonld"),
        )
    }

    /// Entities with every kind of member the stored form has.
    fn entities() -> Vec<Entity> {
        let docs = [
            json!({
                "id": "urn:ngsi-ld:Sensor:1",
                "type": ["https://ex.org/Sensor"],
                "createdAt": "2025-01-01T00:00:00Z",
                "modifiedAt": "2025-01-02T00:00:00Z",
                "attrs": {
                    "https://ex.org/temp": [{
                        "type": "Property", "value": 21.5, "unitCode": "CEL",
                        "observedAt": "2025-01-02T00:00:00Z",
                        "createdAt": "2025-01-01T00:00:00Z", "modifiedAt": "2025-01-02T00:00:00Z",
                        (V.to_string() + "accuracy"): {"type": "Property", "value": 0.1,
                            "createdAt": "2025-01-01T00:00:00Z", "modifiedAt": "2025-01-02T00:00:00Z"}
                    }],
                    (V.to_string() + "name"): [{"type": "Property", "value": "Quai \"Rive-Neuve\" \\ é 😀\n"}],
                    (V.to_string() + "refDevice"): [{"type": "Relationship", "object": "urn:ngsi-ld:Device:1",
                        "objectType": "https://ex.org/Sensor"}],
                    (V.to_string() + "category"): [{"type": "VocabProperty", "vocab": ["https://ex.org/a", V.to_string() + "b"]}],
                    (V.to_string() + "label"): [{"type": "LanguageProperty", "languageMap": {"fr": "Pont", "en": "Bridge"}}],
                    (V.to_string() + "location"): [{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [5.37, 43.29]}}],
                    (V.to_string() + "reading"): [
                        {"type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:Dataset:a"},
                        {"type": "Property", "value": {"nested": [1, 2.5e-7, null, true]}},
                        {"type": "Property", "value": 3, "datasetId": "urn:ngsi-ld:Dataset:old",
                            "expiresAt": "2000-01-01T00:00:00Z"}
                    ],
                    (V.to_string() + "gone"): [{"type": "Property", "value": 4, "expiresAt": "2001-01-01T00:00:00Z"}],
                    (V.to_string() + "later"): [{"type": "Property", "value": 5, "expiresAt": "2999-01-01T00:00:00Z"}],
                    (V.to_string() + "payload"): [{"type": "JsonProperty", "json": {"a": [1, {"b": "c"}]}}],
                    (V.to_string() + "path"): [{"type": "ListRelationship", "objectList": [{"object": "urn:a"}, {"object": "urn:b"}]}],
                    "https://other.org/unmapped": [{"type": "ListProperty", "valueList": [1, "two"]}]
                }
            }),
            json!({
                "id": "urn:ngsi-ld:Thing:é\"2",
                "type": [V.to_string() + "Thing", "https://ex.org/Sensor"],
                "scope": ["/Marseille/Vieux-Port"],
                "createdAt": "2025-01-01T00:00:00Z",
                "modifiedAt": "2025-01-01T00:00:00Z",
                "expiresAt": "2999-01-01T00:00:00Z"
            }),
            json!({
                "id": "urn:ngsi-ld:Thing:3",
                "type": [V.to_string() + "Thing"],
                "scope": ["/a", "/b"],
                "createdAt": "2025-01-01T00:00:00Z",
                "modifiedAt": "2025-01-01T00:00:00Z",
                "attrs": {}
            }),
        ];
        docs.into_iter()
            .map(|d| serde_json::from_value(d).expect("a valid stored entity"))
            .collect()
    }

    fn options() -> Vec<RenderOptions> {
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<HashSet<_>>();
        vec![
            RenderOptions::default(),
            RenderOptions {
                sys_attrs: true,
                ..Default::default()
            },
            RenderOptions {
                attrs: Some(set(&["https://ex.org/temp", &(V.to_string() + "reading")])),
                ..Default::default()
            },
            RenderOptions {
                omit: set(&["id", &(V.to_string() + "name")]),
                ..Default::default()
            },
            RenderOptions {
                picked_members: Some(set(&["type", "scope"])),
                attrs: Some(set(&[&(V.to_string() + "location")])),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn renders_what_render_entity_renders() {
        let ctx = ctx();
        let now_text = time::now();
        let now = time::parse(&now_text).expect("now parses");
        for entity in entities() {
            let doc = serde_json::to_string(&entity).expect("serializable");
            let mut decoded = entity.clone();
            decoded.drop_expired_attributes(&now_text);
            for opts in options() {
                assert!(renders(&opts));
                let expected =
                    serde_json::to_string(&Value::Object(render_entity(&decoded, &ctx, &opts)))
                        .expect("serializable");
                let mut out = Vec::new();
                render_document(&doc, &ctx, &opts, &now, None, &mut out).expect("renders");
                assert_eq!(String::from_utf8(out).expect("utf-8"), expected, "{opts:?}");
            }
        }
    }

    #[test]
    fn appends_the_extra_member_last() {
        let entity = &entities()[2];
        let doc = serde_json::to_string(entity).expect("serializable");
        let now = time::parse(&time::now()).expect("now parses");
        let mut out = Vec::new();
        let member = r#""@context":"https://ex.org/context.jsonld""#;
        render_document(
            &doc,
            &ctx(),
            &RenderOptions::default(),
            &now,
            Some(member),
            &mut out,
        )
        .expect("renders");
        let value: Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(
            value,
            json!({"id": "urn:ngsi-ld:Thing:3", "type": "Thing", "scope": ["/a", "/b"],
                   "@context": "https://ex.org/context.jsonld"})
        );
    }

    #[test]
    fn other_representations_are_not_handled() {
        for opts in [
            RenderOptions {
                format: Format::KeyValues,
                ..Default::default()
            },
            RenderOptions {
                lang: Some("fr".into()),
                ..Default::default()
            },
            RenderOptions {
                dataset_ids: Some(vec!["@none".into()]),
                ..Default::default()
            },
        ] {
            assert!(!renders(&opts));
        }
    }

    #[test]
    fn a_damaged_document_is_an_error_not_a_panic() {
        let now = time::parse(&time::now()).expect("now parses");
        let mut out = Vec::new();
        assert!(render_document(
            "{\"id\":",
            &ctx(),
            &RenderOptions::default(),
            &now,
            None,
            &mut out
        )
        .is_err());
    }
}
