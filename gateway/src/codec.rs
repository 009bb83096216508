//! The protobuf codec of every Mutua service: prost's, except that a request message that does
//! not decode is INVALID_ARGUMENT with the `MESSAGE_UNDECODABLE` reason (prost's codec says
//! INTERNAL, which blames the server for the client's bytes). `build.rs` points the generated
//! clients and servers here.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder};

use crate::convert::{edge_status, EdgeReason};

#[derive(Debug, Clone)]
pub struct MutuaCodec<T, U> {
    _messages: PhantomData<(T, U)>,
}

impl<T, U> Default for MutuaCodec<T, U> {
    fn default() -> Self {
        MutuaCodec {
            _messages: PhantomData,
        }
    }
}

impl<T, U> Codec for MutuaCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = MutuaDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        MutuaDecoder {
            inner: ProstCodec::<T, U>::default().decoder(),
        }
    }
}

pub struct MutuaDecoder<U> {
    inner: ProstDecoder<U>,
}

impl<U: prost::Message + Default> Decoder for MutuaDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.inner.decode(buf).map_err(|status| {
            edge_status(
                EdgeReason::MessageUndecodable,
                format!(
                    "the message could not be decoded as protobuf: {}",
                    status.message()
                ),
            )
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}
