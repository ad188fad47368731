//! Reading the compact JSON our own encoder writes, without serde, for the views a hit decodes
//! (`ARCHITECTURE.md`, "Envelope"): serde's generic machinery costs more than the rest of a
//! hit once the token is short.
//!
//! The readers here answer only for the strings and lists of strings `serde_json::to_vec`
//! writes: no whitespace, and strings without escapes or control characters, in valid UTF-8.
//! For anything else they say `None` ("not mine") and the caller hands the document to serde,
//! so wherever they answer, their answer is serde's (the `cache_envelope` fuzz target checks
//! this).

/// A position in a document being read.
pub(crate) struct Cursor<'b> {
    rest: &'b [u8],
}

impl<'b> Cursor<'b> {
    pub(crate) fn new(bytes: &'b [u8]) -> Self {
        Self { rest: bytes }
    }

    /// What is left to read.
    pub(crate) fn rest(&self) -> &'b [u8] {
        self.rest
    }

    /// Consumes `byte` if it comes next; whether it did.
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        match self.rest.split_first() {
            Some((&first, rest)) if first == byte => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    /// The bytes of the string that comes next, without its quotes (valid UTF-8): `None`
    /// unless it is one our encoder writes without an escape.
    pub(crate) fn string(&mut self) -> Option<&'b [u8]> {
        let body = self.rest.strip_prefix(b"\"")?;
        let mut end = plain_len(body);
        if *body.get(end)? >= 0x80 {
            // Beyond ASCII: scan to the end, then one UTF-8 check of the whole string.
            end += body[end..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            std::str::from_utf8(&body[..end]).ok()?;
        }
        if body[end] != b'"' {
            return None;
        }
        self.rest = &body[end + 1..];
        Some(&body[..end])
    }
}

/// How many bytes `bytes` starts with that are printable ASCII but no quote or backslash:
/// the plain part of a string, where every string we write ends.
fn plain_len(bytes: &[u8]) -> usize {
    // A table, not four comparisons a byte: the strings are most of what a hit reads.
    const PLAIN: [bool; 256] = {
        let mut plain = [false; 256];
        let mut byte = 0x20;
        while byte < 0x80 {
            plain[byte] = byte != b'"' as usize && byte != b'\\' as usize;
            byte += 1;
        }
        plain
    };
    bytes
        .iter()
        .position(|&b| !PLAIN[usize::from(b)])
        .unwrap_or(bytes.len())
}

/// Whether the JSON list of strings `payload` holds `wanted`: `None` unless the list is
/// spelled as our encoder writes it (then serde decides).
pub(crate) fn list_holds(payload: &[u8], wanted: &str) -> Option<bool> {
    let mut cursor = Cursor::new(payload.strip_prefix(b"[")?);
    if cursor.rest() == b"]" {
        return Some(false);
    }
    let mut found = false;
    loop {
        // Read to the end even after a match: a list serde refuses is no answer.
        found |= cursor.string()? == wanted.as_bytes();
        if !cursor.eat(b',') {
            return (cursor.rest() == b"]").then_some(found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_read_up_to_their_closing_quote() {
        let read = |doc: &'static str| Cursor::new(doc.as_bytes()).string();
        assert_eq!(read(r#""abc",1"#), Some(&b"abc"[..]));
        assert_eq!(read(r#""""#), Some(&b""[..]));
        assert_eq!(read("\"é\u{7f}\""), Some("é\u{7f}".as_bytes()));
        assert_eq!(read(r#""a\"b""#), None, "an escape");
        assert_eq!(read("\"a\u{1}\""), None, "a control character");
        assert_eq!(read(r#""abc"#), None, "unterminated");
        assert_eq!(read("abc"), None);
        assert_eq!(Cursor::new(b"\"\xff\"").string(), None, "not UTF-8");
    }

    #[test]
    fn the_plain_part_of_a_string_ends_at_the_first_special_byte() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789";
        for at in 0..text.len() {
            for special in [b'"', b'\\', 0x1f, 0x00, 0x80, 0xff] {
                let mut bytes = text.as_bytes().to_vec();
                bytes[at] = special;
                assert_eq!(plain_len(&bytes), at, "{special:#x} at {at}");
            }
        }
        assert_eq!(plain_len(text.as_bytes()), text.len());
        assert_eq!(plain_len(b" ~!#\x7f"), 5);
    }

    #[test]
    fn lists_answer_whether_they_hold_a_string() {
        assert_eq!(list_holds(br#"["a","b"]"#, "b"), Some(true));
        assert_eq!(list_holds(br#"["a","b"]"#, "c"), Some(false));
        assert_eq!(list_holds(b"[]", "a"), Some(false));
        assert_eq!(list_holds(br#"["a",1]"#, "a"), None, "serde refuses it");
        assert_eq!(list_holds(br#"["a",]"#, "a"), None, "serde refuses it");
        assert_eq!(list_holds(br#"["a"]]"#, "a"), None, "serde refuses it");
        assert_eq!(list_holds(br#"["a\"b"]"#, "a"), None, "an escape");
        assert_eq!(list_holds(br#"["a"] "#, "a"), None, "whitespace");
        assert_eq!(list_holds(br#"{"a":1}"#, "a"), None);
        assert_eq!(list_holds(b"[", "a"), None);
    }
}
