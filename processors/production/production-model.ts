/**
 * Production issues (DOMAIN §7), pure: the `production_issues` row of a Jira event and the
 * version that decides which row is current. See docs/production.md.
 *
 * state_version = updated_ms for creates and updates, DELETE_BASE + updated_ms for deletes: the
 * latest `updated` wins whatever the arrival order, and a deletion wins over every update (Jira
 * never reuses a deleted key), also when an older update arrives after the delete.
 */
import type { JiraIssueEvent } from '../../contracts/types.generated.js';

/** 2^48 ms ≈ 8900 years: above any `updated`, and DELETE_BASE + updated stays a safe integer. */
export const DELETE_BASE = 2 ** 48;

export function stateVersion(e: Pick<JiraIssueEvent, 'webhook_event' | 'updated'>): number {
  return e.webhook_event === 'issue_deleted' ? DELETE_BASE + e.updated : e.updated;
}

/** Critical: severity 'critical' (or 'blocker'/'s1'); without a severity, priority Highest/Blocker. */
export function isCritical(e: Pick<JiraIssueEvent, 'severity' | 'priority'>): boolean {
  const s = e.severity?.toLowerCase();
  if (s) return s === 'critical' || s === 'blocker' || s === 's1';
  const p = e.priority.toLowerCase();
  return p === 'highest' || p === 'blocker';
}

/** Open: not in Jira's done status category and not resolved. */
export function isOpen(e: Pick<JiraIssueEvent, 'status_category' | 'resolved'>): boolean {
  return e.status_category.toLowerCase() !== 'done' && (e.resolved === null || e.resolved === undefined);
}

export function issueRow(e: JiraIssueEvent): Record<string, unknown> {
  const deleted = e.webhook_event === 'issue_deleted';
  return {
    issue_key: e.issue_key,
    project_key: e.project_key,
    summary: e.summary,
    issue_type: e.issue_type,
    status: e.status,
    status_category: e.status_category,
    priority: e.priority,
    severity: e.severity ?? '',
    show_name: e.show_name ?? '',
    cost_impact_usd: e.cost_impact_usd ?? 0,
    delay_days: e.delay_days ?? 0,
    labels: e.labels ?? [],
    created: e.created,
    updated: e.updated,
    resolved: e.resolved ?? null,
    resolve_ms: e.resolved != null ? e.resolved - e.created : null,
    is_open: !deleted && isOpen(e) ? 1 : 0,
    is_critical: isCritical(e) ? 1 : 0,
    deleted: deleted ? 1 : 0,
    deleted_time: deleted ? e.event_time : null,
    last_event_id: e.event_id,
    state_version: stateVersion(e),
  };
}

/**
 * The `production_issue_history` row of a Jira event: the issue's state as this event tells it,
 * written for EVERY event (also stale ones), so the state as of any time t can be read back:
 * the row with the greatest (updated, version) among rows with updated < t, unless a deletion row
 * has deleted_time < t (alerts/metrics.ts, issue 18).
 */
export function historyRow(e: JiraIssueEvent): Record<string, unknown> {
  const r = issueRow(e);
  return {
    issue_key: r.issue_key,
    project_key: r.project_key,
    status: r.status,
    status_category: r.status_category,
    priority: r.priority,
    severity: r.severity,
    show_name: r.show_name,
    cost_impact_usd: r.cost_impact_usd,
    delay_days: r.delay_days,
    created: r.created,
    updated: r.updated,
    resolved: r.resolved,
    is_open: r.is_open,
    is_critical: r.is_critical,
    deleted: r.deleted,
    deleted_time: r.deleted_time,
    last_event_id: r.last_event_id,
    state_version: r.state_version,
  };
}
