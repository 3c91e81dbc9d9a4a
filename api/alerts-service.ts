/**
 * What the API needs from alerting (alerts/ implements it; the API only calls these methods).
 * Until alerts/ exports its service, http-roles passes none and the alert routes answer 503.
 */
export type AlertState = 'pending' | 'firing' | 'resolved';

export interface AlertView {
  id: string;
  rule: string;
  /** An AlertState (pending, firing, resolved) as stored. */
  state: string;
  severity: string;
  labels: Record<string, string>;
  value?: number | null;
  startsAt: string;
  endsAt?: string | null;
  acknowledgedBy?: string | null;
  silenced?: boolean;
  summary?: string;
  /**
   * Why it fired (alerts/explain.ts, docs/alerting.md "Explanations"): top slices with their
   * share of the change, and context. Only GET /v1/alerts/{id} returns it in full.
   */
  explanation?: AlertExplanation | null;
}

/** The explanation as the API sees it (structural: api/ does not import alerts/). */
export interface AlertExplanation {
  top: Array<{ dimension: string; value: string; share: number; weight: number; current: number | null; baseline: number | null }>;
}

export interface SilenceView {
  id: string;
  matchers: Record<string, string>;
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
}

export interface AlertsService {
  listAlerts(filter: { state?: string }): Promise<AlertView[]>;
  /** Returns false when no alert has that id. */
  acknowledge(alertId: string, by: string, comment?: string): Promise<boolean>;
  silence(input: { matchers: Record<string, string>; durationMs: number; createdBy: string; comment: string }): Promise<SilenceView>;
  listSilences(): Promise<SilenceView[]>;
}
