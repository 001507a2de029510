//! The tests' own wallet: the Bitcoin Core the tests run has none, so the
//! tests hold their keys, take coinbase coins from `generatetoaddress`, and
//! build and sign transactions with the `bitcoin` crate — P2WPKH, P2WSH,
//! P2TR (key path) and P2PKH spends, so templates carry witness data and a
//! witness commitment that is not trivial.

use std::sync::Mutex;

use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, Secp256k1, TapTweak};
use bitcoin::secp256k1::{All, Message, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::{
    absolute, transaction, Address, Amount, CompressedPublicKey, KnownHrp, OutPoint, PublicKey,
    ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};
use serde_json::{json, Value};

/// What the wallet asks of a node: its JSON-RPC (the kit's
/// `RegtestNode` answers it; the wallet names no node type).
pub trait Rpc {
    /// The answer's `result`; a failed call panics (it is a test's).
    fn call(&self, method: &str, params: Value) -> impl std::future::Future<Output = Value>;
}

/// The kinds of output the wallet pays to and spends from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    P2wpkh,
    P2wsh,
    P2tr,
    P2pkh,
}

/// A coin the wallet can spend.
#[derive(Clone, Debug)]
struct Coin {
    outpoint: OutPoint,
    txout: TxOut,
    kind: Kind,
}

/// One key, every kind of output built from it.
pub struct Wallet {
    secp: Secp256k1<All>,
    key: SecretKey,
    coins: Mutex<Vec<Coin>>,
}

/// Paid per transaction: far above the 1 sat/vB relay floor, far below the
/// node's maximum fee rate.
const FEE: Amount = Amount::from_sat(10_000);

impl Wallet {
    /// A wallet whose key is derived from `seed` (tests need no randomness).
    pub fn new(seed: u8) -> Wallet {
        let mut secret = [0x11u8; 32];
        secret[31] = seed.max(1);
        Wallet {
            secp: Secp256k1::new(),
            key: SecretKey::from_slice(&secret).unwrap(),
            coins: Mutex::new(Vec::new()),
        }
    }

    fn public(&self) -> PublicKey {
        PublicKey::new(self.key.public_key(&self.secp))
    }

    fn compressed(&self) -> CompressedPublicKey {
        CompressedPublicKey(self.key.public_key(&self.secp))
    }

    /// `<pubkey> OP_CHECKSIG`: what the P2WSH outputs commit to.
    fn witness_script(&self) -> ScriptBuf {
        ScriptBuf::builder()
            .push_key(&self.public())
            .push_opcode(bitcoin::opcodes::all::OP_CHECKSIG)
            .into_script()
    }

    /// The regtest address of `kind`.
    pub fn address(&self, kind: Kind) -> Address {
        self.address_on(kind, KnownHrp::Regtest)
    }

    /// The address of `kind` on the chains of `hrp` (`Testnets` for signet).
    pub fn address_on(&self, kind: Kind, hrp: KnownHrp) -> Address {
        match kind {
            Kind::P2wpkh => Address::p2wpkh(&self.compressed(), hrp),
            Kind::P2wsh => Address::p2wsh(&self.witness_script(), hrp),
            Kind::P2tr => Address::p2tr(&self.secp, self.public().inner.into(), None, hrp),
            // Regtest and the test networks share the legacy prefixes.
            Kind::P2pkh => Address::p2pkh(self.public(), bitcoin::NetworkKind::Test),
        }
    }

    /// Mines `blocks` to the wallet's P2WPKH address on `node` and keeps the
    /// coinbase coins that are mature at the new tip.
    pub async fn fund(&self, node: &impl Rpc, blocks: u64) {
        let address = self.address(Kind::P2wpkh).to_string();
        let hashes = node
            .call("generatetoaddress", json!([blocks, address]))
            .await;
        let tip = node.call("getblockcount", json!([])).await;
        let tip = tip.as_u64().unwrap();
        for hash in hashes.as_array().unwrap() {
            let block = node.call("getblock", json!([hash, 2])).await;
            let height = block["height"].as_u64().unwrap();
            // Spendable in the next block when 100 blocks deep.
            if tip + 1 - height < 100 {
                continue;
            }
            let coinbase = &block["tx"][0];
            let txout = txout_of(&coinbase["vout"][0]);
            self.coins.lock().unwrap().push(Coin {
                outpoint: OutPoint {
                    txid: coinbase["txid"].as_str().unwrap().parse().unwrap(),
                    vout: 0,
                },
                txout,
                kind: Kind::P2wpkh,
            });
        }
    }

