/**
 * RFC 9420 test vectors, deserialization family (see vectors/README.md), against the pinned
 * ts-mls. Every variable-length vector in MLS starts with the QUIC-style varint of RFC 9420 §2.1.2
 * (1, 2 or 4 bytes, the top two bits saying which); misreading it shifts every field after it.
 * Each vector is a header and the length it encodes; the header is exactly the length field, so
 * ts-mls must also report consuming all of it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { determineLength } from 'ts-mls/codec/variableLength.js';
import { hex, loadVectors } from './vectors/load.ts';

type Deserialization = { vlbytes_header: string; length: number };

const vectors = loadVectors<Deserialization>('deserialization.json');

describe('RFC 9420 vectors: deserialization (varint length headers)', () => {
  for (const v of vectors) {
    it(`${v.vlbytes_header} is ${v.length}`, () => {
      const header = hex(v.vlbytes_header);
      const { length, lengthFieldSize } = determineLength(header);
      assert.equal(length, v.length);
      assert.equal(lengthFieldSize, header.length, 'bytes consumed by the length field');
    });
  }
});
