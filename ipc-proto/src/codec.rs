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

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, LinesCodec, LinesCodecError};

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
        self.scratch.clear();
        let len = frame::encode_body_into(&msg, &mut self.scratch).map_err(encode_error)?;
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
#[derive(Debug)]
pub struct JsonlCodec<In, Out> {
    inner: LinesCodec,
    max: usize,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> JsonlCodec<In, Out> {
    /// A codec that accepts lines of at most `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            inner: LinesCodec::new_with_max_length(max_line_bytes),
            max: max_line_bytes,
            _types: PhantomData,
        }
    }

    fn item(
        &self,
        r: Result<Option<String>, LinesCodecError>,
    ) -> io::Result<Option<Result<In, DecodeError>>>
    where
        In: DeserializeOwned,
    {
        match r {
            Ok(Some(line)) if line.trim().is_empty() => Ok(None),
            Ok(Some(line)) => Ok(Some(json::decode(&line))),
            Ok(None) => Ok(None),
            // LinesCodec discards the rest of the long line by itself.
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Err(DecodeError::TooLarge {
                len: self.max + 1,
                max: self.max,
            }))),
            Err(LinesCodecError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                Ok(Some(Err(DecodeError::NotUtf8)))
            }
            Err(LinesCodecError::Io(e)) => Err(e),
        }
    }
}

impl<In: DeserializeOwned, Out> Decoder for JsonlCodec<In, Out> {
    type Item = Result<In, DecodeError>;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        loop {
            let before = src.len();
            let r = self.inner.decode(src);
            let blank = matches!(&r, Ok(Some(l)) if l.trim().is_empty());
            let item = self.item(r)?;
            // A blank line is skipped; keep going while it consumed input.
            if item.is_some() || !blank || src.len() == before {
                return Ok(item);
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        let r = self.inner.decode_eof(src);
        self.item(r)
    }
}

impl<In, Out: Serialize> Encoder<Out> for JsonlCodec<In, Out> {
    type Error = io::Error;

    fn encode(&mut self, msg: Out, dst: &mut BytesMut) -> io::Result<()> {
        // Written straight into the outgoing buffer, and taken back out if
        // it is too large or fails halfway.
        let start = dst.len();
        if let Err(e) = json::encode_into(&msg, dst.writer()) {
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