    /// Sends transactions that spend every kind of output: a payment from
    /// a wallet coin into one output of each kind (plus change), then a
    /// transaction spending each of those. Returns every txid, parents first.
    pub async fn send_every_kind(&self, node: &impl Rpc) -> Vec<Txid> {
        let coin = self
            .coins
            .lock()
            .unwrap()
            .pop()
            .expect("a wallet coin: fund the wallet first");
        let kinds = [Kind::P2wpkh, Kind::P2wsh, Kind::P2tr, Kind::P2pkh];
        let each = Amount::from_sat(100_000_000);
        let mut outputs: Vec<TxOut> = kinds.iter().map(|&kind| self.txout(kind, each)).collect();
        let change = coin.txout.value - each * kinds.len() as u64 - FEE;
        outputs.push(self.txout(Kind::P2wpkh, change));
        let parent = self.sign(vec![coin], outputs);
        let parent_id = self.broadcast(node, &parent).await;
        let made = |vout: usize| Coin {
            outpoint: OutPoint {
                txid: parent_id,
                vout: vout as u32,
            },
            txout: parent.output[vout].clone(),
            kind: if vout < kinds.len() {
                kinds[vout]
            } else {
                Kind::P2wpkh
            },
        };
        self.coins.lock().unwrap().push(made(kinds.len()));
        let mut txids = vec![parent_id];
        // The P2WSH, P2TR and P2PKH outputs each alone; the P2PKH spend
        // also takes the P2WPKH output, so one transaction mixes legacy and
        // witness inputs.
        for (inputs, to) in [
            (vec![made(1)], Kind::P2wpkh),
            (vec![made(2)], Kind::P2tr),
            (vec![made(3), made(0)], Kind::P2wsh),
        ] {
            let value = inputs.iter().map(|c| c.txout.value).sum::<Amount>() - FEE;
            let tx = self.sign(inputs, vec![self.txout(to, value)]);
            txids.push(self.broadcast(node, &tx).await);
        }
        txids
    }

    /// Fills the mempool past a block's 4,000,000 weight units, so that a
    /// template is as full as the node's `-blockmaxweight` and
    /// `-blockreservedweight` allow, to within a few hundred units: `big`
    /// transactions of about 350,000 (2,800 outputs each; the best paying)
    /// and `small` of about 440 (one input, one output; the worst paying),
    /// which fill the gap the big ones leave. Needs `big + 1` coins; mines
    /// one block (the small ones' coins).
    pub async fn fill_blocks(&self, node: &impl Rpc, big: usize, small: usize) {
        let coin = self
            .coins
            .lock()
            .unwrap()
            .pop()
            .expect("a coin for the fan-out");
        let each = Amount::from_sat((coin.txout.value - FEE).to_sat() / small as u64);
        let outputs = (0..small).map(|_| self.txout(Kind::P2wpkh, each)).collect();
        let fan_out = self.sign(vec![coin], outputs);
        let fan_out_id = self.broadcast(node, &fan_out).await;
        let address = self.address(Kind::P2wpkh).to_string();
        node.call("generatetoaddress", json!([1, address])).await;
        for _ in 0..big {
            let coin = self
                .coins
                .lock()
                .unwrap()
                .pop()
                .expect("a coin per big transaction");
            // 5 sat/vB on about 87,000 vB.
            let fee = Amount::from_sat(450_000);
            let each = Amount::from_sat((coin.txout.value - fee).to_sat() / 2800);
            let outputs = (0..2800).map(|_| self.txout(Kind::P2wpkh, each)).collect();
            let tx = self.sign(vec![coin], outputs);
            self.broadcast(node, &tx).await;
        }
        for vout in 0..small {
            let coin = Coin {
                outpoint: OutPoint {
                    txid: fan_out_id,
                    vout: vout as u32,
                },
                txout: fan_out.output[vout].clone(),
                kind: Kind::P2wpkh,
            };
            // About 2 sat/vB: after every big one.
            let value = each - Amount::from_sat(220);
            let tx = self.sign(vec![coin], vec![self.txout(Kind::P2wpkh, value)]);
            self.broadcast(node, &tx).await;
        }
    }

