import { describe, expect, it } from 'vitest';
import { progressLine } from '../../processors/replay-online.js';

describe('online rebuild progress line', () => {
  it('shows the bar, the records, the rate and the time left', () => {
    expect(progressLine({ phase: 'rebuild', done: 1000, total: 3000, ratePerS: 250, etaS: 8 }, 18)).toBe(
      '[######------------]  33.3 %  1,000 / 3,000 records  250 rec/s  ETA 8s  rebuild',
    );
  });
  it('writes minutes past a minute, and -- while the rate is unknown', () => {
    expect(progressLine({ phase: 'catch-up', done: 0, total: 10, ratePerS: 0, etaS: 59.6 }, 4)).toContain('ETA 1m00s  catch-up');
    expect(progressLine({ phase: 'rebuild', done: 5, total: 10, ratePerS: 0, etaS: null }, 4)).toBe('[##--]  50.0 %  5 / 10 records  0 rec/s  ETA --  rebuild');
  });
  it('is full when there is nothing to read', () => {
    expect(progressLine({ phase: 'done', done: 0, total: 0, ratePerS: 0, etaS: 0 }, 4)).toMatch(/^\[####\] 100\.0 %/);
  });
});
