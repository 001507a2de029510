//! The log's record format: `NDAS`, a kind byte, the meta and body lengths
//! (u32 LE), a CRC-32 of everything after the magic, then the meta JSON and
//! the raw body.

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

/// A record as read back.
pub struct Record {
    pub kind: Kind,
    pub meta: Vec<u8>,
    pub body: Bytes,
    /// It starts inside a damaged record's declared length, whose length
    /// field may itself be what was damaged: it may be real, or that
    /// record's data (a mempool transaction can hold a record's bytes).
    pub suspect: bool,
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

/// Every good record of a log, and where the damage starts if any.
pub struct Scan {
    pub records: Vec<Record>,
    /// Offset of the first byte that is not part of a good record.
    pub damaged_at: Option<usize>,
}

/// Reads every good record; after a bad one, looks for the next magic so a
/// damaged record in the middle does not hide the ones after it.
pub fn scan(bytes: &Bytes) -> Scan {
    let mut records = Vec::new();
    let mut damaged_at = None;
    // Records starting before this lie inside a damaged record's declared length.
    let mut suspect_until = 0;
    let mut at = 0;
    while at < bytes.len() {
        match decode(bytes, at) {
            Some((mut record, end)) => {
                record.suspect = at < suspect_until;
                records.push(record);
                at = end;
            }
            None => {
                damaged_at.get_or_insert(at);
                let next_magic =
                    |from: usize| match bytes[from..].windows(MAGIC.len()).position(|w| w == MAGIC)
                    {
                        Some(next) => from + next,
                        None => bytes.len(),
                    };
                at = match declared_end(bytes, at) {
                    // A damaged record whose declared end is where a good
                    // record starts (or the log ends): whatever lies within
                    // is its data, skipped.
                    Some(end)
                        if end == bytes.len()
                            || (end < bytes.len() && decode(bytes, end).is_some()) =>
                    {
                        end
                    }
                    // Its length is damaged too, or it was torn: the next
                    // record is looked for, and what is found within the
                    // declared length is suspect (the journal trusts it only
                    // where it can check it).
                    Some(end) => {
                        suspect_until = suspect_until.max(end);
                        next_magic(at + 1)
                    }
                    None => next_magic(at + 1),
                };
            }
        }
    }
    Scan {
        records,
        damaged_at,
    }
}

/// A record's header as read at `at`: its kind, where its body starts and
/// where it ends, and the CRC it claims (which may not hold).
struct Head {
    kind: Kind,
    body_start: usize,
    end: usize,
    crc: u32,
}

/// The header at `at`, when it starts with the magic and a known kind.
fn head(bytes: &Bytes, at: usize) -> Option<Head> {
    let header = bytes.get(at..at.checked_add(HEADER_LEN)?)?;
    if &header[..4] != MAGIC {
        return None;
    }
    let kind = Kind::from_byte(header[4])?;
    let word = |i: usize| {
        u32::from_le_bytes(
            header[i..i + 4]
                .try_into()
                .expect("a 4-byte slice of the header"),
        )
    };
    let body_start = (at + HEADER_LEN).checked_add(word(5) as usize)?;
    Some(Head {
        kind,
        body_start,
        end: body_start.checked_add(word(9) as usize)?,
        crc: word(13),
    })
}

/// Where the record at `at` says it ends (its CRC may still fail).
fn declared_end(bytes: &Bytes, at: usize) -> Option<usize> {
    head(bytes, at).map(|head| head.end)
}

/// The record at `at` and where it ends, if it is whole and its CRC holds.
fn decode(bytes: &Bytes, at: usize) -> Option<(Record, usize)> {
    let Head {
        kind,
        body_start,
        end,
        crc: claimed,
    } = head(bytes, at)?;
    let meta_start = at + HEADER_LEN;
    let contents = bytes.get(meta_start..end)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[at + 4..at + 13]);
    crc.update(contents);
    if crc.finalize() != claimed {
        return None;
    }
    let record = Record {
        kind,
        meta: bytes[meta_start..body_start].to_vec(),
        body: bytes.slice(body_start..end),
        suspect: false,
    };
    Some((record, end))
}
