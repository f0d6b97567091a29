//! Record-batch compression codecs as Kafka uses them (attribute bits 0-2): gzip, raw snappy
//! (decode also accepts the xerial framing the Java client writes), LZ4 frame format, zstd.
//! Pure functions over byte slices; the caller decides when to compress (never the broker).

use std::io::{Read, Write};

use thiserror::Error;

pub use crate::record_batch::Compression;

/// Largest decompressed batch accepted (guards against decompression bombs, STYLE.md #9).
pub const MAX_DECOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

/// The 8-byte magic that starts a xerial-framed snappy stream (snappy-java).
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, version and compatible-version fields of the xerial header.
const XERIAL_HEADER_LEN: usize = 16;

/// Why bytes could not be (de)compressed with a codec.
#[derive(Debug, Error)]
pub enum CompressionError {
    #[error("{codec:?} data is malformed: {reason}")]
    Malformed { codec: Compression, reason: String },
    #[error("decompressed {codec:?} data exceeds {max} bytes")]
    TooLarge { codec: Compression, max: usize },
}

fn malformed(codec: Compression, e: impl std::fmt::Display) -> CompressionError {
    CompressionError::Malformed {
        codec,
        reason: e.to_string(),
    }
}

/// The attribute bits (0-2) of a codec.
pub fn attribute_bits(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Kafka's `compression.type` names (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
pub fn parse_codec(name: &str) -> Option<Compression> {
    match name.to_ascii_lowercase().as_str() {
        "none" | "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// The `compression.type` name of a codec.
pub fn codec_name(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

/// Compresses the records section of a batch. Snappy is written raw (as librdkafka does);
/// LZ4 as a standard LZ4 frame with independent blocks.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2 + 64),
                flate2::Compression::default(),
            );
            enc.write_all(data).map_err(|e| malformed(codec, e))?;
            enc.finish().map_err(|e| malformed(codec, e))
        }
        Compression::Snappy => snap::raw::Encoder::new()
            .compress_vec(data)
            .map_err(|e| malformed(codec, e)),
        Compression::Lz4 => {
            let mut info = lz4_flex::frame::FrameInfo::new();
            info.block_mode = lz4_flex::frame::BlockMode::Independent;
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(data.len() / 2 + 64),
            );
            enc.write_all(data).map_err(|e| malformed(codec, e))?;
            enc.finish().map_err(|e| malformed(codec, e))
        }
        Compression::Zstd => zstd::bulk::compress(data, 3).map_err(|e| malformed(codec, e)),
    }
}

/// Decompresses a batch's records section, refusing output above `MAX_DECOMPRESSED_BYTES`.
pub fn decompress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    decompress_bounded(codec, data, MAX_DECOMPRESSED_BYTES)
}

/// Decompresses a batch's records section, refusing (before allocating it) output above `max`
/// bytes (capped at `MAX_DECOMPRESSED_BYTES`): a few KiB of zstd or gzip can expand to GiBs.
pub fn decompress_bounded(
    codec: Compression,
    data: &[u8],
    max: usize,
) -> Result<Vec<u8>, CompressionError> {
    let max = max.min(MAX_DECOMPRESSED_BYTES);
    match codec {
        Compression::None if data.len() > max => Err(too_large(codec, max)),
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(data), max),
        Compression::Snappy if data.starts_with(&XERIAL_MAGIC) => decompress_xerial(data, max),
        Compression::Snappy => {
            let len = snap::raw::decompress_len(data).map_err(|e| malformed(codec, e))?;
            if len > max {
                return Err(too_large(codec, max));
            }
            snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|e| malformed(codec, e))
        }
        Compression::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data), max),
        Compression::Zstd => read_bounded(
            codec,
            zstd::stream::read::Decoder::new(data).map_err(|e| malformed(codec, e))?,
            max,
        ),
    }
}

fn too_large(codec: Compression, max: usize) -> CompressionError {
    CompressionError::TooLarge { codec, max }
}

fn read_bounded(
    codec: Compression,
    reader: impl Read,
    max: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| malformed(codec, e))?;
    if out.len() > max {
        return Err(too_large(codec, max));
    }
    Ok(out)
}

