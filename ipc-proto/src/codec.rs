//! tokio-util codecs for both transports.
//!
//! Decoders yield `Result<Message, DecodeError>` items: a frame or line that
//! does not decode (bad bytes, a line over the limit) is reported as one
//! `Err` item and the stream goes on with the next one. A frame whose length
//! prefix is over the limit is reported the same way and then ends the
//! stream (an I/O error item): skipping up to 4 GiB a peer announced would
//! leave the channel looking alive while it reads nothing. I/O errors end a
//! stream.

use std::io;
use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::{DecodeError, EncodeError, frame, json};

const LEN_BYTES: usize = 4;

fn encode_error(e: EncodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// Frames: a 4-byte big-endian length, then a bincode body of at most `max` bytes.
///
/// `In` is what this side receives, `Out` what it sends.
#[derive(Debug)]
pub struct FrameCodec<In, Out> {
    inner: LengthDelimitedCodec,
    max: usize,
    /// An oversized frame was announced: the stream is over.
    poisoned: bool,
    /// The inner codec has taken a frame's length and waits for its body.
    mid_frame: bool,
    /// Reused encode buffer, so steady-state encoding does not allocate.
    scratch: Vec<u8>,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec that accepts and sends bodies of at most `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        let inner = LengthDelimitedCodec::builder()
            .length_field_length(LEN_BYTES)
            .big_endian()
            .max_frame_length(max_frame_bytes)
            .new_codec();
        Self {
            inner,
            max: max_frame_bytes,
            poisoned: false,
            mid_frame: false,
            scratch: Vec::new(),
            _types: PhantomData,
        }
    }
}

impl<In: DeserializeOwned, Out> Decoder for FrameCodec<In, Out> {
    type Item = Result<In, DecodeError>;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        if self.poisoned {
            src.clear();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "channel closed after a frame over the size limit",
            ));
        }
        // Report an oversized frame as one item (so the peer can be told
        // why), then end the stream on the next call. Only peek at a length
        // while the inner codec waits for one: once it has taken a head,
        // `src` starts with body bytes.
        if !self.mid_frame && src.len() >= LEN_BYTES {
            let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
            if len > self.max {
                src.clear();
                self.poisoned = true;
                return Ok(Some(Err(DecodeError::TooLarge { len, max: self.max })));
            }
        }
        let had_head = src.len() >= LEN_BYTES;
        match self.inner.decode(src)? {
            Some(body) => {
                self.mid_frame = false;
                Ok(Some(frame::decode_body(&body)))
            }
            None => {
                self.mid_frame |= had_head;
                Ok(None)
            }
        }
    }
}

impl<In, Out: Serialize> Encoder<Out> for FrameCodec<In, Out> {
    type Error = io::Error;

    fn encode(&mut self, msg: Out, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_ref(&msg, dst)
    }
}

impl<In, Out: Serialize> FrameCodec<In, Out> {
    /// [`Encoder::encode`] of a message the caller keeps.
    pub fn encode_ref(&mut self, msg: &Out, dst: &mut BytesMut) -> io::Result<()> {
        self.scratch.clear();
        let len = frame::encode_body_into(msg, &mut self.scratch).map_err(encode_error)?;
        if len > self.max {
            return Err(encode_error(EncodeError::TooLarge { len, max: self.max }));
        }
        dst.reserve(LEN_BYTES + len);
        dst.put_u32(len as u32);
        dst.extend_from_slice(&self.scratch);
        Ok(())
    }
}

/// jsonl: one JSON object per `\n`-terminated UTF-8 line of at most `max` bytes.
///
/// Lines are decoded where they lie in the read buffer (no `String` per
/// line). A line over the limit is one `TooLarge` item, and the rest of it is
/// skipped; blank lines are skipped.
#[derive(Debug)]
pub struct JsonlCodec<In, Out> {
    max: usize,
    /// Bytes at the start of the buffer already searched for a newline.
    searched: usize,
    /// Skipping the rest of a line that was over the limit.
    discarding: bool,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> JsonlCodec<In, Out> {
    /// A codec that accepts lines of at most `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            max: max_line_bytes,
            searched: 0,
            discarding: false,
            _types: PhantomData,
        }
    }

    /// One line's item (without its `\n`); `None` for a blank line.
    fn item(line: &[u8]) -> Option<Result<In, DecodeError>>
    where
        In: DeserializeOwned,
    {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match std::str::from_utf8(line) {
            Ok(text) if text.trim().is_empty() => None,
            Ok(text) => Some(json::decode(text)),
            Err(_) => Some(Err(DecodeError::NotUtf8)),
        }
    }
}

impl<In: DeserializeOwned, Out> Decoder for JsonlCodec<In, Out> {
    type Item = Result<In, DecodeError>;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        loop {
            // A line of `max` bytes has its newline at index `max` at the latest.
            let window = src.len().min(self.max.saturating_add(1));
            let newline = src[self.searched.min(window)..window]
                .iter()
                .position(|&b| b == b'\n')
                .map(|at| at + self.searched.min(window));
            match (self.discarding, newline) {
                (true, Some(at)) => {
                    src.advance(at + 1);
                    self.searched = 0;
                    self.discarding = false;
                }
                (true, None) => {
                    src.advance(window);
                    self.searched = 0;
                    if src.is_empty() {
                        return Ok(None);
                    }
                }
                (false, Some(at)) => {
                    self.searched = 0;
                    let line = src.split_to(at + 1);
                    if let Some(item) = Self::item(&line[..at]) {
                        return Ok(Some(item));
                    }
                }
                (false, None) if src.len() > self.max => {
                    self.discarding = true;
                    self.searched = 0;
                    return Ok(Some(Err(DecodeError::TooLarge {
                        len: self.max + 1,
                        max: self.max,
                    })));
                }
                (false, None) => {
                    self.searched = window;
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        // The last line, without its newline.
        self.searched = 0;
        if self.discarding || src.is_empty() {
            src.clear();
            return Ok(None);
        }
        let line = src.split();
        Ok(Self::item(&line))
    }
}

impl<In, Out: Serialize> Encoder<Out> for JsonlCodec<In, Out> {
    type Error = io::Error;

    fn encode(&mut self, msg: Out, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_ref(&msg, dst)
    }
}

impl<In, Out: Serialize> JsonlCodec<In, Out> {
    /// [`Encoder::encode`] of a message the caller keeps.
    pub fn encode_ref(&mut self, msg: &Out, dst: &mut BytesMut) -> io::Result<()> {
        // Written straight into the outgoing buffer, and taken back out if
        // it is too large or fails halfway.
        let start = dst.len();
        if let Err(e) = json::encode_into(msg, dst.writer()) {
            dst.truncate(start);
            return Err(encode_error(e));
        }
        let len = dst.len() - start;
        if len > self.max {
            dst.truncate(start);
            return Err(encode_error(EncodeError::TooLarge { len, max: self.max }));
        }
        dst.put_u8(b'\n');
        Ok(())
    }
}
