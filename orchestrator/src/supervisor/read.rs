//! The reading half of a child's channel: bytes from the child, decoded
//! messages out, with a read buffer that grows only for a child that sends a lot.
//!
//! tokio-util's `FramedRead` keeps the size its buffer started with once the
//! decoder splits messages off it: with the small first buffer every child
//! gets (most are idle agent instances), a busy connector's emits came in
//! `read(2)`s of at most 512 bytes, two or three emits each. Here a read
//! that fills all the room it was given doubles the room of the next one
//! (up to [`MAX_READ`]), so a child that keeps its channel full is read in
//! large batches, and an idle one keeps its small buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use futures::Stream;
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;
use tokio_util::io::poll_read_buf;

/// The most one `read(2)` asks for.
pub const MAX_READ: usize = 64 * 1024;

/// Decoded messages from one child.
#[derive(Debug)]
pub struct Reader<R, D> {
    read: R,
    codec: D,
    buf: BytesMut,
    /// Room asked for by the next read.
    want: usize,
    eof: bool,
    done: bool,
}

impl<R, D> Reader<R, D> {
    /// Reads `read` through `codec`, starting with a buffer of `first` bytes.
    pub fn new(read: R, codec: D, first: usize) -> Self {
        Self {
            read,
            codec,
            buf: BytesMut::with_capacity(first),
            want: first.max(1),
            eof: false,
            done: false,
        }
    }
}

impl<R: AsyncRead + Unpin, D: Decoder + Unpin> Stream for Reader<R, D>
where
    D::Error: From<io::Error>,
{
    type Item = Result<D::Item, D::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let decoded = if this.eof {
                this.codec.decode_eof(&mut this.buf)
            } else {
                this.codec.decode(&mut this.buf)
            };
            match decoded {
                Ok(Some(item)) => return Poll::Ready(Some(Ok(item))),
                Ok(None) if this.eof => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Ok(None) => {}
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            // Everything buffered is decoded: read more.
            if this.buf.capacity() - this.buf.len() < this.want {
                this.buf.reserve(this.want);
            }
            let room = this.buf.capacity() - this.buf.len();
            match ready!(poll_read_buf(Pin::new(&mut this.read), cx, &mut this.buf)) {
                Ok(0) => this.eof = true,
                Ok(n) => {
                    if n >= room && this.want < MAX_READ {
                        // It had more to say than there was room for.
                        this.want = (this.want * 2).min(MAX_READ);
                    }
                }
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::LinesCodec;

    use super::*;

    #[tokio::test]
    async fn reads_every_line_and_grows_only_when_full() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let line = "x".repeat(99);
        let mut all = String::new();
        for _ in 0..2000 {
            all.push_str(&line);
            all.push('\n');
        }
        tx.write_all(all.as_bytes()).await.expect("write");
        tx.write_all(b"last without newline").await.expect("write");
        drop(tx);
        let mut r = Reader::new(rx, LinesCodec::new(), 64);
        let mut n = 0;
        let mut last = String::new();
        while let Some(item) = r.next().await {
            last = item.expect("a line");
            n += 1;
        }
        assert_eq!(n, 2001);
        assert_eq!(last, "last without newline");
        assert_eq!(r.want, MAX_READ, "a full channel is read in large batches");
    }

    #[tokio::test]
    async fn a_quiet_child_keeps_its_small_buffer() {
        let (mut tx, rx) = tokio::io::duplex(1 << 16);
        let mut r = Reader::new(rx, LinesCodec::new(), 512);
        for i in 0..100 {
            tx.write_all(format!("line {i}\n").as_bytes())
                .await
                .expect("write");
            assert_eq!(
                r.next().await.expect("item").expect("line"),
                format!("line {i}")
            );
        }
        assert_eq!(r.want, 512);
        assert!(r.buf.capacity() <= 1024, "capacity {}", r.buf.capacity());
    }
}
