//! Identifiers and names, validated when parsed.

use crate::error::{NgsiError, Result};

/// Characters NGSI-LD forbids in names and identifiers (they break the query language or
/// HTTP paths), besides whitespace and control characters.
const FORBIDDEN: &[char] = &['<', '>', '"', '\'', '=', ';', '(', ')'];

/// Characters that render as nothing or reorder text: an id containing one looks like
/// another id (spoofing), so they are refused (bidi controls, zero-width and format
/// characters, variation selectors, fillers, noncharacters).
pub fn is_invisible(c: char) -> bool {
    let u = c as u32;
    matches!(u,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x2800 | 0x3164
        | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0xFDD0..=0xFDEF
        | 0xE0000..=0xE0FFF)
        || (u & 0xFFFE) == 0xFFFE
}

/// An entity id (or any NGSI-LD URI): must be an absolute URI.
pub fn validate_uri(id: &str, what: &str) -> Result<()> {
    if let Some(c) = id.chars().find(|c| is_invisible(*c)) {
        return Err(NgsiError::bad_data(format!(
            "{what} contains the invisible character U+{:04X}",
            c as u32
        )));
    }
    if id.is_empty()
        || id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || FORBIDDEN.contains(&c))
    {
        return Err(NgsiError::bad_data(format!(
            "{what} '{id}' is not a valid URI"
        )));
    }
    match url::Url::parse(id) {
        Ok(_) => Ok(()),
        Err(e) => Err(NgsiError::bad_data(format!(
            "{what} '{id}' is not a valid URI: {e}"
        ))),
    }
}

/// An attribute name or entity type as the client wrote it (a term or an IRI).
pub fn validate_name(name: &str, what: &str) -> Result<()> {
    if name.is_empty() {
        return Err(NgsiError::bad_data(format!("{what} must not be empty")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || FORBIDDEN.contains(c) || is_invisible(*c))
    {
        return Err(NgsiError::bad_data(format!(
            "{what} '{name}' contains the forbidden character {c:?}"
        )));
    }
    // Dot segments would be resolved away in a URL path: never a name.
    if name == "." || name == ".." {
        return Err(NgsiError::bad_data(format!(
            "{what} '{name}' is a dot segment"
        )));
    }
    // '@' starts JSON-LD keywords, never a term.
    if name.starts_with('@') {
        return Err(NgsiError::bad_data(format!(
            "{what} '{name}' cannot start with '@'"
        )));
    }
    Ok(())
}

/// An entity type: a name that is not a bare number-like term.
pub fn validate_type_name(name: &str) -> Result<()> {
    validate_name(name, "entity type")?;
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(NgsiError::bad_data(format!(
            "entity type '{name}' cannot start with a digit"
        )));
    }
    Ok(())
}

/// The `NGSILD-Tenant` a request works in; the empty string is the default tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant(String);

impl Tenant {
    pub fn parse(raw: Option<&str>) -> Result<Self> {
        let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Self::default_tenant());
        };
        let valid = raw.len() <= 128
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'));
        if !valid {
            return Err(NgsiError::bad_data(format!(
                "tenant '{raw}' is not valid: use up to 128 letters, digits, '-', '_', '.', ':' or '/'"
            )));
        }
        Ok(Self(raw.to_string()))
    }
    /// A tenant name read back from storage (validated when it was first written).
    pub fn from_stored(name: &str) -> Self {
        Self(name.to_string())
    }
    pub fn default_tenant() -> Self {
        Self(String::new())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_default(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_names() {
        assert!(validate_uri("urn:ngsi-ld:Vehicle:A1", "id").is_ok());
        assert!(validate_uri("http://example.org/a", "id").is_ok());
        assert!(validate_uri("not a uri", "id").is_err());
        assert!(validate_uri("plain", "id").is_err());
        assert!(validate_name("speed", "name").is_ok());
        assert!(validate_name("sp(eed", "name").is_err());
        assert!(validate_name("", "name").is_err());
    }

    #[test]
    fn tenants() {
        assert!(Tenant::parse(None)
            .unwrap_or_else(|_| Tenant::default_tenant())
            .is_default());
        assert!(Tenant::parse(Some("city-1")).is_ok());
        assert!(Tenant::parse(Some("bad tenant")).is_err());
    }
}
