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
