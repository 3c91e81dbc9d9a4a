import { describe, expect, it } from 'vitest';
import { parseEventsBody } from '../../producers/ingest/parse-body.js';

const buf = (s: string) => Buffer.from(s, 'utf8');

describe('parseEventsBody json', () => {
  it('takes an array (index = position) or one object', () => {
    expect(parseEventsBody(buf('[{"a":1},{"a":2}]'), 'json')).toEqual({ ok: true, entries: [{ index: 0, ok: true, event: { a: 1 } }, { index: 1, ok: true, event: { a: 2 } }] });
    expect(parseEventsBody(buf('{"a":1}'), 'json')).toEqual({ ok: true, entries: [{ index: 0, ok: true, event: { a: 1 } }] });
    expect(parseEventsBody(buf('[]'), 'json')).toEqual({ ok: true, entries: [] });
  });
  it('rejects the whole body when it is not JSON, empty, or a scalar', () => {
    expect(parseEventsBody(buf('[{"a":1},'), 'json')).toMatchObject({ ok: false, reason: expect.stringMatching(/^body is not valid JSON/) });
    expect(parseEventsBody(buf(''), 'json')).toMatchObject({ ok: false, reason: expect.stringMatching(/empty/) });
    expect(parseEventsBody(buf('42'), 'json')).toMatchObject({ ok: false, reason: expect.stringMatching(/got number/) });
    expect(parseEventsBody(buf('null'), 'json')).toMatchObject({ ok: false, reason: expect.stringMatching(/got null/) });
  });
});

describe('parseEventsBody ndjson', () => {
  it('gives one entry per non-blank line, index = 0-based line number, bad lines alone rejected with their bytes', () => {
    const parsed = parseEventsBody(buf('{"a":1}\r\n\n{"a":\n  \n{"a":3}\n'), 'ndjson');
    expect(parsed).toEqual({
      ok: true,
      entries: [
        { index: 0, ok: true, event: { a: 1 } },
        { index: 2, ok: false, reason: expect.stringMatching(/^line 2 is not valid JSON/), raw: buf('{"a":') },
        { index: 4, ok: true, event: { a: 3 } },
      ],
    });
  });
  it('takes a last line without newline and an empty body', () => {
    expect(parseEventsBody(buf('{"a":1}\n{"a":2}'), 'ndjson')).toMatchObject({ ok: true, entries: [{ index: 0 }, { index: 1 }] });
    expect(parseEventsBody(buf(''), 'ndjson')).toEqual({ ok: true, entries: [] });
  });
});
