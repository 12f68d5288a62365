//! The bytes of the node's tarpc service: bincode with tarpc's default options (varint
//! integers, no trailing bytes), in length-delimited frames of at most
//! [`crate::transport::MAX_FRAME`] bytes. Clients use tarpc's own `Bincode` codec; the server
//! uses [`ServerCodec`], which writes the same bytes and reads them with one check more.
//!
//! Decoding never allocates without bound: a frame holds at most `MAX_FRAME` bytes, bincode
//! checks a byte string's length against the bytes left, and serde preallocates at most 1 MiB
//! for a sequence whatever length it announces (`cluster/tests/all/decode_props.rs` measures it).
//!
//! The check: tarpc decodes a request's deadline, sent as a duration, into
//! `Instant::now() + duration`, which panics when the sum overflows. One frame with a deadline
//! of `u64::MAX` seconds would then kill the task serving that connection, with a panic in the
//! node's log. [`decode_request`] refuses a deadline beyond [`MAX_DEADLINE`] first, as an I/O
//! error of kind `InvalidData`, the way tarpc reports any undecodable frame: the connection is
//! closed and the node goes on.

use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tarpc::tokio_serde::{Deserializer, Serializer};
use tarpc::tokio_util::bytes::{Bytes, BytesMut};
use tarpc::{ClientMessage, Response};

/// The longest deadline a request may carry (ours carry 60 s; tarpc's default is 10 s).
pub const MAX_DEADLINE: Duration = Duration::from_secs(30 * 24 * 3600);

fn options() -> impl Options {
    // What `tokio_serde::formats::Bincode::default()` uses.
    bincode::DefaultOptions::new()
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Encodes `item` as the service's frames carry it.
pub fn encode<T: Serialize>(item: &T) -> io::Result<Vec<u8>> {
    options().serialize(item).map_err(invalid)
}

/// Decodes one frame as `T`, as tarpc's client codec does (responses).
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> io::Result<T> {
    options().deserialize(frame).map_err(invalid)
}

/// The start of a [`ClientMessage`] in bincode: its variant, then for a request the deadline
/// (the first field of its context). Read with trailing bytes allowed.
#[derive(serde::Deserialize)]
enum Head {
    Request(Duration),
    Cancel,
}

/// Decodes one frame as a request to the server, refusing a deadline tarpc cannot represent.
pub fn decode_request<Req: DeserializeOwned>(frame: &[u8]) -> io::Result<ClientMessage<Req>> {
    if let Head::Request(deadline) = options()
        .allow_trailing_bytes()
        .deserialize::<Head>(frame)
        .map_err(invalid)?
        && deadline > MAX_DEADLINE
    {
        return Err(invalid(format!(
            "request deadline {} s away is beyond the {} s a node accepts",
            deadline.as_secs(),
            MAX_DEADLINE.as_secs()
        )));
    }
    decode(frame)
}

/// The server side of the service's transport (see the module documentation).
pub struct ServerCodec<Req, Resp>(PhantomData<fn() -> (Req, Resp)>);

impl<Req, Resp> Default for ServerCodec<Req, Resp> {
    fn default() -> Self {
        ServerCodec(PhantomData)
    }
}

impl<Req: DeserializeOwned, Resp> Deserializer<ClientMessage<Req>> for ServerCodec<Req, Resp> {
    type Error = io::Error;

    fn deserialize(self: Pin<&mut Self>, src: &BytesMut) -> io::Result<ClientMessage<Req>> {
        decode_request(src)
    }
}

impl<Req, Resp: Serialize> Serializer<Response<Resp>> for ServerCodec<Req, Resp> {
    type Error = io::Error;

    fn serialize(self: Pin<&mut Self>, item: &Response<Resp>) -> io::Result<Bytes> {
        encode(item).map(Bytes::from)
    }
}
