import { describe, expect, it } from 'vitest';
import { checkJsonBounds, countNdjsonEntries, parseEventsBody } from '../../producers/ingest/parse-body.js';

const buf = (s: string) => Buffer.from(s, 'utf8');

describe('parseEventsBody json', () => {
  it('takes an array (index = position) or one object', () => {
    expect(parseEventsBody(buf('[{"a":1},{"a":2}]'), 'json')).toEqual({
      ok: true,
      entries: [
        { index: 0, ok: true, event: { a: 1 } },
        { index: 1, ok: true, event: { a: 2 } },
      ],
    });
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
        { index: 2, ok: false, errorClass: 'invalid_json', reason: expect.stringMatching(/^line 2 is not valid JSON/), raw: buf('{"a":') },
        { index: 4, ok: true, event: { a: 3 } },
      ],
    });
  });
  it('takes a last line without newline and an empty body', () => {
    expect(parseEventsBody(buf('{"a":1}\n{"a":2}'), 'ndjson')).toMatchObject({ ok: true, entries: [{ index: 0 }, { index: 1 }] });
    expect(parseEventsBody(buf(''), 'ndjson')).toEqual({ ok: true, entries: [] });
  });
});

describe('countNdjsonEntries (the event count before parsing)', () => {
  it('counts exactly the entries the parse gives: non-blank lines, bad ones included', () => {
    const bodies = [
      '',
      '\n\n',
      '{"a":1}',
      '{"a":1}\r\n\n{"a":\n  \n{"a":3}\n',
      ' \t\r\n{"a":1}\n\u000b\u000c\nnot json\n  {"a":2}  \n[1,2]\n"x"\n{"a":"é"}\n',
      '{"a":"0123456789xy"}\n{"a":[[[[[1]]]]]}\n\r\n',
    ];
    for (const body of bodies) {
      const parsed = parseEventsBody(buf(body), 'ndjson', { maxDepth: 4, maxStringBytes: 10 });
      expect(parsed.ok).toBe(true);
      expect(countNdjsonEntries(buf(body)), JSON.stringify(body)).toBe(parsed.ok ? parsed.entries.length : -1);
    }
  });
  it('parses non-ASCII lines as UTF-8 and reports lines by their number', () => {
    expect(parseEventsBody(buf('{"a":"x"}\n\n{"a":"héllo ✓"}'), 'ndjson')).toEqual({
      ok: true,
      entries: [
        { index: 0, ok: true, event: { a: 'x' } },
        { index: 2, ok: true, event: { a: 'héllo ✓' } },
      ],
    });
  });
});

describe('checkJsonBounds (before parsing)', () => {
  const bounds = { maxDepth: 4, maxStringBytes: 10 };
  it('counts nesting of arrays and objects outside strings', () => {
    expect(checkJsonBounds(buf('[{"a":[[1]]}]'), bounds)).toBeNull();
    expect(checkJsonBounds(buf('[{"a":[[[1]]]}]'), bounds)).toEqual({ errorClass: 'too_deep', reason: 'JSON nested deeper than 4 levels (at byte 8)' });
    // brackets inside strings, escaped quotes and escaped backslashes do not count
    expect(checkJsonBounds(buf('[{"a":"[[[[[\\"}]'), bounds)).toBeNull();
    expect(checkJsonBounds(buf('["x\\"[[[[[["]'), { maxDepth: 1, maxStringBytes: 100 })).toBeNull();
  });
  it('refuses a body nested 100,000 deep, also as a field value, without parsing it', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    expect(checkJsonBounds(buf(deep), { maxDepth: 32, maxStringBytes: 1000 })?.errorClass).toBe('too_deep');
    expect(checkJsonBounds(buf(`{"event_id":"x","country":${deep}}`), { maxDepth: 32, maxStringBytes: 1000 })?.errorClass).toBe('too_deep');
  });
  it('measures strings (keys too) in bytes as sent, and unterminated ones to the end', () => {
    expect(checkJsonBounds(buf('{"0123456789":"0123456789"}'), bounds)).toBeNull();
    expect(checkJsonBounds(buf('{"a":"0123456789x"}'), bounds)).toEqual({
      errorClass: 'string_too_long',
      reason: 'a string of 11 bytes starts at byte 5; the limit is 10 bytes',
    });
    expect(checkJsonBounds(buf('{"0123456789x":1}'), bounds)?.errorClass).toBe('string_too_long');
    expect(checkJsonBounds(buf('{"a":"\\"0123456789"}'), bounds)?.errorClass).toBe('string_too_long');
    expect(checkJsonBounds(buf('{"a":"01234567890123'), bounds)?.errorClass).toBe('string_too_long');
    expect(checkJsonBounds(buf('{"a":"0123'), bounds)).toBeNull();
  });
  it('checks only the given range (an NDJSON line)', () => {
    const b = buf('["0123456789xyz"]\n[1]');
    expect(checkJsonBounds(b, bounds, 18, b.length)).toBeNull();
    expect(checkJsonBounds(b, bounds, 0, 17)?.errorClass).toBe('string_too_long');
  });
  it('parseEventsBody with bounds: a JSON body is refused whole, an NDJSON line alone', () => {
    expect(parseEventsBody(buf('[[[[[1]]]]]'), 'json', bounds)).toEqual({
      ok: false,
      errorClass: 'too_deep',
      reason: expect.stringMatching(/^body refused before parsing: JSON nested deeper than 4/),
    });
    const parsed = parseEventsBody(buf('{"a":1}\n{"a":"0123456789xy"}\n{"a":3}'), 'ndjson', bounds);
    expect(parsed).toEqual({
      ok: true,
      entries: [
        { index: 0, ok: true, event: { a: 1 } },
        {
          index: 1,
          ok: false,
          errorClass: 'string_too_long',
          reason: expect.stringMatching(/^line 1 refused before parsing: a string of 12 bytes/),
          raw: buf('{"a":"0123456789xy"}'),
        },
        { index: 2, ok: true, event: { a: 3 } },
      ],
    });
  });
});