    fn txout(&self, kind: Kind, value: Amount) -> TxOut {
        TxOut {
            value,
            script_pubkey: self.address(kind).script_pubkey(),
        }
    }

    async fn broadcast(&self, node: &impl Rpc, tx: &Transaction) -> Txid {
        let hex = bitcoin::consensus::encode::serialize_hex(tx);
        let txid = node.call("sendrawtransaction", json!([hex])).await;
        assert_eq!(txid.as_str().unwrap(), tx.compute_txid().to_string());
        tx.compute_txid()
    }

    /// A version 2 transaction spending `coins` to `outputs`, every input signed.
    fn sign(&self, coins: Vec<Coin>, outputs: Vec<TxOut>) -> Transaction {
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: coins
                .iter()
                .map(|coin| TxIn {
                    previous_output: coin.outpoint,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::new(),
                })
                .collect(),
            output: outputs,
        };
        let prevouts: Vec<TxOut> = coins.iter().map(|c| c.txout.clone()).collect();
        let mut signed = Vec::new();
        {
            let mut cache = SighashCache::new(&tx);
            for (index, coin) in coins.iter().enumerate() {
                signed.push(self.sign_input(&mut cache, index, coin, &prevouts));
            }
        }
        for (input, (script_sig, witness)) in tx.input.iter_mut().zip(signed) {
            input.script_sig = script_sig;
            input.witness = witness;
        }
        tx
    }

    fn sign_input(
        &self,
        cache: &mut SighashCache<&Transaction>,
        index: usize,
        coin: &Coin,
        prevouts: &[TxOut],
    ) -> (ScriptBuf, Witness) {
        let all = EcdsaSighashType::All;
        let ecdsa = |digest: [u8; 32]| bitcoin::ecdsa::Signature {
            signature: self
                .secp
                .sign_ecdsa(&Message::from_digest(digest), &self.key),
            sighash_type: all,
        };
        let value = coin.txout.value;
        match coin.kind {
            Kind::P2wpkh => {
                let hash = cache
                    .p2wpkh_signature_hash(index, &coin.txout.script_pubkey, value, all)
                    .unwrap();
                let sig = ecdsa(hash.to_byte_array());
                (
                    ScriptBuf::new(),
                    Witness::p2wpkh(&sig, &self.public().inner),
                )
            }
            Kind::P2wsh => {
                let script = self.witness_script();
                let hash = cache
                    .p2wsh_signature_hash(index, &script, value, all)
                    .unwrap();
                let sig = ecdsa(hash.to_byte_array()).to_vec();
                (
                    ScriptBuf::new(),
                    Witness::from_slice(&[sig, script.to_bytes()]),
                )
            }
            Kind::P2tr => {
                let hash = cache
                    .taproot_key_spend_signature_hash(
                        index,
                        &Prevouts::All(prevouts),
                        TapSighashType::Default,
                    )
                    .unwrap();
                let keypair = Keypair::from_secret_key(&self.secp, &self.key)
                    .tap_tweak(&self.secp, None)
                    .to_keypair();
                let signature = self.secp.sign_schnorr_no_aux_rand(
                    &Message::from_digest(hash.to_byte_array()),
                    &keypair,
                );
                let sig = bitcoin::taproot::Signature {
                    signature,
                    sighash_type: TapSighashType::Default,
                };
                (ScriptBuf::new(), Witness::from_slice(&[sig.to_vec()]))
            }
            Kind::P2pkh => {
                let hash = cache
                    .legacy_signature_hash(index, &coin.txout.script_pubkey, all.to_u32())
                    .unwrap();
                let sig = ecdsa(hash.to_byte_array());
                let script_sig = ScriptBuf::builder()
                    .push_slice(bitcoin::script::PushBytesBuf::try_from(sig.to_vec()).unwrap())
                    .push_key(&self.public())
                    .into_script();
                (script_sig, Witness::new())
            }
        }
    }
}

fn txout_of(vout: &Value) -> TxOut {
    TxOut {
        value: Amount::from_btc(vout["value"].as_f64().unwrap()).unwrap(),
        script_pubkey: ScriptBuf::from_bytes(
            hex::decode(vout["scriptPubKey"]["hex"].as_str().unwrap()).unwrap(),
        ),
    }
}
