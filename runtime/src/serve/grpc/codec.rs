//! The gRPC codec: prost's, except that a request prost cannot decode (a
//! string field that is not UTF-8, a wire type that does not match the
//! schema) is answered `INVALID_ARGUMENT`, naming the field, instead of
//! tonic's `INTERNAL`. `INTERNAL` stays the code of kiln's own faults, so an
//! operator alerting on it is not paged by callers' bad bytes. Wired in by
//! `runtime/build.rs` (`codec_path`).

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// [`ProstCodec`] with [`Decoder`].
pub(crate) struct Codec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(ProstCodec::default())
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> ProstEncoder<T> {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Decoder<U> {
        Decoder(self.0.decoder())
    }
}

/// [`ProstDecoder`], whose only errors are decode errors, as
/// `INVALID_ARGUMENT`.
pub(crate) struct Decoder<U>(ProstDecoder<U>);

impl<U: Message + Default> tonic::codec::Decoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0
            .decode(buf)
            .map_err(|e| Status::invalid_argument(e.message()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
