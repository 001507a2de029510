//! Serializing a found block for `submitblock`.

use super::encode::write_compact_size;

/// Builds the block: header, transaction count, coinbase, then the template's
/// transactions as the node gave them (already in block serialization).
///
/// `write_coinbase` appends the coinbase in its block form.
pub fn assemble(
    header: &[u8; 80],
    template_tx_count: usize,
    template_tx_data: &[u8],
    write_coinbase: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut block = Vec::new();
    assemble_into(
        &mut block,
        header,
        template_tx_count,
        template_tx_data,
        write_coinbase,
    );
    block
}

/// [`assemble`], appending to `out` (the block journal writes the block
/// straight into its record, with no second copy).
pub fn assemble_into(
    out: &mut Vec<u8>,
    header: &[u8; 80],
    template_tx_count: usize,
    template_tx_data: &[u8],
    write_coinbase: impl FnOnce(&mut Vec<u8>),
) {
    out.reserve(80 + 9 + 256 + template_tx_data.len());
    out.extend_from_slice(header);
    write_compact_size(out, template_tx_count as u64 + 1);
    write_coinbase(out);
    out.extend_from_slice(template_tx_data);
}
