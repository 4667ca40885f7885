//! A gRPC codec for span messages encoded before the call (`wire.rs`): the encoder
//! copies the bytes into tonic's buffer instead of walking a prost message (which
//! recomputes the length of every nested message at each level). Responses decode
//! with prost as before.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

/// What one gRPC message of the span service carries.
#[derive(Debug, Clone)]
pub enum Body {
    /// A `PSpanMessageBatch` of these encoded `PSpanMessage`s (`SendSpanBatch`).
    Batch(Vec<Bytes>),
    /// One encoded `PSpanMessage` (an item of the `SendSpan` stream).
    Message(Bytes),
}

/// Encodes [`Body`]s, decodes `U` with prost.
pub struct Passthrough<U>(PhantomData<U>);

impl<U> Default for Passthrough<U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// The encoder of [`Passthrough`].
pub struct BodyEncoder;

impl Encoder for BodyEncoder {
    type Item = Body;
    type Error = Status;

    fn encode(&mut self, item: Body, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {
            Body::Message(b) => buf.put_slice(&b),
            Body::Batch(messages) => {
                // `repeated PSpanMessage span = 1`: key, length, bytes, per message.
                let total: usize = messages.iter().map(|m| 1 + 10 + m.len()).sum();
                buf.reserve(total);
                for m in &messages {
                    let mut head = [0u8; 11];
                    head[0] = 0x0a;
                    let n = 1 + super::wire::varint_into(m.len() as u64, &mut head[1..]);
                    buf.put_slice(&head[..n]);
                    buf.put_slice(m);
                }
            }
        }
        Ok(())
    }
}

impl<U: prost::Message + Default + Send + 'static> Codec for Passthrough<U> {
    type Encode = Body;
    type Decode = U;
    type Encoder = BodyEncoder;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> BodyEncoder {
        BodyEncoder
    }

    fn decoder(&mut self) -> ProstDecoder<U> {
        ProstDecoder::default()
    }
}
