//! Percent-escapes (`%3A`) in text that came from a URL.

/// `text` with every percent-escape decoded (a q written URL-encoded is read decoded).
pub fn decode(text: &str) -> String {
    decode_where(text, |_| true)
}

/// `text` with the percent-escapes of the bytes `decoded` accepts written plainly and
/// every other one kept as written. Text that would not be UTF-8 once decoded is
/// returned unchanged.
pub fn decode_where(text: &str, decoded: impl Fn(u8) -> bool) -> String {
    if !text.contains('%') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|b| decoded(*b));
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}
