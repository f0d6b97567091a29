//! An encoded response on its way to the socket: buffers interleaved with ranges of segment
//! files. Fetched records go out as they are stored, read in small chunks by the writer,
//! instead of being copied into one response-sized buffer (ARCHITECTURE: "the bytes go to the
//! socket as they are stored").

use bytes::{BufMut, Bytes, BytesMut};
use strom_protocol::frame::FRAME_HEADER_LEN;
use strom_storage::FileSlice;

/// A piece of a response frame.
#[derive(Debug)]
pub(crate) enum ResponsePart {
    Bytes(Bytes),
    File(FileSlice),
}

/// A whole response frame, size prefix included.
#[derive(Debug)]
pub(crate) struct Response {
    parts: Vec<ResponsePart>,
}

impl From<BytesMut> for Response {
    fn from(frame: BytesMut) -> Self {
        Self {
            parts: vec![ResponsePart::Bytes(frame.freeze())],
        }
    }
}

impl Response {
    /// Bytes held in memory (file ranges are read only when written).
    pub(crate) fn buffered_len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                ResponsePart::Bytes(b) => b.len(),
                ResponsePart::File(_) => 0,
            })
            .sum()
    }

    pub(crate) fn into_parts(self) -> Vec<ResponsePart> {
        self.parts
    }

    /// Builds a frame whose records fields are the `files`, from two encodings of the same
    /// response that differ only in those fields: `with_empty` has them empty, `with_null`
    /// null. Where the two differ is where each records field is (in order); its length
    /// prefix is rewritten for the file's length and the frame size prefix adjusted.
    /// `flexible`: records are COMPACT_RECORDS (unsigned varint length + 1), else an INT32.
    pub(crate) fn splice_records(
        with_empty: BytesMut,
        with_null: &[u8],
        flexible: bool,
        files: Vec<FileSlice>,
    ) -> Response {
        assert_eq!(
            with_empty.len(),
            with_null.len(),
            "empty and null records encode to the same length"
        );
        let marker_len = if flexible { 1 } else { 4 };
        let mut markers = Vec::with_capacity(files.len());
        let mut i = 0;
        while i < with_empty.len() {
            if with_empty[i] != with_null[i] {
                markers.push(i);
                i += marker_len;
            } else {
                i += 1;
            }
        }
        assert_eq!(
            markers.len(),
            files.len(),
            "one records field differs per file range"
        );
        let old_size =
            i32::from_be_bytes([with_empty[0], with_empty[1], with_empty[2], with_empty[3]]);
        let mut size = old_size as usize - files.len() * marker_len;
        let frame = with_empty.freeze();
        let mut parts = Vec::with_capacity(3 * files.len() + 2);
        parts.push(ResponsePart::Bytes(Bytes::new())); // the size prefix, set below
        let mut done = FRAME_HEADER_LEN;
        for (at, file) in markers.into_iter().zip(files) {
            parts.push(ResponsePart::Bytes(frame.slice(done..at)));
            let prefix = records_prefix(file.len, flexible);
            size += prefix.len() + file.len;
            parts.push(ResponsePart::Bytes(prefix));
            parts.push(ResponsePart::File(file));
            done = at + marker_len;
        }
        parts.push(ResponsePart::Bytes(frame.slice(done..)));
        let size = i32::try_from(size).expect("a response frame within i32 (fetch.max.bytes)");
        parts[0] = ResponsePart::Bytes(Bytes::copy_from_slice(&size.to_be_bytes()));
        Response { parts }
    }

    /// A response of these parts (tests).
    #[cfg(test)]
    pub(crate) fn from_parts(parts: Vec<ResponsePart>) -> Response {
        Response { parts }
    }

    /// The whole frame in memory (tests).
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                ResponsePart::Bytes(b) => out.extend_from_slice(b),
                ResponsePart::File(f) => out.extend_from_slice(&f.read_to_bytes().unwrap()),
            }
        }
        out
    }
}

/// The length prefix of a records field of `len` bytes.
fn records_prefix(len: usize, flexible: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(5);
    if flexible {
        let mut v = len as u64 + 1;
        while v >= 0x80 {
            out.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.put_u8(v as u8);
    } else {
        out.put_i32(len as i32);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_prefix_is_an_unsigned_varint_of_len_plus_one() {
        assert_eq!(&records_prefix(0, true)[..], &[1]);
        assert_eq!(&records_prefix(126, true)[..], &[127]);
        assert_eq!(&records_prefix(127, true)[..], &[0x80, 0x01]);
        assert_eq!(&records_prefix(300, false)[..], &300i32.to_be_bytes());
    }
}
