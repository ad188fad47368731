//! Reading the compact JSON our own encoder writes, without serde, for the views a hit decodes
//! (`ARCHITECTURE.md`, "Envelope"): serde's generic machinery costs more than the rest of a
//! hit once the token is short.
//!
//! A reader here answers only for documents in a strict subset of JSON: no whitespace, no
//! escapes or control characters in strings, valid UTF-8, integers without fraction or
//! exponent, nesting at most [`MAX_DEPTH`] deep. That is everything `serde_json::to_vec`
//! writes for our answers unless a string needs an escape. For anything else a reader says
//! `None` ("not mine") and the caller hands the document to serde, so wherever a reader
//! answers, its answer is serde's (the `cache_envelope` fuzz target checks this).

/// Deeper documents are left to serde, whose own limit (128) they then never reach.
const MAX_DEPTH: usize = 32;

/// A position in a document being read.
pub(crate) struct Cursor<'b> {
    rest: &'b [u8],
}

impl<'b> Cursor<'b> {
    pub(crate) fn new(bytes: &'b [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Whether the whole document was read.
    pub(crate) fn is_done(&self) -> bool {
        self.rest.is_empty()
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

    /// Consumes `literal` if it comes next; whether it did.
    pub(crate) fn eat_all(&mut self, literal: &[u8]) -> bool {
        match self.rest.strip_prefix(literal) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// The bytes of the string that comes next, without its quotes (valid UTF-8): `None`
    /// unless it is in the subset.
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

    /// Skips the value that comes next: `None` unless it is in the subset.
    pub(crate) fn skip_value(&mut self) -> Option<()> {
        self.skip(0)
    }

    /// Reads the object that comes next, handing each field's name to `field` with the
    /// cursor at its value, which `field` must read: `None` unless the object is in the
    /// subset, or when `field` says `None`.
    pub(crate) fn object(
        &mut self,
        field: impl FnMut(&'b [u8], &mut Self) -> Option<()>,
    ) -> Option<()> {
        self.object_at(1, field)
    }

    /// Reads the array that comes next, handing the cursor to `item` at each element, which
    /// `item` must read: `None` unless the array is in the subset, or when `item` says `None`.
    pub(crate) fn array(&mut self, item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.array_at(1, item)
    }

    fn skip(&mut self, depth: usize) -> Option<()> {
        match *self.rest.first()? {
            b'"' => self.string().map(drop),
            b'{' => self.object_at(depth + 1, |_, value| value.skip(depth + 1)),
            b'[' => self.array_at(depth + 1, |item| item.skip(depth + 1)),
            b'-' | b'0'..=b'9' => self.skip_integer(),
            b't' => self.eat_all(b"true").then_some(()),
            b'f' => self.eat_all(b"false").then_some(()),
            b'n' => self.eat_all(b"null").then_some(()),
            _ => None,
        }
    }

    fn object_at(
        &mut self,
        depth: usize,
        mut field: impl FnMut(&'b [u8], &mut Self) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH || !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let name = self.string()?;
            self.eat(b':').then_some(())?;
            field(name, self)?;
            if !self.eat(b',') {
                return self.eat(b'}').then_some(());
            }
        }
    }

    fn array_at(
        &mut self,
        depth: usize,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH || !self.eat(b'[') {
            return None;
        }
        if self.eat(b']') {
            return Some(());
        }
        loop {
            item(self)?;
            if !self.eat(b',') {
                return self.eat(b']').then_some(());
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)`; a fraction or an exponent is left to serde (the byte after the
    /// digits is then no separator the caller accepts).
    fn skip_integer(&mut self) -> Option<()> {
        self.eat(b'-');
        let digits = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || (digits > 1 && self.rest[0] == b'0') {
            return None;
        }
        self.rest = &self.rest[digits..];
        Some(())
    }
}

/// How many bytes `bytes` starts with that are printable ASCII but no quote or backslash:
/// the plain part of a string, where every string we write ends.
fn plain_len(bytes: &[u8]) -> usize {
    // A table, not four comparisons a byte: the strings of a hit are most of its bytes.
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

/// Whether the JSON list of strings `payload` holds `wanted`: `None` unless the list is in
/// the subset (then serde decides).
pub(crate) fn list_holds(payload: &[u8], wanted: &str) -> Option<bool> {
    let mut cursor = Cursor::new(payload);
    let mut found = false;
    // Read to the end even after a match: a list serde refuses is no answer.
    cursor.array(|item| {
        found |= item.string()? == wanted.as_bytes();
        Some(())
    })?;
    cursor.is_done().then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(doc: &str) -> bool {
        let mut cursor = Cursor::new(doc.as_bytes());
        cursor.skip_value().is_some() && cursor.is_done()
    }

    #[test]
    fn compact_documents_are_read() {
        for doc in [
            r#"{"id":"u1","n":-12,"ok":true,"no":false,"x":null,"l":[1,[],{}],"e":"é"}"#,
            "0",
            "[]",
            r#""""#,
        ] {
            assert!(skips(doc), "{doc}");
        }
    }

    #[test]
    fn everything_else_is_left_to_serde() {
        for doc in [
            r#"{"a": 1}"#,
            r#"{"a":"\n"}"#,
            r#"{"a":1.5}"#,
            "1e3",
            "01",
            "-",
            r#"{"a":1,}"#,
            "[1,]",
            "tru",
            "{\"a\":\"\u{1}\"}",
            &"[".repeat(40),
        ] {
            assert!(!skips(doc), "{doc}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(skips(&deep));
        let deeper = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(!skips(&deeper));
        assert_eq!(Cursor::new(b"\"\xff\"").string(), None, "not UTF-8");
        assert_eq!(
            Cursor::new("\"é\"".as_bytes()).string(),
            Some("é".as_bytes())
        );
    }

    #[test]
    fn the_plain_part_of_a_string_ends_at_the_first_special_byte() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789";
        for at in 0..text.len() {
            for special in [b'"', b'\\', 0x1f, 0x00, 0x80, 0xff] {
                let mut bytes = text.as_bytes().to_vec();
                bytes[at] = special;
                bytes[(at + 3).min(text.len() - 1)] = b'"';
                assert_eq!(plain_len(&bytes), at, "{special:#x} at {at}");
            }
        }
        assert_eq!(plain_len(text.as_bytes()), text.len());
        assert_eq!(plain_len(b" ~!#"), 4);
    }

    #[test]
    fn lists_answer_whether_they_hold_a_string() {
        assert_eq!(list_holds(br#"["a","b"]"#, "b"), Some(true));
        assert_eq!(list_holds(br#"["a","b"]"#, "c"), Some(false));
        assert_eq!(list_holds(b"[]", "a"), Some(false));
        assert_eq!(list_holds(br#"["a",1]"#, "a"), None, "serde refuses it");
        assert_eq!(list_holds(br#"["a\"b"]"#, "a"), None, "an escape");
        assert_eq!(list_holds(br#"["a"] "#, "a"), None, "whitespace");
        assert_eq!(list_holds(br#"{"a":1}"#, "a"), None);
    }
}
