//! A line decoder for log pumps: never fails, never grows without bound.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

/// Splits bytes into lines; invalid UTF-8 is replaced, and a line longer than
/// `max` bytes is cut there and marked, the rest of it becoming the next line.
#[derive(Debug)]
pub struct LossyLines {
    max: usize,
}

impl LossyLines {
    /// Lines of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { max }
    }

    fn take(&self, src: &mut BytesMut, len: usize, skip: usize, cut: bool) -> String {
        let mut line = String::from_utf8_lossy(&src[..len]).into_owned();
        src.advance(len + skip);
        if cut {
            line.push_str(" [line cut]");
        }
        line
    }
}

impl Decoder for LossyLines {
    type Item = String;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> std::io::Result<Option<String>> {
        let window = src.len().min(self.max + 1);
        if let Some(i) = src[..window].iter().position(|b| *b == b'\n') {
            return Ok(Some(self.take(src, i, 1, false)));
        }
        if src.len() > self.max {
            return Ok(Some(self.take(src, self.max, 0, true)));
        }
        Ok(None)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> std::io::Result<Option<String>> {
        match self.decode(src)? {
            Some(line) => Ok(Some(line)),
            None if src.is_empty() => Ok(None),
            None => {
                let len = src.len();
                Ok(Some(self.take(src, len, 0, false)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cuts_and_replaces() {
        let mut d = LossyLines::new(4);
        let mut buf = BytesMut::from(&b"ab\ncdefgh\n\xffz\ntail"[..]);
        let mut got = vec![];
        while let Some(l) = d.decode(&mut buf).unwrap() {
            got.push(l);
        }
        got.extend(d.decode_eof(&mut buf).unwrap());
        assert_eq!(got, ["ab", "cdef [line cut]", "gh", "\u{fffd}z", "tail"]);
    }
}
