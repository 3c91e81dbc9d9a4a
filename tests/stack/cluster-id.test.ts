/** Kafka cluster ids for `kafka-storage format`: never parsed as an option by the storage tool. */
import { describe, expect, it } from 'vitest';
import { newClusterId } from '../../stack/kafka.js';

describe('newClusterId', () => {
  it('is 16 random bytes in base64url (22 chars) and never starts with "-"', () => {
    // With plain base64url, 1 id in 64 starts with '-': 10,000 ids would include ~156 of them.
    const ids = Array.from({ length: 10_000 }, newClusterId);
    for (const id of ids) {
      expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
      expect(Buffer.from(id, 'base64url')).toHaveLength(16);
    }
    expect(new Set(ids).size).toBe(ids.length);
  });
});
