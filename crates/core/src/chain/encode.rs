//! The few pieces of Bitcoin's wire encoding a pool writes itself.

/// Appends a CompactSize (varint) as used for counts and lengths.
pub fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Appends a minimal script push of `data` (direct push or `OP_PUSHDATA1`).
///
/// Coinbase pushes are short; longer data is a caller's bug.
pub fn write_push(out: &mut Vec<u8>, data: &[u8]) {
    assert!(data.len() <= 0xff, "coinbase pushes are at most 255 bytes");
    if data.len() >= 0x4c {
        out.push(0x4c);
    }
    out.push(data.len() as u8);
    out.extend_from_slice(data);
}

/// Appends a number as Bitcoin Core's `CScript() << n` does: `OP_0`,
/// `OP_1`..`OP_16`, or a minimal little-endian push.
///
/// BIP34 compares the coinbase scriptSig's start against exactly this
/// encoding of the height ([BIP34](https://github.com/bitcoin/bips/blob/master/bip-0034.mediawiki)).
pub fn write_script_number(out: &mut Vec<u8>, n: u32) {
    match n {
        0 => out.push(0x00),
        1..=16 => out.push(0x50 + n as u8),
        _ => {
            let mut bytes = Vec::with_capacity(5);
            let mut value = n;
            while value > 0 {
                bytes.push((value & 0xff) as u8);
                value >>= 8;
            }
            if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                bytes.push(0);
            }
            write_push(out, &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script_number(n: u32) -> String {
        let mut out = Vec::new();
        write_script_number(&mut out, n);
        hex::encode(out)
    }

    #[test]
    fn script_numbers_match_core_cscript_encoding() {
        assert_eq!(script_number(0), "00");
        assert_eq!(script_number(1), "51");
        assert_eq!(script_number(16), "60");
        assert_eq!(script_number(17), "0111");
        assert_eq!(script_number(127), "017f");
        assert_eq!(script_number(128), "028000");
        assert_eq!(script_number(227_836), "03fc7903");
        assert_eq!(script_number(8_388_608), "0400008000");
    }

    #[test]
    fn script_numbers_agree_with_bitcoin_crate() {
        for n in [0u32, 1, 16, 17, 255, 256, 32767, 32768, 840_000, 16_777_216] {
            let theirs = bitcoin::script::Builder::new()
                .push_int(i64::from(n))
                .into_script();
            assert_eq!(
                script_number(n),
                hex::encode(theirs.as_bytes()),
                "height {n}"
            );
        }
    }

    #[test]
    fn compact_sizes_at_each_boundary() {
        let encode = |n| {
            let mut out = Vec::new();
            write_compact_size(&mut out, n);
            hex::encode(out)
        };
        assert_eq!(encode(0xfc), "fc");
        assert_eq!(encode(0xfd), "fdfd00");
        assert_eq!(encode(0x1_0000), "fe00000100");
        assert_eq!(encode(0x1_0000_0000), "ff0000000001000000");
    }
}
