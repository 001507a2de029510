//! The log's record format: `NDAS`, a kind byte, the meta and body lengths
//! (u32 LE), a CRC-32 of everything after the magic, then the meta JSON and
//! the raw body; and the log read back from its file a piece at a time, so
//! a log of any size is read in a few hundred KiB of memory.

use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::Bytes;

pub const MAGIC: &[u8; 4] = b"NDAS";
/// Magic, kind, two lengths, CRC.
pub const HEADER_LEN: usize = 4 + 1 + 4 + 4 + 4;

/// What a record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A found block: its meta, and the whole block or (when its template's
    /// transactions are in the log) the block up to its transactions.
    Found = 1,
    /// The node gave its verdict on a block.
    Settled = 2,
    /// A template's transactions, written before any block can refer to them.
    Transactions = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Found),
            2 => Some(Kind::Settled),
            3 => Some(Kind::Transactions),
            _ => None,
        }
    }
}

/// A record as read back: its meta, and where its body lies in the file
/// (read when wanted, so a log's transactions are never all in memory).
pub struct Record {
    pub kind: Kind,
    pub meta: Vec<u8>,
    /// Where the record starts and ends in the file.
    pub start: u64,
    pub end: u64,
    pub body: Span,
    /// It starts inside a damaged record's declared length, whose length
    /// field may itself be what was damaged: it may be real, or that
    /// record's data (a mempool transaction can hold a record's bytes).
    pub suspect: bool,
}

impl Record {
    /// The whole record, header to end, as it lies in the file.
    pub fn whole(&self) -> Span {
        Span {
            at: self.start,
            len: self.end - self.start,
        }
    }
}

/// A range of the log file.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub at: u64,
    pub len: u64,
}

impl Span {
    /// Its bytes, read from `file`.
    pub fn read(self, file: &File) -> std::io::Result<Bytes> {
        let len = usize::try_from(self.len).map_err(std::io::Error::other)?;
        let mut bytes = vec![0; len];
        file.read_exact_at(&mut bytes, self.at)?;
        Ok(bytes.into())
    }

    /// Copies its bytes from `file` to `out`, a chunk at a time.
    pub fn copy(self, file: &File, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut chunk = vec![0; CHUNK.min(usize::try_from(self.len).unwrap_or(CHUNK))];
        let mut done = 0;
        while done < self.len {
            let take = chunk
                .len()
                .min(usize::try_from(self.len - done).unwrap_or(CHUNK));
            file.read_exact_at(&mut chunk[..take], self.at + done)?;
            out.write_all(&chunk[..take])?;
            done += take as u64;
        }
        Ok(())
    }

    /// At most its first `len` bytes.
    pub fn first(self, len: u64) -> Span {
        Span {
            at: self.at,
            len: self.len.min(len),
        }
    }
}

/// One record in one buffer: header, meta, then what `body` appends.
pub fn encode(kind: Kind, meta: &[u8], body: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut record = Vec::new();
    record.extend_from_slice(MAGIC);
    record.push(kind as u8);
    record.extend_from_slice(&len_u32(meta.len()).to_le_bytes());
    record.extend_from_slice(&[0; 8]); // body length and CRC, below
    record.extend_from_slice(meta);
    body(&mut record);
    let body_len = len_u32(record.len() - HEADER_LEN - meta.len());
    record[9..13].copy_from_slice(&body_len.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&record[4..13]);
    crc.update(&record[HEADER_LEN..]);
    let crc = crc.finalize();
    record[13..17].copy_from_slice(&crc.to_le_bytes());
    record.into()
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("a journal record is under 4 GiB")
}

/// The largest meta a record may declare: NDAS writes a few hundred bytes
/// (the worker name is the longest field); a larger length is damage, and
/// is never allocated.
const MAX_META: u64 = 64 << 10;

/// How much of the file is read at once, when checking a CRC or looking
/// for the next record.
pub(super) const CHUNK: usize = 256 << 10;

