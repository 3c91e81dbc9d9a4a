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
  it('NDJSON: each line gets the answer of checkJsonBounds on it (the indexOf pre-check skips only lines it cannot refuse)', () => {
    // Random lines of brackets, quotes, escapes and letters, short and long against small bounds:
    // quoted brackets, more opens than maxDepth outside and inside strings, strings at the limit.
    const small = { maxDepth: 3, maxStringBytes: 6 };
    const alphabet = ['{', '}', '[', ']', '"', '\\', 'a', '1', ',', ':', ' ', '\r'];
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let checked = 0;
    let refused = 0;
    // Lines at the edges of both bounds, first in a body, after a refused line, after lines without brackets.
    const edges = ['[[[[', '{{{{', '[{[{', '[[[', '"[[[["', '[[[1]]]', '["abcd"]', '["abcdef"]', '"abcdef"', '"abcdefg"', '"abcdef', '{"[":[[1]]}'];
    const edgeBodies = edges.flatMap((e) => [[e], [e, e], ['', e], ['ab', e], [`${e}\r`, e], ['[[[[', e], ['{"a":1}', 'x', e]]);
    const randomBodies = Array.from({ length: 300 }, () =>
      Array.from({ length: 1 + rand(12) }, () => Array.from({ length: rand(14) }, () => alphabet[rand(alphabet.length)]).join('')),
    );
    for (const lines of [...edgeBodies, ...randomBodies]) {
      const raw = buf(lines.join('\n'));
      const got = parseEventsBody(raw, 'ndjson', small);
      if (!got.ok) throw new Error('ndjson bodies are never refused whole');
      const expected = lines.flatMap((text, index) => {
        const line = buf(text.endsWith('\r') ? text.slice(0, -1) : text);
        if (/^[ \t\r]*$/.test(line.toString('latin1'))) return [];
        const v = checkJsonBounds(line, small);
        return [v ? { index, errorClass: v.errorClass, reason: `line ${index} refused before parsing: ${v.reason}` } : { index }];
      });
      expect(
        got.entries.map((e) => (e.ok || e.errorClass === 'invalid_json' ? { index: e.index } : { index: e.index, errorClass: e.errorClass, reason: e.reason })),
      ).toEqual(expected);
      checked += expected.length;
      refused += expected.filter((e) => 'errorClass' in e).length;
    }
    // Both kinds of line were seen in numbers.
    expect(checked).toBeGreaterThan(1000);
    expect(refused).toBeGreaterThan(80);
    expect(checked - refused).toBeGreaterThan(200);
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
