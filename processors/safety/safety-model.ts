/**
 * Trust-and-safety case model (DOMAIN §6), pure: merging a case's events, the `safety_cases`
 * row, and the 0–100 safety score. See docs/safety.md for every definition.
 *
 * A case's state is a merge of its events that does not depend on arrival order: earliest
 * report / detection / action / appeal times, the action and appeal outcome of the latest such
 * event (ties broken by event_id), the highest severity. So a replay or a reordering inside the
 * partition gives the same row.
 */
import type { ModerationEvent } from '../../contracts/types.generated.js';

export const SEVERITY_RANK = { low: 1, medium: 2, high: 3, critical: 4 } as const;
/** Weight of one confirmed violation in the safety score, by severity. */
export const SEVERITY_WEIGHT = { low: 1, medium: 3, high: 10, critical: 30 } as const;
type Severity = keyof typeof SEVERITY_RANK;

export interface CaseState {
  caseId: string;
  targetType: string;
  targetId: string;
  creatorId: string;
  policy: string;
  /** Event time of the event `policy` came from (an action overrides reports). */
  policyFromMs: number;
  policyFromAction: boolean;
  severity: Severity;
  /** Earliest report_created with detection_source = user_report. */
  firstReportMs: number | null;
  /** Earliest report_created or action_taken with detection_source automated or staff. */
  firstDetectionMs: number | null;
  userReports: number;
  /** Earliest action_taken (the decision, of any type). */
  actionMs: number | null;
  /** action_type of the latest action_taken (event time, then event_id). */
  actionType: string | null;
  actionKey: string | null;
  appealMs: number | null;
  appealDecisionMs: number | null;
  appealOutcome: string | null;
  appealKey: string | null;
  lastEventMs: number;
  /** Seen event ids (a case has a handful of events): duplicates change nothing. */
  seen: string[];
}

export function newCase(e: ModerationEvent): CaseState {
  return {
    caseId: e.case_id,
    targetType: e.target_type,
    targetId: e.target_id,
    creatorId: e.creator_id ?? '',
    policy: e.policy,
    policyFromMs: Number.MAX_SAFE_INTEGER,
    policyFromAction: false,
    severity: e.severity,
    firstReportMs: null,
    firstDetectionMs: null,
    userReports: 0,
    actionMs: null,
    actionType: null,
    actionKey: null,
    appealMs: null,
    appealDecisionMs: null,
    appealOutcome: null,
    appealKey: null,
    lastEventMs: e.event_time,
    seen: [],
  };
}

const minN = (a: number | null, b: number): number => (a === null ? b : Math.min(a, b));
const key = (e: ModerationEvent) => `${String(e.event_time).padStart(16, '0')}|${e.event_id}`;

/** Merges one event into the case; returns false when it changed nothing (a duplicate). */
export function applyEvent(c: CaseState, e: ModerationEvent): boolean {
  if (c.seen.includes(e.event_id)) return false;
  c.seen.push(e.event_id);
  const t = e.event_time;
  c.lastEventMs = Math.max(c.lastEventMs, t);
  if (!c.creatorId && e.creator_id) c.creatorId = e.creator_id;
  if (SEVERITY_RANK[e.severity] > SEVERITY_RANK[c.severity]) c.severity = e.severity;
  const isAction = e.event_type === 'action_taken';
  // Policy: of the earliest action if any, else of the earliest event.
  if ((isAction && (!c.policyFromAction || t < c.policyFromMs)) || (!isAction && !c.policyFromAction && t < c.policyFromMs)) {
    c.policy = e.policy;
    c.policyFromMs = t;
    c.policyFromAction = isAction;
  }
  const machineOrStaff = e.detection_source !== 'user_report';
  switch (e.event_type) {
    case 'report_created':
      if (machineOrStaff) c.firstDetectionMs = minN(c.firstDetectionMs, t);
      else {
        c.firstReportMs = minN(c.firstReportMs, t);
        c.userReports++;
      }
      break;
    case 'action_taken':
      if (machineOrStaff) c.firstDetectionMs = minN(c.firstDetectionMs, t);
      c.actionMs = minN(c.actionMs, t);
      if (c.actionKey === null || key(e) > c.actionKey) {
        c.actionKey = key(e);
        c.actionType = e.action_type ?? 'none';
      }
      break;
    case 'appeal_created':
      c.appealMs = minN(c.appealMs, t);
      break;
    case 'appeal_decided':
      if (c.appealKey === null || key(e) > c.appealKey) {
        c.appealKey = key(e);
        c.appealOutcome = e.outcome ?? null;
        c.appealDecisionMs = t;
      }
      break;
    default:
      break;
  }
  return true;
}

/** A case is closed once its appeal is decided: nothing more is expected. */
export const isClosed = (c: CaseState): boolean => c.appealOutcome !== null;

/** The `safety_cases` row. Times are ms since epoch (DateTime64(3) takes integer ms in JSONEachRow). */
export function caseRow(c: CaseState): Record<string, unknown> {
  const actioned = c.actionMs !== null;
  const start = actioned ? Math.min(c.actionMs!, c.firstReportMs ?? Infinity, c.firstDetectionMs ?? Infinity) : null;
  const proactive = actioned && (c.firstReportMs === null || c.firstReportMs > c.actionMs!);
  return {
    case_id: c.caseId,
    target_type: c.targetType,
    target_id: c.targetId,
    creator_id: c.creatorId,
    policy: c.policy,
    severity: c.severity,
    user_reports: c.userReports,
    first_report_time: c.firstReportMs,
    first_detection_time: c.firstDetectionMs,
    action_time: c.actionMs,
    action_type: c.actionType ?? '',
    time_to_action_ms: actioned ? c.actionMs! - start! : null,
    proactive: proactive ? 1 : 0,
    violation: actioned && c.actionType !== 'none' ? 1 : 0,
    appealed: c.appealMs !== null || c.appealOutcome !== null ? 1 : 0,
    appeal_time: c.appealMs,
    appeal_outcome: c.appealOutcome ?? '',
    appeal_decision_time: c.appealDecisionMs,
    time_to_appeal_decision_ms: c.appealDecisionMs !== null && c.appealMs !== null ? c.appealDecisionMs - c.appealMs : null,
    closed: isClosed(c) ? 1 : 0,
    last_event_time: c.lastEventMs,
  };
}

/** Views below which the exposure denominator is floored, so tiny creators are not over-punished. */
export const SCORE_MIN_VIEWS = 1000;
/** Weighted violations per 1000 views at which the score falls to 100/e ≈ 37. */
export const SCORE_SCALE = 10;

/**
 * Safety score 0–100: 100 · exp(−rate / 10), rate = 1000 · W / max(views, 1000), W = Σ severity
 * weight of confirmed violations (actioned, not none, not reversed on appeal).
 */
export function safetyScore(weightedViolations: number, views: number): number {
  const rate = (1000 * weightedViolations) / Math.max(views, SCORE_MIN_VIEWS);
  return 100 * Math.exp(-rate / SCORE_SCALE);
}
