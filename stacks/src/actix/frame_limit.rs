//! The bytes of a client's frames on their way to actix-ws, one frame at a
//! time, with a limit on each frame's size checked at its header.
//!
//! actix-ws has a limit (`MessageStream::max_frame_size`), but actix-http
//! checks it once the whole frame has arrived: a client that announces a
//! frame of a gigabyte makes the server buffer a gigabyte before it is
//! refused. tungstenite refuses at the header; so does this stream.
//!
//! And actix-ws decodes at once all it has read, and reports a bad frame
//! before the good messages that came ahead of it in the same read: those are
//! lost. Passed one frame at a time, they are read first.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, dev};
use futures::Stream;

/// `body`, one frame at a time, in frames of at most `max` bytes, as actix-ws
/// takes it.
pub async fn limit_frames(
    request: &HttpRequest,
    body: web::Payload,
    max: usize,
) -> actix_web::Result<web::Payload> {
    type Boxed = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;
    let limited: Boxed = Box::pin(FrameLimit::new(body, max));
    // `web::Payload` has no constructor but its extractor.
    web::Payload::from_request(request, &mut dev::Payload::from(limited)).await
}

// ANCHOR: frame_limit
/// The bytes of `inner`, passed on up to the end of one frame at a time, until
/// a frame's header announces more than `max` bytes: then
/// `PayloadError::Overflow`. It copies nothing.
pub struct FrameLimit<S> {
    inner: S,
    frames: Frames,
    /// Bytes read and not yet passed on.
    rest: Bytes,
    /// A frame has just ended: let actix-ws decode it before it reads on.
    ended: bool,
}

impl<S> FrameLimit<S> {
    fn new(inner: S, max: usize) -> Self {
        let max = u64::try_from(max).unwrap_or(u64::MAX);
        Self {
            inner,
            frames: Frames::new(max),
            rest: Bytes::new(),
            ended: false,
        }
    }
}

impl<S> Stream for FrameLimit<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if std::mem::take(&mut this.ended) {
            // actix-ws reads until its reader is pending, then decodes.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if this.rest.is_empty() {
            match std::task::ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(chunk)) => this.rest = chunk,
                other => return Poll::Ready(other),
            }
        }
        let Some((length, ended)) = this.frames.walk(&this.rest) else {
            return Poll::Ready(Some(Err(PayloadError::Overflow)));
        };
        this.ended = ended;
        Poll::Ready(Some(Ok(this.rest.split_to(length))))
    }
}
// ANCHOR_END: frame_limit

/// Where a stream of frames is: in a header, or in a payload.
struct Frames {
    max: u64,
    /// The header being read, and how much of it has arrived.
    head: [u8; 14],
    read: usize,
    /// What is left of the payload of the current frame.
    left: u64,
}

impl Frames {
    fn new(max: u64) -> Self {
        let (head, read, left) = ([0; 14], 0, 0);
        Self {
            max,
            head,
            read,
            left,
        }
    }

    /// Walks `bytes` up to the end of the first frame that ends in them (and
    /// says so), or to their end. `None` at a header over the limit.
    fn walk(&mut self, bytes: &[u8]) -> Option<(usize, bool)> {
        let mut at = 0;
        while at < bytes.len() {
            if self.left > 0 {
                let left = usize::try_from(self.left).unwrap_or(usize::MAX);
                let skip = left.min(bytes.len() - at);
                (at, self.left) = (at + skip, self.left - skip as u64);
                if self.left == 0 {
                    return Some((at, true));
                }
                continue;
            }
            self.head[self.read] = bytes[at];
            (at, self.read) = (at + 1, self.read + 1);
            let Some(length) = self.length() else {
                continue;
            };
            if length > self.max {
                return None;
            }
            (self.read, self.left) = (0, length);
            if length == 0 {
                return Some((at, true));
            }
        }
        Some((at, false))
    }

    /// The payload length, once the header has arrived whole.
    fn length(&self) -> Option<u64> {
        let head = &self.head[..self.read];
        let second = *head.get(1)?;
        let extended = match second & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        if head.len() < 2 + extended + mask {
            return None;
        }
        Some(match extended {
            0 => u64::from(second & 0x7F),
            // Big-endian, in 2 or 8 bytes.
            _ => head[2..2 + extended]
                .iter()
                .fold(0, |n, &byte| n << 8 | u64::from(byte)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Frames;

    /// A masked client frame with a payload of `length` bytes.
    fn frame(length: u64) -> Vec<u8> {
        let mut frame = vec![0x82];
        match length {
            0..=125 => frame.push(0x80 | length as u8),
            126..=0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend((length as u16).to_be_bytes());
            }
            _ => {
                frame.push(0x80 | 127);
                frame.extend(length.to_be_bytes());
            }
        }
        frame.extend([1, 2, 3, 4]);
        frame.resize(frame.len() + length.min(1 << 20) as usize, 9);
        frame
    }

    /// Walks `pieces` as they would arrive: the lengths passed on, up to
    /// `None` at a frame too large.
    fn walk(pieces: &[&[u8]]) -> Vec<Option<usize>> {
        let mut frames = Frames::new(1000);
        let mut passed = Vec::new();
        for mut piece in pieces.iter().copied() {
            while !piece.is_empty() {
                let Some((length, _)) = frames.walk(piece) else {
                    passed.push(None);
                    return passed;
                };
                passed.push(Some(length));
                piece = &piece[length..];
            }
        }
        passed
    }

    #[test]
    fn passes_one_frame_at_a_time_whole_or_in_pieces() {
        let frames: Vec<_> = [0, 5, 125, 126, 1000].map(frame).into();
        let lengths: Vec<_> = frames.iter().map(|f| Some(f.len())).collect();
        assert_eq!(walk(&[&frames.concat()]), lengths);
        let bytes = frames.concat();
        let pieces: Vec<_> = bytes.chunks(3).collect();
        let passed = walk(&pieces).into_iter().flatten().sum::<usize>();
        assert_eq!(passed, bytes.len());
    }

    #[test]
    fn fails_at_the_header_of_a_frame_over_the_limit() {
        let bytes = [frame(10), frame(1001)].concat();
        assert_eq!(walk(&[&bytes]), [Some(16), None]);
        let huge = frame(1 << 40);
        assert_eq!(walk(&[&huge[..5], &huge[5..14]]), [Some(5), None]);
    }
}
