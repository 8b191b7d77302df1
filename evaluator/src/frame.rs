//! The protocol between the pool and a worker: one request, then one response, each a
//! JSON document behind a 4-byte big-endian length, over the worker's stdin and stdout.
//!
//! Both sides check the length before they allocate, so neither can be made to reserve
//! more than its cap by a bad or hostile peer.

use std::io::{Read, Write};

use rivet_core::{Diagnostic, PipelineDefinition};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest request a worker reads: a pipeline source (the orchestrator caps those at
/// 1 MiB by default) and its file name, with room for JSON escaping.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// The largest response the pool reads from a worker; a larger one kills the worker. A
/// definition must fit in a gRPC message (8 MiB by default) to be of any use anyway.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// What the pool asks a worker to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The pipeline script.
    pub source: String,
    /// Its name in diagnostics.
    pub file: String,
}

/// What a worker answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The script defines this valid pipeline.
    Valid(PipelineDefinition),
    /// The script is at fault: every problem found.
    Invalid(Vec<Diagnostic>),
    /// The sandbox could not be set up.
    Sandbox(String),
    /// The evaluation panicked; the worker survived it but should not be trusted further.
    Panicked(String),
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The pipe failed or closed.
    #[error("pipe: {0}")]
    Io(#[from] std::io::Error),
    /// The peer announced a frame over the cap.
    #[error("a frame of {length} bytes exceeds the {limit} byte limit")]
    TooLarge {
        /// The announced length.
        length: usize,
        /// The cap that applies.
        limit: usize,
    },
    /// The frame is not the JSON expected.
    #[error("malformed frame: {0}")]
    Json(#[from] serde_json::Error),
}

fn checked_length(prefix: [u8; 4], limit: usize) -> Result<usize, FrameError> {
    let length = u32::from_be_bytes(prefix) as usize;
    if length > limit {
        return Err(FrameError::TooLarge { length, limit });
    }
    Ok(length)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(value)?;
    let length =
        u32::try_from(body.len()).map_err(|_| FrameError::TooLarge { length: body.len(), limit: u32::MAX as usize })?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Writes one frame (the worker's side, blocking).
pub fn write_blocking<T: Serialize>(out: &mut impl Write, value: &T) -> Result<(), FrameError> {
    out.write_all(&encode(value)?)?;
    out.flush()?;
    Ok(())
}

/// Reads one frame of at most `limit` bytes (the worker's side, blocking). `Ok(None)` at a
/// clean end of input, between frames.
pub fn read_blocking<T: for<'de> Deserialize<'de>>(
    input: &mut impl Read,
    limit: usize,
) -> Result<Option<T>, FrameError> {
    let mut prefix = [0u8; 4];
    match input.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err.into()),
    }
    let length = checked_length(prefix, limit)?;
    let mut body = vec![0u8; length];
    input.read_exact(&mut body)?;
    Ok(Some(serde_json::from_slice(&body)?))
}

/// Writes one frame (the pool's side).
pub async fn write<T: Serialize>(out: &mut (impl AsyncWrite + Unpin), value: &T) -> Result<(), FrameError> {
    out.write_all(&encode(value)?).await?;
    out.flush().await?;
    Ok(())
}

/// Reads one frame of at most `limit` bytes (the pool's side).
pub async fn read<T: for<'de> Deserialize<'de>>(
    input: &mut (impl AsyncRead + Unpin),
    limit: usize,
) -> Result<T, FrameError> {
    let mut prefix = [0u8; 4];
    input.read_exact(&mut prefix).await?;
    let length = checked_length(prefix, limit)?;
    let mut body = vec![0u8; length];
    input.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_an_oversized_one_is_refused_before_allocation() {
        let request = Request { source: "return 1".to_owned(), file: "a.lua".to_owned() };
        let mut buffer = Vec::new();
        write_blocking(&mut buffer, &request).expect("write");
        let read: Option<Request> = read_blocking(&mut buffer.as_slice(), MAX_REQUEST_BYTES).expect("read");
        assert_eq!(read, Some(request));
        let empty: Option<Request> = read_blocking(&mut [].as_slice(), MAX_REQUEST_BYTES).expect("clean end");
        assert_eq!(empty, None);
        let huge = (u32::MAX).to_be_bytes();
        let err = read_blocking::<Request>(&mut huge.as_slice(), MAX_REQUEST_BYTES).expect_err("too large");
        assert!(err.to_string().contains("exceeds the 16777216 byte limit"), "{err}");
    }
}
