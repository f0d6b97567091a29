//! Kafka framing: every request and response is a 4-byte big-endian size followed by that
//! many bytes. "Is a whole frame buffered yet?" is a pure function here (STYLE.md #2).

use thiserror::Error;

/// Why a frame cannot be accepted; the connection that sent it is closed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame size {size} is negative")]
    NegativeSize { size: i32 },
    #[error("frame size {size} exceeds socket.request.max.bytes {max}")]
    TooLarge { size: usize, max: usize },
}

/// Size of the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// Returns the body length of the first frame in `buf` once all of it is buffered,
/// `None` while more bytes are needed. The length is checked against `max` before the
/// caller allocates anything for it (STYLE.md #9).
pub fn complete_frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..FRAME_HEADER_LEN) else {
        return Ok(None);
    };
    let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let size = usize::try_from(size).map_err(|_| FrameError::NegativeSize { size })?;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    if buf.len() - FRAME_HEADER_LEN < size {
        return Ok(None);
    }
    Ok(Some(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_prefix_and_body() {
        assert_eq!(complete_frame_len(&[0, 0], 100), Ok(None));
        assert_eq!(complete_frame_len(&[0, 0, 0, 3, 1, 2], 100), Ok(None));
        assert_eq!(
            complete_frame_len(&[0, 0, 0, 3, 1, 2, 3, 9], 100),
            Ok(Some(3))
        );
        assert_eq!(complete_frame_len(&[0, 0, 0, 0], 100), Ok(Some(0)));
    }

    #[test]
    fn refuses_negative_and_oversized() {
        assert_eq!(
            complete_frame_len(&[0xff, 0xff, 0xff, 0xff], 100),
            Err(FrameError::NegativeSize { size: -1 })
        );
        assert_eq!(
            complete_frame_len(&[0, 0, 1, 0], 100),
            Err(FrameError::TooLarge {
                size: 256,
                max: 100
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..16), max in 0usize..1000) {
            if let Ok(Some(n)) = complete_frame_len(&bytes, max) {
                proptest::prop_assert!(n <= max && n + 4 <= bytes.len());
            }
        }
    }
}
