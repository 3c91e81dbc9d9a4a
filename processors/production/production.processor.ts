/**
 * Production (DOMAIN §7) from Jira webhooks (key issue_key). See docs/production.md.
 *
 * `production_issues` holds one row per issue: ReplacingMergeTree(state_version) ordered by
 * issue_key alone, where state_version = `updated` (deletes: DELETE_BASE + updated). So ClickHouse
 * keeps the latest `updated` even if webhooks arrive out of order, independent of the runner's
 * `version` (the offset), which is stored but not the replacing version. The processor remembers
 * the highest state_version per issue and writes a row only when an event is newer: stale
 * webhooks write nothing (they stay in raw_jira). State: one number per issue key ever seen
 * (Jira volumes: thousands), so it is kept without expiry; a deletion is remembered forever so an
 * older update arriving late cannot bring the issue back.
 *
 * `production_issue_history` gets one row per event, stale ones included: the issue's state as of
 * any event time, which the alert metrics read (issue 18: a replay must give the alerts a live
 * evaluation gave, so they cannot read the latest row).
 */
import type { EventKind } from '../../contracts/topics.js';
import type { JiraIssueEvent } from '../../contracts/types.generated.js';
import type { Processor } from '../core/processor.js';
import { historyRow, issueRow, stateVersion } from './production-model.js';

export interface ProductionState {
  /** issue_key → highest state_version written. */
  versions: Map<string, number>;
}

export interface ProductionOptions {
  allowedLatenessMs?: number;
}

export function productionProcessor(opts: ProductionOptions = {}): Processor<ProductionState> {
  return {
    name: 'production',
    kinds: ['jira'],
    tables: ['production_issues', 'production_issue_history'],
    allowedLatenessMs: opts.allowedLatenessMs ?? 5_000,
    // Latest-wins by `updated`: a duplicate has the same version and is ignored by the state.
    dedupHorizonMs: 0,
    needsDedup: (_kind: EventKind) => false,
    init: () => ({ versions: new Map() }),
    process(s, ev, _rec, ctx) {
      const e = ev as unknown as JiraIssueEvent;
      // Every event's state goes to the history (alerts read issue state as of the evaluated time).
      ctx.emit('production_issue_history', historyRow(e));
      const v = stateVersion(e);
      const cur = s.versions.get(e.issue_key);
      if (cur !== undefined && cur >= v) return;
      s.versions.set(e.issue_key, v);
      ctx.emit('production_issues', issueRow(e));
    },
    onWatermark: () => {},
    onFlush: () => {},
    serialize: (s) => ({ versions: [...s.versions] }),
    deserialize: (j) => ({ versions: new Map((j as { versions: Array<[string, number]> }).versions) }),
  };
}