/// Reads every good record of the log in `file`, in order, handing each to
/// `visit`; after a bad one, looks for the next magic so a damaged record
/// in the middle does not hide the ones after it. Returns the offset of the
/// first byte that is not part of a good record, if any. A read error is
/// returned, never taken for the end of the log.
pub fn scan(
    file: &File,
    mut visit: impl FnMut(Record) -> std::io::Result<()>,
) -> std::io::Result<Option<u64>> {
    let log = Log {
        file,
        len: file.metadata()?.len(),
    };
    let mut damaged_at = None;
    // Records starting before this lie inside a damaged record's declared length.
    let mut suspect_until = 0;
    let mut at = 0;
    while at < log.len {
        match log.decode(at)? {
            Some(mut record) => {
                record.suspect = at < suspect_until;
                at = record.end;
                visit(record)?;
            }
            None => {
                damaged_at.get_or_insert(at);
                at = match log.head(at)?.map(|head| head.end) {
                    // A damaged record whose declared end is where a good
                    // record starts (or the log ends): whatever lies within
                    // is its data, skipped.
                    Some(end)
                        if end == log.len || (end < log.len && log.decode(end)?.is_some()) =>
                    {
                        end
                    }
                    // Its length is damaged too, or it was torn: the next
                    // record is looked for, and what is found within the
                    // declared length is suspect (the journal trusts it only
                    // where it can check it).
                    Some(end) => {
                        suspect_until = suspect_until.max(end);
                        log.next_magic(at + 1)?
                    }
                    None => log.next_magic(at + 1)?,
                };
            }
        }
    }
    // The end must really be the end: a file whose size is not what it
    // holds (a `/proc` file reads as 0 bytes) is an error, not an empty log.
    if file.read_at(&mut [0], log.len)? != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the log holds more than its size says",
        ));
    }
    Ok(damaged_at)
}

/// A record's header as read at `at`: its kind, where its body starts and
/// where it ends, and the CRC it claims (which may not hold).
struct Head {
    kind: Kind,
    meta_len: u64,
    body_start: u64,
    end: u64,
    crc: u32,
    /// The kind and lengths, as the CRC covers them.
    fields: [u8; 9],
}

/// The log file and its length when the scan began.
struct Log<'a> {
    file: &'a File,
    len: u64,
}

impl Log<'_> {
    /// Reads `buf.len()` bytes at `at`, or fewer at the end of the log.
    fn read_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.len.saturating_sub(at)).unwrap_or(usize::MAX));
        self.file.read_exact_at(&mut buf[..want], at)?;
        Ok(want)
    }

    /// The header at `at`, when it starts with the magic and a known kind.
    fn head(&self, at: u64) -> std::io::Result<Option<Head>> {
        let mut header = [0; HEADER_LEN];
        if self.read_at(&mut header, at)? < HEADER_LEN || &header[..4] != MAGIC {
            return Ok(None);
        }
        let Some(kind) = Kind::from_byte(header[4]) else {
            return Ok(None);
        };
        let word = |i: usize| {
            u32::from_le_bytes(
                header[i..i + 4]
                    .try_into()
                    .expect("a 4-byte slice of the header"),
            )
        };
        let meta_len = u64::from(word(5));
        let body_start = at + HEADER_LEN as u64 + meta_len;
        Ok(Some(Head {
            kind,
            meta_len,
            body_start,
            end: body_start + u64::from(word(9)),
            crc: word(13),
            fields: header[4..13].try_into().expect("9 bytes"),
        }))
    }

    /// The record at `at`, if it is whole and its CRC holds.
    fn decode(&self, at: u64) -> std::io::Result<Option<Record>> {
        let Some(head) = self.head(at)? else {
            return Ok(None);
        };
        if head.end > self.len || head.meta_len > MAX_META {
            return Ok(None);
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head.fields);
        let meta_start = at + HEADER_LEN as u64;
        let mut meta = vec![0; head.meta_len as usize];
        self.file.read_exact_at(&mut meta, meta_start)?;
        crc.update(&meta);
        let mut chunk = vec![0; CHUNK];
        let mut from = head.body_start;
        while from < head.end {
            let read = self.read_at(&mut chunk[..CHUNK.min((head.end - from) as usize)], from)?;
            crc.update(&chunk[..read]);
            from += read as u64;
        }
        if crc.finalize() != head.crc {
            return Ok(None);
        }
        Ok(Some(Record {
            kind: head.kind,
            meta,
            start: at,
            end: head.end,
            body: Span {
                at: head.body_start,
                len: head.end - head.body_start,
            },
            suspect: false,
        }))
    }

    /// Where the next magic at or after `from` starts, or the log's end.
    fn next_magic(&self, mut from: u64) -> std::io::Result<u64> {
        let mut chunk = vec![0; CHUNK];
        while from < self.len {
            let read = self.read_at(&mut chunk, from)?;
            if let Some(found) = chunk[..read].windows(MAGIC.len()).position(|w| w == MAGIC) {
                return Ok(from + found as u64);
            }
            if read < MAGIC.len() || from + (read as u64) >= self.len {
                break;
            }
            // The last bytes again: a magic may straddle two chunks.
            from += (read - (MAGIC.len() - 1)) as u64;
        }
        Ok(self.len)
    }
}