/// snappy-java's stream: 16-byte header, then blocks of a 4-byte big-endian length and
/// that many bytes of raw snappy.
fn decompress_xerial(data: &[u8], max: usize) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    let mut rest = data
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| malformed(codec, "truncated xerial header"))?;
    let mut out = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    while !rest.is_empty() {
        let Some(prefix) = rest.get(..4) else {
            return Err(malformed(codec, "truncated xerial block length"));
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let block = rest
            .get(4..4 + len)
            .ok_or_else(|| malformed(codec, "truncated xerial block"))?;
        let block_len = snap::raw::decompress_len(block).map_err(|e| malformed(codec, e))?;
        if out.len() + block_len > max {
            return Err(too_large(codec, max));
        }
        out.extend_from_slice(
            &decoder
                .decompress_vec(block)
                .map_err(|e| malformed(codec, e))?,
        );
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// Returns `batch` with its records section decompressed and the codec bits cleared, so that
/// `RecordBatchHeader::records()` can iterate it. The CRC is left as stored (the caller has
/// already checked it on the compressed bytes). Uncompressed batches are copied as they are.
pub fn decompress_batch(batch: &[u8]) -> Result<Vec<u8>, CompressionError> {
    decompress_batch_bounded(batch, MAX_DECOMPRESSED_BYTES)
}

/// [`decompress_batch`] refusing a records section that decompresses to more than `max` bytes.
pub fn decompress_batch_bounded(batch: &[u8], max: usize) -> Result<Vec<u8>, CompressionError> {
    use crate::record_batch::{RecordBatchHeader, HEADER_SIZE, LOG_OVERHEAD};
    let header = RecordBatchHeader::parse(batch).map_err(|e| malformed(Compression::None, e))?;
    let codec = header
        .compression()
        .map_err(|e| malformed(Compression::None, e))?;
    let end = header.total_size().min(batch.len());
    if codec == Compression::None {
        return Ok(batch[..end].to_vec());
    }
    let plain = decompress_bounded(codec, &batch[HEADER_SIZE..end], max)?;
    let mut out = Vec::with_capacity(HEADER_SIZE + plain.len());
    out.extend_from_slice(&batch[..HEADER_SIZE]);
    out.extend_from_slice(&plain);
    let len = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&len.to_be_bytes());
    let attributes = i16::from_be_bytes([out[21], out[22]]) & !0x07;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for codec in ALL {
            let packed = compress(codec, &data).unwrap();
            if codec != Compression::None {
                assert!(packed.len() < data.len() / 2, "{codec:?} did not compress");
            }
            assert_eq!(decompress(codec, &packed).unwrap(), data, "{codec:?}");
            assert_eq!(parse_codec(codec_name(codec)), Some(codec));
        }
        assert_eq!(
            decompress(
                Compression::Gzip,
                &compress(Compression::Gzip, b"").unwrap()
            )
            .unwrap(),
            b""
        );
    }

    #[test]
    fn xerial_framed_snappy_decodes() {
        let a = snap::raw::Encoder::new().compress_vec(b"hello ").unwrap();
        let b = snap::raw::Encoder::new().compress_vec(b"world").unwrap();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&1i32.to_be_bytes());
        for block in [&a, &b] {
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(block);
        }
        assert_eq!(
            decompress(Compression::Snappy, &framed).unwrap(),
            b"hello world"
        );
        framed.truncate(framed.len() - 1);
        assert!(decompress(Compression::Snappy, &framed).is_err());
    }

    #[test]
    fn bounded_decompression_refuses_a_bomb() {
        let zeros = vec![0u8; 8 << 20];
        for codec in &ALL[1..] {
            let bomb = compress(*codec, &zeros).unwrap();
            assert!(bomb.len() < 1 << 20, "{codec:?}");
            assert!(
                matches!(
                    decompress_bounded(*codec, &bomb, 1 << 20),
                    Err(CompressionError::TooLarge { max, .. }) if max == 1 << 20
                ),
                "{codec:?}"
            );
            assert_eq!(
                decompress_bounded(*codec, &bomb, 8 << 20).unwrap().len(),
                8 << 20
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in &ALL[1..] {
            assert!(
                decompress(*codec, b"\x01\x02\x03 not compressed at all").is_err(),
                "{codec:?}"
            );
        }
    }
}
