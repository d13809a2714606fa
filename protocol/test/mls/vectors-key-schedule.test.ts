/**
 * RFC 9420 test vectors, key-schedule family (see vectors/README.md), against the pinned ts-mls.
 * The key schedule (RFC 9420 §8) turns the previous init_secret, the commit_secret and the
 * psk_secret, bound to the GroupContext, into all of an epoch's secrets. The vector chains several
 * epochs (each epoch's init_secret feeds the next), so a mistake anywhere shows up as every later
 * epoch being wrong; we check every output of every epoch: the serialised GroupContext, the
 * joiner/welcome/init secrets, the secrets derived from the epoch secret, the external HPKE key
 * pair derived from external_secret and one MLS-Exporter output.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getCiphersuiteNameFromId, type CiphersuiteId } from 'ts-mls/crypto/ciphersuite.js';
import { encodeGroupContext, type GroupContext } from 'ts-mls/groupContext.js';
import { initializeEpoch, mlsExporter } from 'ts-mls/keySchedule.js';
import { caseName, hex, loadVectors, suiteImpl, toHex } from './vectors/load.ts';

type Epoch = {
  tree_hash: string;
  commit_secret: string;
  psk_secret: string;
  confirmed_transcript_hash: string;
  group_context: string;
  joiner_secret: string;
  welcome_secret: string;
  init_secret: string;
  sender_data_secret: string;
  encryption_secret: string;
  exporter_secret: string;
  epoch_authenticator: string;
  external_secret: string;
  confirmation_key: string;
  membership_key: string;
  resumption_psk: string;
  external_pub: string;
  exporter: { label: string; context: string; length: number; secret: string };
};
type KeySchedule = { cipher_suite: number; group_id: string; initial_init_secret: string; epochs: Epoch[] };

const vectors = loadVectors<KeySchedule>('key-schedule.json');

describe('RFC 9420 vectors: key-schedule', () => {
  for (const [i, v] of vectors.entries()) {
    it(caseName(v, i, `${v.epochs.length} chained epochs`), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      let initSecret = hex(v.initial_init_secret);
      for (const [n, e] of v.epochs.entries()) {
        const at = `epoch ${n}`;
        const gc: GroupContext = {
          version: 'mls10',
          cipherSuite: getCiphersuiteNameFromId(v.cipher_suite as CiphersuiteId),
          groupId: hex(v.group_id),
          epoch: BigInt(n),
          treeHash: hex(e.tree_hash),
          confirmedTranscriptHash: hex(e.confirmed_transcript_hash),
          extensions: [],
        };
        assert.equal(toHex(encodeGroupContext(gc)), e.group_context, `${at}: GroupContext`);

        const s = await initializeEpoch(initSecret, hex(e.commit_secret), gc, hex(e.psk_secret), cs.kdf);
        const got = {
          joiner_secret: s.joinerSecret,
          welcome_secret: s.welcomeSecret,
          encryption_secret: s.encryptionSecret,
          init_secret: s.keySchedule.initSecret,
          sender_data_secret: s.keySchedule.senderDataSecret,
          exporter_secret: s.keySchedule.exporterSecret,
          external_secret: s.keySchedule.externalSecret,
          confirmation_key: s.keySchedule.confirmationKey,
          membership_key: s.keySchedule.membershipKey,
          resumption_psk: s.keySchedule.resumptionPsk,
          epoch_authenticator: s.keySchedule.epochAuthenticator,
        };
        for (const [name, value] of Object.entries(got)) assert.equal(toHex(value), e[name as keyof typeof got], `${at}: ${name}`);

        // external_pub is the public half of KEM.DeriveKeyPair(external_secret) (RFC 9420 §8.3).
        const { publicKey } = await cs.hpke.deriveKeyPair(s.keySchedule.externalSecret);
        assert.equal(toHex(await cs.hpke.exportPublicKey(publicKey)), e.external_pub, `${at}: external_pub`);

        // MLS-Exporter(label, context, length) from this epoch's exporter_secret (RFC 9420 §8.5).
        const x = e.exporter;
        const exported = await mlsExporter(s.keySchedule.exporterSecret, x.label, hex(x.context), x.length, cs);
        assert.equal(toHex(exported), x.secret, `${at}: MLS-Exporter`);

        initSecret = s.keySchedule.initSecret;
      }
    });
  }
});
